"""Stand-in for modules/api/api.py: the image helpers (base64 in and out of the API), and `Api` as far as it shapes
the app extensions add routes to: `--api-auth` parsing (a malformed value stops the host from starting),
`api_middleware`'s app-wide exception handlers, and the auth dependency of the host's own routes."""

from __future__ import annotations

import base64
import io
from secrets import compare_digest

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import HTTPException
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from PIL import Image, PngImagePlugin

from modules import errors, shared
from modules.shared import opts


def decode_base64_to_image(encoding: str) -> Image.Image:
    if encoding.startswith("http://") or encoding.startswith("https://"):
        raise HTTPException(status_code=500, detail="Requests not allowed")  # the fake host has no network
    if encoding.startswith("data:image/"):
        encoding = encoding.split(";")[1].split(",")[1]
    try:
        return Image.open(io.BytesIO(base64.b64decode(encoding)))
    except Exception as e:  # noqa: BLE001 - same as the host
        raise HTTPException(status_code=500, detail="Invalid encoded image") from e


def encode_pil_to_base64(image) -> bytes:
    """Returns bytes, like the host (the API models declare str and pydantic v1 coerces)."""
    if isinstance(image, str):
        return image  # type: ignore[return-value]
    with io.BytesIO() as output_bytes:
        fmt = opts.samples_format.lower()
        if fmt == "png":
            metadata = PngImagePlugin.PngInfo()
            use_metadata = False
            for key, value in image.info.items():
                if isinstance(key, str) and isinstance(value, str):
                    metadata.add_text(key, value)
                    use_metadata = True
            image.save(output_bytes, format="PNG", pnginfo=metadata if use_metadata else None, quality=opts.jpeg_quality)
        elif fmt in ("jpg", "jpeg", "webp"):
            rgb = image.convert("RGB") if image.mode == "RGBA" else image
            rgb.save(output_bytes, format="JPEG" if fmt != "webp" else "WEBP", quality=opts.jpeg_quality)
        else:
            raise HTTPException(status_code=500, detail="Invalid image format")
        return base64.b64encode(output_bytes.getvalue())


def api_middleware(app: FastAPI) -> None:
    """The host's app-wide handlers: any exception that leaves a route (an extension's too) becomes
    `{"error", "detail", "body", "errors"}` with the exception's status_code or 500 (logged unless an HTTPException)."""

    def handle_exception(request: Request, e: Exception):
        err = {
            "error": type(e).__name__,
            "detail": vars(e).get("detail", ""),
            "body": vars(e).get("body", ""),
            "errors": str(e),
        }
        if not isinstance(e, HTTPException):
            errors.report(f"API error: {request.method}: {request.url} {err}", exc_info=True)
        return JSONResponse(status_code=vars(e).get("status_code", 500), content=jsonable_encoder(err))

    @app.middleware("http")
    async def exception_handling(request: Request, call_next):
        try:
            return await call_next(request)
        except Exception as e:  # noqa: BLE001 - as the host
            return handle_exception(request, e)

    @app.exception_handler(Exception)
    async def fastapi_exception_handler(request: Request, e: Exception):
        return handle_exception(request, e)

    @app.exception_handler(HTTPException)
    async def http_exception_handler(request: Request, e: HTTPException):
        return handle_exception(request, e)


class Api:
    """`Api(app, queue_lock)` as the host builds it in create_api (webui.py), minus its /sdapi/v1 routes."""

    def __init__(self, app: FastAPI, queue_lock) -> None:
        if shared.cmd_opts.api_auth:
            self.credentials = {}
            for auth in shared.cmd_opts.api_auth.split(","):
                user, password = auth.split(":")  # ValueError for "a:b:c" or "nocolon": the host does not start
                self.credentials[user] = password
        self.app = app
        self.queue_lock = queue_lock
        api_middleware(self.app)

    def add_api_route(self, path: str, endpoint, **kwargs):
        if shared.cmd_opts.api_auth:
            return self.app.add_api_route(path, endpoint, dependencies=[Depends(self.auth)], **kwargs)
        return self.app.add_api_route(path, endpoint, **kwargs)

    def auth(self, credentials: HTTPBasicCredentials = Depends(HTTPBasic())):
        if credentials.username in self.credentials:
            if compare_digest(credentials.password, self.credentials[credentials.username]):
                return True
        raise HTTPException(status_code=401, detail="Incorrect username or password", headers={"WWW-Authenticate": "Basic"})
