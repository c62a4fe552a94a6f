"""/facechain/v1 system routes: version (host, face backends) and the optional models (status, consented download)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from .. import __version__
from ..context import FaceChainContext
from ..schemas import ModelDownloadAccepted, ModelsResponse, VersionResponse
from .api_common import ApiAuth, facechain_route, make_router
from .api_faces import ERRORS


def add_routes(app: FastAPI, ctx: FaceChainContext, auth: ApiAuth) -> None:
    routes = SystemRoutes(ctx)
    router = make_router(auth)
    add = router.add_api_route
    add("/version", facechain_route(routes.version), methods=["GET"], response_model=VersionResponse, responses=ERRORS)
    add("/models", facechain_route(routes.models), methods=["GET"], response_model=ModelsResponse, responses=ERRORS)
    add("/models/{name}/download", facechain_route(routes.download_model), methods=["POST"], status_code=202,
        response_model=ModelDownloadAccepted, responses=ERRORS)
    app.include_router(router)


class SystemRoutes:
    """Version and model handlers, bound to one FaceChainContext."""

    def __init__(self, ctx: FaceChainContext) -> None:
        self.ctx = ctx

    def version(self) -> dict[str, Any]:
        from ..faces import backend_status
        from .host import host_variant

        settings = self.ctx.settings
        return {
            "version": __version__,
            "api": "v1",
            "host": host_variant(),
            "face_backend": settings.face_backend,
            "backends": backend_status(settings),
        }

    def models(self) -> dict[str, Any]:
        from ..models import model_status

        return {"models": model_status(self.ctx.settings)}

    def download_model(self, name: str) -> dict[str, Any]:
        """Start a consented, verified download as a job (404 unknown, 422 manual-only, 403 not allowed)."""
        from ..downloads import submit_download

        job = submit_download(self.ctx, name)
        return {"job_id": job.id, "status": self.ctx.jobs.snapshot(job.id)["status"], "model": name}
