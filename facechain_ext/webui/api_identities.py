"""/facechain/v1 identity routes: create an identity from photos, list, read and delete identities.

Creation runs the shared service (`identity_creation`), the same one the tab and the CLI use; this module only
decodes the request's base64 photos and renders the result.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from ..context import FaceChainContext
from ..schemas import IdentityCreateRequest, IdentityListResponse
from .api_common import ApiAuth, facechain_route, jsonable, make_router
from .api_faces import ERRORS, base64_bytes, check_image_count


def add_routes(app: FastAPI, ctx: FaceChainContext, auth: ApiAuth) -> None:
    routes = IdentityRoutes(ctx)
    router = make_router(auth)
    add = router.add_api_route
    add("/identities", facechain_route(routes.create_identity), methods=["POST"], status_code=201, responses=ERRORS)
    add("/identities", facechain_route(routes.list_identities), methods=["GET"], response_model=IdentityListResponse,
        responses=ERRORS)
    add("/identities/{name}", facechain_route(routes.get_identity), methods=["GET"], responses=ERRORS)
    add("/identities/{name}", facechain_route(routes.delete_identity), methods=["DELETE"], responses=ERRORS)
    app.include_router(router)


class IdentityRoutes:
    """The identity handlers, bound to one FaceChainContext."""

    def __init__(self, ctx: FaceChainContext) -> None:
        self.ctx = ctx

    def create_identity(self, req: IdentityCreateRequest) -> JSONResponse:
        from ..identity_creation import IdentityFromPhotos, create_identity_from_photos

        check_image_count(req.images, "images")
        photos = [(f"images[{i}]", base64_bytes(data)) for i, data in enumerate(req.images)]  # cheap; faces come later
        request = IdentityFromPhotos(
            name=req.name, photos=photos, overwrite=req.overwrite, phrase=req.phrase, backend=req.backend,
        )
        created = create_identity_from_photos(self.ctx, request)  # name checked before any face work
        # the stored report: crop paths relative to the identity folder
        body = {"name": created.name, **created.stored_report(), "identity": created.identity.to_dict()}
        return JSONResponse(status_code=201, content=jsonable(body))

    def list_identities(self) -> dict[str, Any]:
        return {"identities": [jsonable(identity.to_dict()) for identity in self.ctx.identities.list()]}

    def get_identity(self, name: str) -> dict[str, Any]:
        return jsonable(self.ctx.identities.get(name).to_dict())

    def delete_identity(self, name: str) -> dict[str, Any]:
        from ..identity_creation import delete_identity

        delete_identity(self.ctx, name)  # 409 job_running while a training uses it
        return {"deleted": name}
