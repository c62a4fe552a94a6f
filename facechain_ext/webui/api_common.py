"""What every FaceChain HTTP route shares: the URL prefix, HTTP Basic auth like the host's, request limits and
JSON errors, implemented once in `FaceChainRoute` (the route class of every router `make_router` builds).

Errors always look like `{"detail": {"code", "message", "context"}}` with the status from `FaceChainError.http_status`:
401 `unauthorized` (with `WWW-Authenticate: Basic`, as the host answers) before the body is read; 413
`body_too_large` above MAX_BODY_BYTES; 422 `invalid_json` / `non_finite_number` / `json_too_deep` for bodies that
are not strict JSON; 422 `invalid_request` for field errors; the route's own FaceChainErrors; 500 `internal_error`
for anything unexpected (logged with its traceback on the server, never sent to the client).

Use `make_router(auth)` and `app.include_router(router)` so that all of this applies to a module's routes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import inspect
import logging
from dataclasses import dataclass, field
from secrets import compare_digest
from typing import Any, Callable, ClassVar

from fastapi import APIRouter, Depends, Request, Security
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBasic

from .. import strict_json
from ..errors import FaceChainError

API_PREFIX = "/facechain/v1"
# Largest request body accepted: 64 photos (faces.MAX_IMAGES per list) of ~1.2 MB each, base64-encoded.
MAX_BODY_BYTES = 100 * 1024 * 1024
log = logging.getLogger("facechain")


def error_response(err: FaceChainError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Basic"} if err.code == "unauthorized" else None
    return JSONResponse(status_code=err.http_status, content={"detail": jsonable(err.to_dict())}, headers=headers)


def jsonable(value: Any) -> Any:
    """Error context may hold paths or numpy scalars; the client gets plain JSON."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return str(value)


def _internal_error(where: str, exc: BaseException) -> JSONResponse:
    log.error("FaceChain: unexpected error in %s", where, exc_info=exc)
    err = FaceChainError(
        "internal_error",
        f"FaceChain failed unexpectedly ({type(exc).__name__}: {exc}); the server log has the details.",
    )
    return error_response(err)


def facechain_route(fn: Callable) -> Callable:
    """Prepare a route endpoint for FastAPI: its signature with annotations resolved in the endpoint's own module
    (our modules use `from __future__ import annotations`). Errors are handled once, by FaceChainRoute."""

    @functools.wraps(fn)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    wrapper: Callable = sync_wrapper
    if asyncio.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            return await fn(*args, **kwargs)

        wrapper = async_wrapper
    wrapper.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    return wrapper


def _validation_error(exc: RequestValidationError) -> FaceChainError:
    problems = []
    for e in exc.errors():
        field_name = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        problems.append(f"{field_name}: {e.get('msg', 'invalid')}")
    return FaceChainError("invalid_request", "The request is invalid: " + "; ".join(problems), errors=exc.errors())


def _http_error(exc: HTTPException) -> FaceChainError:
    """An HTTPException raised by FastAPI itself (e.g. an unreadable body) in our error shape."""
    detail = exc.detail
    if isinstance(detail, dict) and {"code", "message"} <= set(detail):
        return FaceChainError(str(detail["code"]), str(detail["message"]), **dict(detail.get("context") or {}))
    code = {400: "invalid_request", 401: "unauthorized", 404: "not_found", 413: "body_too_large"}.get(exc.status_code,
                                                                                                      "invalid_request")
    return FaceChainError(code, str(detail), status=exc.status_code)


async def read_limited_body(request: Request, limit: int | None = None) -> bytes:
    """The request body, refused with `body_too_large` (413) as soon as it is known to exceed `limit` bytes
    (default MAX_BODY_BYTES)."""
    limit = MAX_BODY_BYTES if limit is None else limit
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    # Starlette keeps a read body in Request._body (Request.body()/json() read it from there), so FastAPI's own
    # body handling sees it; the strictly parsed value goes in Request._json for the same reason.
    request._body = body  # noqa: SLF001
    return body


def _too_large(size: int, limit: int) -> FaceChainError:
    return FaceChainError("body_too_large", f"The request body ({size} bytes) is larger than FaceChain's limit of "
                          f"{limit} bytes ({limit // (1024 * 1024)} MiB); send fewer or smaller images.",
                          limit=limit, size=size)


@dataclass(frozen=True)
class ApiAuth:
    """HTTP Basic auth for our routes, the same check the host applies to /sdapi/v1 when --api-auth is set
    (modules/api/api.py `Api.auth`: fastapi's HTTPBasic, then `compare_digest` on the password).

    Extension routes get no auth from the host (HOST_CONTRACT §7), so we enforce it ourselves.
    """

    credentials: dict[str, str] = field(default_factory=dict)
    enabled: bool = False

    def verify(self, authorization: str | None) -> None:
        """Raise `unauthorized` (401) unless auth is off or `authorization` holds valid Basic credentials."""
        if not self.enabled:
            return
        user, password = _basic_credentials(authorization)
        if user is None or user not in self.credentials or password is None or not compare_digest(
                password.encode(), self.credentials[user].encode()):
            raise FaceChainError("unauthorized", "Incorrect username or password (HTTP Basic, as set by --api-auth).")

    def check(self, request: Request, _: Any = Security(HTTPBasic(auto_error=False))) -> bool:
        """Route dependency: documents HTTP Basic in OpenAPI; FaceChainRoute already verified the header."""
        self.verify(request.headers.get("authorization"))
        return True

    def dependencies(self) -> list[Any]:
        return [Depends(self.check)] if self.enabled else []


def _basic_credentials(authorization: str | None) -> tuple[str | None, str | None]:
    """(user, password) from a Basic Authorization header, decoded as fastapi's HTTPBasic does (base64, ASCII,
    split at the first ":"); (None, None) when absent or malformed."""
    scheme, _, param = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        user, sep, password = base64.b64decode(param).decode("ascii").partition(":")
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return None, None
    return (user, password) if sep else (None, None)


class FaceChainRoute(APIRoute):
    """Every request to a FaceChain route, in this order: HTTP Basic auth (401) before the body is even read, body
    size limit (413), strict JSON (422: see strict_json), then the endpoint. Whatever fails, the answer is
    `{"detail": {"code", "message", "context"}}`: FaceChainError with its status, FastAPI's validation errors as
    422 `invalid_request`, anything unexpected as 500 `internal_error` (traceback in the server log only).

    `make_router` makes a subclass per ApiAuth (the class attribute `auth`).
    """

    auth: ClassVar[ApiAuth] = ApiAuth()  # no auth unless make_router set one

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()
        auth, has_body, where = self.auth, self.body_field is not None, self.path

        async def route_handler(request: Request) -> Any:
            try:
                auth.verify(request.headers.get("authorization"))
                if has_body:
                    body = await read_limited_body(request)
                    if body:
                        request._json = strict_json.loads(body, what="request body")  # noqa: SLF001
                return await handler(request)
            except FaceChainError as err:
                return error_response(err)
            except RequestValidationError as exc:
                return error_response(_validation_error(exc))
            except HTTPException as exc:
                return error_response(_http_error(exc))
            except Exception as exc:  # noqa: BLE001 - the client gets a JSON error, the log the traceback
                return _internal_error(where, exc)

        return route_handler


def parse_api_auth(value: str | None) -> ApiAuth:
    """`--api-auth user:pass[,user2:pass2]` -> ApiAuth. Set but unparseable means nobody gets in (never open).

    Parsed as the host's `Api.__init__` does (modules/api/api.py: `user, password = auth.split(":")` for each
    ","-separated entry, nothing stripped), so the same credentials open our routes and /sdapi/v1 ("a:b, c:d" has
    the user " c" there too). An entry without exactly one ":" stops the host from starting (ValueError), so our
    routes never run with one; should they, such an entry opens nothing.
    """
    if not value:
        return ApiAuth()
    credentials: dict[str, str] = {}
    for entry in value.split(","):
        parts = entry.split(":")
        if len(parts) == 2:
            credentials[parts[0]] = parts[1]
    return ApiAuth(credentials=credentials, enabled=True)


def auth_dependency(cmd_opts: Any) -> ApiAuth:
    """The auth our routes need under the host's command-line options."""
    return parse_api_auth(getattr(cmd_opts, "api_auth", None))


def make_router(auth: ApiAuth, *, tags: list[str] | None = None) -> APIRouter:
    """A router under /facechain/v1 with FaceChain errors and the host's auth. Add it with `app.include_router`."""
    route_class = type("FaceChainRoute", (FaceChainRoute,), {"auth": auth, "__module__": __name__})
    return APIRouter(
        prefix=API_PREFIX,
        route_class=route_class,
        dependencies=auth.dependencies(),
        tags=tags or ["FaceChain"],
    )
