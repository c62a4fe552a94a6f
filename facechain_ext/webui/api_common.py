"""What every FaceChain HTTP route shares: the URL prefix, HTTP Basic auth like the host's, and JSON errors.

Errors always look like `{"detail": {"code", "message", "context"}}` with the status from `FaceChainError.http_status`:
- `facechain_route(fn)` turns a raised FaceChainError into that response and any other exception into a 500
  `internal_error` (logged once with its traceback on the server, never sent to the client);
- `FaceChainRoute` does the same for request-body validation failures (422 `invalid_request` with the field errors);
- auth failures are 401 with `WWW-Authenticate: Basic`, as the host answers.

Use `make_router(auth)` and `app.include_router(router)` so that all of this applies to a module's routes.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from dataclasses import dataclass, field
from secrets import compare_digest
from typing import Any, Callable

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from ..errors import FaceChainError

API_PREFIX = "/facechain/v1"
log = logging.getLogger("facechain")


def error_response(err: FaceChainError) -> JSONResponse:
    return JSONResponse(status_code=err.http_status, content={"detail": jsonable(err.to_dict())})


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


def _internal_error(fn: Callable, exc: Exception) -> JSONResponse:
    log.exception("FaceChain: unexpected error in %s", getattr(fn, "__name__", fn))
    err = FaceChainError(
        "internal_error",
        f"FaceChain failed unexpectedly ({type(exc).__name__}: {exc}); the server log has the details.",
    )
    return error_response(err)


def facechain_route(fn: Callable) -> Callable:
    """Wrap a route endpoint so that every failure becomes a JSON error response (see the module docstring).

    FastAPI reads the endpoint's signature: we hand it the original one with annotations resolved in the
    endpoint's own module (our modules use `from __future__ import annotations`).
    """
    if asyncio.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except FaceChainError as err:
                return error_response(err)
            except HTTPException:
                raise
            except Exception as exc:  # noqa: BLE001 - the client gets a JSON error, the log the traceback
                return _internal_error(fn, exc)

        wrapper: Callable = async_wrapper
    else:

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except FaceChainError as err:
                return error_response(err)
            except HTTPException:
                raise
            except Exception as exc:  # noqa: BLE001
                return _internal_error(fn, exc)

        wrapper = sync_wrapper
    wrapper.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    return wrapper


class FaceChainRoute(APIRoute):
    """APIRoute whose request-validation failures use FaceChain's error format instead of FastAPI's list."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route_handler(request: Any) -> Any:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                problems = []
                for e in exc.errors():
                    field_name = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
                    problems.append(f"{field_name}: {e.get('msg', 'invalid')}")
                message = "The request is invalid: " + "; ".join(problems)
                err = FaceChainError("invalid_request", message, errors=exc.errors())
                return error_response(err)

        return route_handler


class _BasicOrNone(HTTPBasic):
    """fastapi's HTTPBasic raises its own 401 (`{"detail": "Invalid authentication credentials"}`) for a header it
    cannot decode (bad base64, no ':', non-ASCII), whatever `auto_error` says (fastapi/security/http.py): read such a
    header as no credentials, so `ApiAuth.check` answers it in FaceChain's error format like any wrong password."""

    async def __call__(self, request: Request) -> HTTPBasicCredentials | None:  # type: ignore[override]
        try:
            return await super().__call__(request)
        except HTTPException:
            return None


# FastAPI reads the annotations of __call__ without this module's globals: hand it resolved ones (see facechain_route)
_BasicOrNone.__call__.__signature__ = inspect.signature(_BasicOrNone.__call__, eval_str=True)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ApiAuth:
    """HTTP Basic auth for our routes, the same check the host applies to /sdapi/v1 when --api-auth is set.

    Extension routes get no auth from the host (HOST_CONTRACT §7), so we enforce it ourselves.
    """

    credentials: dict[str, str] = field(default_factory=dict)
    enabled: bool = False

    def check(self, credentials: HTTPBasicCredentials | None = Depends(_BasicOrNone(auto_error=False))) -> bool:
        if credentials is not None and credentials.username in self.credentials:
            # compare_digest on both parts: no timing hint about which one was wrong
            if compare_digest(credentials.password.encode(), self.credentials[credentials.username].encode()):
                return True
        raise HTTPException(
            status_code=401,
            detail={"code": "unauthorized", "message": "Incorrect username or password", "context": {}},
            headers={"WWW-Authenticate": "Basic"},
        )

    def dependencies(self) -> list[Any]:
        return [Depends(self.check)] if self.enabled else []


def parse_api_auth(value: str | None) -> ApiAuth:
    """`--api-auth user:pass[,user2:pass2]` -> ApiAuth. Set but unparseable means nobody gets in (never open).

    Parsed as the host's `Api.__init__` does (modules/api/api.py): split on "," then ":", nothing stripped, so the
    same credentials open our routes and /sdapi/v1 ("a:b, c:d" has the user " c" there too). Where the host would
    fail to start (an entry with no ":" or a password containing ":"), we skip the entry / keep the rest.
    """
    if not value:
        return ApiAuth()
    credentials: dict[str, str] = {}
    for entry in value.split(","):
        user, sep, password = entry.partition(":")
        if sep and user:
            credentials[user] = password
    return ApiAuth(credentials=credentials, enabled=True)


def auth_dependency(cmd_opts: Any) -> ApiAuth:
    """The auth our routes need under the host's command-line options."""
    return parse_api_auth(getattr(cmd_opts, "api_auth", None))


def make_router(auth: ApiAuth, *, tags: list[str] | None = None) -> APIRouter:
    """A router under /facechain/v1 with FaceChain errors and the host's auth. Add it with `app.include_router`."""
    return APIRouter(
        prefix=API_PREFIX,
        route_class=FaceChainRoute,
        dependencies=auth.dependencies(),
        tags=tags or ["FaceChain"],
    )
