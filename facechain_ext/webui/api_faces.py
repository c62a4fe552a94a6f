"""/facechain/v1 face-analysis routes: detect faces, compare faces (issue 2 §5).

Face analysis does not take the host's queue_lock: the analyzers are thread-safe and small, and a photo check
must not wait behind a long training job. Handlers are plain functions (FastAPI runs them in its thread pool).
Identities: `api_identities.py`; version and models: `api_system.py`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import FastAPI

from ..context import FaceChainContext
from ..errors import FaceChainError
from ..schemas import DetectRequest, DetectResponse, ErrorResponse, SimilarityRequest, SimilarityResponse
from .api_common import ApiAuth, facechain_route, make_router

MAX_IMAGES = 64  # per request list; more is almost certainly a client bug, and each image costs a detection
ERRORS = {code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 413, 422, 500, 502, 503)}


def add_routes(app: FastAPI, ctx: FaceChainContext, auth: ApiAuth) -> None:
    routes = FaceRoutes(ctx)
    router = make_router(auth)
    add = router.add_api_route
    add("/face/detect", facechain_route(routes.detect), methods=["POST"], response_model=DetectResponse, responses=ERRORS)
    add("/face/similarity", facechain_route(routes.similarity), methods=["POST"], response_model=SimilarityResponse,
        responses=ERRORS)
    app.include_router(router)


def check_image_count(images: list[str], field: str, minimum: int = 1) -> None:
    if len(images) < minimum:
        raise FaceChainError("invalid_request", f"{field}: give at least {minimum} image(s).", field=field)
    if len(images) > MAX_IMAGES:
        raise FaceChainError("invalid_request", f"{field}: at most {MAX_IMAGES} images per request.", field=field)


def base64_bytes(data: str) -> bytes:
    """base64 (or data: URL) -> bytes; undecodable text is passed on so the photo gets its own unreadable_image."""
    payload = data.split(",", 1)[1] if data.startswith("data:") and "," in data else data
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        return payload.encode("utf-8", "replace")


class FaceRoutes:
    """The face-analysis handlers, bound to one FaceChainContext."""

    def __init__(self, ctx: FaceChainContext) -> None:
        self.ctx = ctx

    def detect(self, req: DetectRequest) -> dict[str, Any]:
        from ..imaging import decode_base64_image, load_scale

        analyzer = self.ctx.analyzer(req.backend)
        image = decode_base64_image(req.image, "image")
        found = analyzer.find_faces(image, embed=False)  # the orientation policy of every surface
        scale = load_scale(image)  # < 1 when a photo above the pixel cap was downscaled: report original pixels
        return {"faces": [face.to_dict(scale) for face in found.faces], "backend": analyzer.name,
                "rotation": found.rotation}

    def similarity(self, req: SimilarityRequest) -> dict[str, Any]:
        """Scored like the CLI (`faces.compare`): an unusable photo gets a null score and an error entry."""
        from ..faces.compare import compare_photos

        check_image_count(req.reference.images, "reference.images")
        check_image_count(req.candidates, "candidates")
        analyzer = self.ctx.analyzer(req.backend)
        references = [(f"reference.images[{i}]", base64_bytes(data)) for i, data in enumerate(req.reference.images)]
        candidates = [(f"candidates[{i}]", base64_bytes(data)) for i, data in enumerate(req.candidates)]
        return compare_photos(analyzer, references, candidates, top_k=req.top_k)
