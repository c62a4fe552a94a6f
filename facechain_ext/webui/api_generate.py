"""/facechain/v1 routes for portrait generation (issue 4 §6): txt2img, face fusion, styles and the argument schema.

`POST /txt2img` runs under the host's queue lock with `shared.state` (see host_processing), so the host's
/sdapi/v1/progress and /sdapi/v1/interrupt apply. Identity and style are resolved before queueing: an unknown one is
a 404 at once. Fusion does not take the queue lock (CPU face work, no checkpoint involved).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from fastapi import FastAPI

from ..context import FaceChainContext
from ..errors import FaceChainError
from ..modelcompat import dump_model
from ..schemas import (
    ErrorResponse,
    FaceChainArgs,
    FaceChainTxt2ImgRequest,
    FaceChainTxt2ImgResponse,
    FuseRequest,
    FuseResponse,
    StylesResponse,
    args_schema,
    parse_args,
)
from ..styles import Style, apply_recommended, style_lora_path
from .api_common import ApiAuth, facechain_route, make_router

ERRORS = {code: {"model": ErrorResponse} for code in (401, 404, 413, 422, 500, 503)}
MAX_REFERENCE_IMAGES = 16
HOST_DEFAULTS = {"steps": 20, "cfg_scale": 7.0, "width": 512, "height": 512}  # the host API's defaults


def add_routes(app: FastAPI, ctx: FaceChainContext, auth: ApiAuth) -> None:
    routes = GenerateRoutes(ctx)
    router = make_router(auth)
    add = router.add_api_route
    add("/txt2img", facechain_route(routes.txt2img), methods=["POST"], response_model=FaceChainTxt2ImgResponse, responses=ERRORS)
    add("/face/fuse", facechain_route(routes.fuse), methods=["POST"], response_model=FuseResponse, responses=ERRORS)
    add("/styles", facechain_route(routes.styles), methods=["GET"], response_model=StylesResponse, responses=ERRORS)
    add("/schema", facechain_route(routes.schema), methods=["GET"], responses=ERRORS)
    app.include_router(router)


def style_summary(ctx: FaceChainContext, style: Style) -> dict[str, Any]:
    data = dump_model(style)
    lora_path = style_lora_path(style, ctx.settings.lora_dir)
    data["style_lora_present"] = None if lora_path is None else lora_path.is_file()
    data["has_preview"] = ctx.styles.preview_path(style.id) is not None
    return data


def _encode(image: Any) -> str:
    from modules.api import api

    encoded = api.encode_pil_to_base64(image)
    return encoded.decode("ascii") if isinstance(encoded, bytes) else str(encoded)


class GenerateRoutes:
    def __init__(self, ctx: FaceChainContext) -> None:
        self.ctx = ctx

    def txt2img(self, req: FaceChainTxt2ImgRequest) -> dict[str, Any]:
        from modules import progress

        from ..imaging import decode_base64_image
        from .host_processing import run_txt2img

        fields = dump_model(req)
        args = parse_args(fields.pop("facechain"), what="The facechain object")
        if not args.enabled:
            raise FaceChainError("invalid_request", "FaceChain is switched off in this request (enabled is false); use /sdapi/v1/txt2img for plain generation.")
        send_images, save_images = fields.pop("send_images"), fields.pop("save_images")
        pose_data = fields.pop("pose_image", None)
        pose = decode_base64_image(pose_data, "pose_image") if pose_data else None
        style = self.ctx.styles.get(args.style) if args.style else None  # 404 before queueing
        apply_recommended(fields, style, HOST_DEFAULTS)  # request value > style > host API default
        # as the host's text2imgapi: save_images=false writes neither samples nor a grid to the outputs folder
        fields["do_not_save_samples"] = not save_images
        fields["do_not_save_grid"] = bool(fields.get("do_not_save_grid")) or not save_images
        outcome = run_txt2img(self.ctx, fields, args, task_id=progress.create_task_id("txt2img"), pose=pose)
        return {
            "images": [_encode(image) for image in outcome.images] if send_images else [],
            "parameters": {**dump_model(req), "facechain": dump_model(args)},
            "info": outcome.js,
            "scores": outcome.scores,
            "order": outcome.order,
            "comments": outcome.comments,
        }

    def fuse(self, req: FuseRequest) -> dict[str, Any]:
        from ..faces.similarity import cosine_similarity
        from ..fusion import create_fusion_backend, fuse_face
        from ..imaging import decode_base64_image, encode_png_base64

        analyzer = self.ctx.analyzer()
        target = decode_base64_image(req.target, "target")
        reference_image, reference_embedding = self._reference(req, analyzer)
        faces = analyzer.find_faces(target, embed=True).faces  # the orientation policy of every surface
        if not faces:
            raise FaceChainError("no_face", "No face was found in the target image (also tried it turned by 90, 180 "
                                 "and 270 degrees), so there is nothing to fuse.", input="target")
        before = cosine_similarity(faces[0].embedding, reference_embedding)
        backend = create_fusion_backend(self.ctx.settings, analyzer, req.backend)
        restore, note = _restorer_for(req, backend.name)
        result = fuse_face(target, reference_image, analyzer, strength=req.strength, target_face=faces[0], backend=backend,
                           restore=restore, restore_visibility=req.restore_visibility)
        after_embedding = analyzer.embed(result.image, dataclasses.replace(faces[0], embedding=None))
        return {
            "image": encode_png_base64(result.image),
            "similarity_before": round(float(before), 6),
            "similarity_after": round(float(cosine_similarity(after_embedding, reference_embedding)), 6),
            "applied": bool(result.applied),
            "backend": result.backend,
            "restored": bool(result.restored),
            "restore_note": note or (f"the face restorer failed: {result.restore_error}" if result.restore_error else None),
        }

    def _reference(self, req: FuseRequest, analyzer: Any) -> tuple[Any, Any]:
        from ..faces.similarity import mean_embedding
        from ..imaging import decode_base64_image, load_image

        ref = req.reference
        if (ref.identity is None) == (not ref.images):
            raise FaceChainError("invalid_request", "The reference needs exactly one of 'identity' or 'images'.", field="reference")
        if ref.identity is not None:
            identity = self.ctx.identities.get(ref.identity)
            if identity.best_photo_path is None:
                raise FaceChainError("no_usable_photos", f"Identity {ref.identity!r} has no best photo to fuse from.")
            image = load_image(identity.best_photo_path, name=f"{ref.identity} best photo")
            return image, self.ctx.identities.reference_embedding(ref.identity, analyzer)
        images = list(ref.images or [])
        if len(images) > MAX_REFERENCE_IMAGES:
            raise FaceChainError("invalid_request", f"The reference has too many images: at most {MAX_REFERENCE_IMAGES}.", field="reference.images")
        decoded, embeddings = [], []
        for i, data in enumerate(images):
            name = f"reference.images[{i}]"
            image = decode_base64_image(data, name)
            found = analyzer.find_faces(image, embed=True)
            if found.best is None:
                raise FaceChainError("no_face", f"{name}: no face found in this reference photo (also tried it turned "
                                     "by 90, 180 and 270 degrees).", input=name)
            decoded.append(image)
            embeddings.append(found.best.embedding)
        return decoded[0], mean_embedding(embeddings)

    def styles(self) -> dict[str, Any]:
        library = self.ctx.styles
        library.reload()  # a user may have just added a file; reading a few JSON files is cheap
        return {"styles": [style_summary(self.ctx, style) for style in library.list()], "errors": library.errors}

    def schema(self) -> dict[str, Any]:
        return args_schema()


def _restorer_for(req: FuseRequest, backend: str) -> tuple[Optional[Any], Optional[str]]:
    """(the host's face restorer when this request wants one, else None; why it is missing when wanted)."""
    from ..fusion.restore import restore_wanted
    from .face_restore import host_face_restorer

    if not (restore_wanted(req.restore_face, backend) and req.restore_visibility > 0):
        return None, None
    try:
        return host_face_restorer(), None
    except FaceChainError as err:
        return None, f"face restoration is unavailable: {err.message}"


__all__ = ["add_routes", "GenerateRoutes", "FaceChainArgs"]
