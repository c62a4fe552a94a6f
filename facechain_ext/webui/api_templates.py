"""/facechain/v1 routes for template portraits (issue 9): put identities into a template photo's faces.

`POST /template` checks everything before queueing (template size and faces, face choices, identities, FACT), then
runs all face passes in one host task (queue lock, `shared.state`: /sdapi/v1/progress and /sdapi/v1/interrupt
apply). Errors (all `{"detail": {"code", "message", "context"}}`):
422 `no_face`, `face_index_out_of_range`, `duplicate_face`, `face_too_small`, `template_too_small`,
`template_too_large`, `unreadable_image`, `invalid_request`; 413 `image_too_large` (a decompression bomb);
404 `identity_not_found` (the project's code for unknown identities); 503 `fact_unavailable`.
`POST /template/faces` lists a template's faces (left to right, with boxes) so a client can choose indices.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ..context import FaceChainContext
from ..errors import FaceChainError
from ..modelcompat import dump_model, parse_model
from ..schemas import ErrorResponse
from ..templates.request import (
    ARG_FIELDS,
    HOST_FIELDS,
    TemplateArgs,
    TemplateFacesRequest,
    TemplateFacesResponse,
    TemplateRequest,
    TemplateResponse,
)
from .api_common import ApiAuth, facechain_route, make_router

ERRORS = {code: {"model": ErrorResponse} for code in (401, 404, 413, 422, 500, 503)}


def add_routes(app: FastAPI, ctx: FaceChainContext, auth: ApiAuth) -> None:
    routes = TemplateRoutes(ctx)
    router = make_router(auth)
    router.add_api_route("/template", facechain_route(routes.template), methods=["POST"], response_model=TemplateResponse,
                         responses=ERRORS)
    router.add_api_route("/template/faces", facechain_route(routes.faces), methods=["POST"],
                         response_model=TemplateFacesResponse, responses=ERRORS)
    app.include_router(router)


def _encode(image: Any) -> str:
    from modules.api import api

    encoded = api.encode_pil_to_base64(image)  # keeps image.info["parameters"] in the PNG, as the host does
    return encoded.decode("ascii") if isinstance(encoded, bytes) else str(encoded)


class TemplateRoutes:
    def __init__(self, ctx: FaceChainContext) -> None:
        self.ctx = ctx

    def template(self, req: TemplateRequest) -> dict[str, Any]:
        from ..imaging import decode_base64_image
        from .host_task import new_host_task_id
        from .template_runner import PassFields, prepare_template, run_template

        fields = dump_model(req)
        for side in ("width", "height"):
            if fields[side] % 8:
                raise FaceChainError("invalid_request", f"{side}: {fields[side]} must be a multiple of 8.", field=side)
        args = parse_model(TemplateArgs, {name: fields[name] for name in ARG_FIELDS}, what="template request")
        image = decode_base64_image(req.template, "template")
        run = prepare_template(self.ctx, image, args)  # every 4xx before the job is queued
        host = {name: fields[name] for name in HOST_FIELDS}
        host["override_settings"] = host["override_settings"] or {}
        outcome = run_template(self.ctx, run, PassFields(**host), task_id=new_host_task_id("img2img"), save=req.save_images)
        ranked = outcome.ranked
        order = [choice.index for choice in args.faces]  # answers follow the request's `faces` order
        per_image = [{f.index: f for f in c.faces} for c in ranked]
        return {
            "images": [_encode(c.image) for c in ranked] if req.send_images else [],
            "scores": [[None if by[i].score is None else round(by[i].score, 4) for i in order] for by in per_image],
            "faces": [[by[i].to_dict() for i in order] for by in per_image],
            "seeds": [c.seed for c in ranked],
            "info": outcome.info(),
            "comments": "\n".join(run.comments),
        }

    def faces(self, req: TemplateFacesRequest) -> dict[str, Any]:
        from ..imaging import decode_base64_image
        from ..templates.faces import find_template_faces

        image = decode_base64_image(req.template, "template")
        analyzer = self.ctx.analyzer()
        faces, rotation = find_template_faces(image, analyzer)
        return {"faces": [f.to_dict() for f in faces], "width": image.width, "height": image.height,
                "rotation": rotation, "backend": analyzer.name}


__all__ = ["add_routes", "TemplateRoutes"]
