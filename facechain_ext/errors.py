"""One error type for everything a user can get wrong, with a stable machine-readable code.

Every surface (tab, HTTP routes, CLI) renders a `FaceChainError` the same way: code + message + context.
"""

from __future__ import annotations

from typing import Any

# HTTP status for each code; codes not listed map to 400.
HTTP_STATUS: dict[str, int] = {
    "invalid_request": 422,
    "invalid_json": 422,
    "non_finite_number": 422,
    "json_too_deep": 422,
    "body_too_large": 413,
    "unauthorized": 401,
    "invalid_config": 503,
    "invalid_name": 422,
    "unreadable_image": 422,
    "image_too_large": 413,
    "unsupported_format": 415,
    "no_face": 422,
    "multiple_faces": 422,
    "no_usable_photos": 422,
    "unsupported_model": 422,
    "unsupported_host": 501,
    "not_found": 404,
    "identity_not_found": 404,
    "identity_broken": 409,
    "identity_has_user_files": 409,
    "job_not_found": 404,
    "style_not_found": 404,
    "invalid_style": 422,
    "name_taken": 409,
    "job_running": 409,
    "model_missing": 503,
    "dependency_missing": 503,
    "backend_unavailable": 503,
    "host_unavailable": 503,
    "cancelled": 409,
    "lora_unreadable": 422,
    "training_failed": 500,
    "restore_failed": 500,
    "downloads_disabled": 403,
    "unverifiable_model": 422,
    "download_failed": 502,
    "checksum_mismatch": 502,
    "unsafe_archive": 502,
    "internal_error": 500,
    # template portraits (facechain_ext/templates)
    "template_too_small": 422,
    "template_too_large": 422,
    "face_index_out_of_range": 422,
    "duplicate_face": 422,
    "face_too_small": 422,
    "fact_unavailable": 503,
}


class FaceChainError(Exception):
    """A failure the user can understand and act on.

    `code` is stable (tests, API clients and the UI match on it); `message` says what happened to which input
    and how to fix it; `context` carries machine-readable details (file name, expected path, ...).
    """

    def __init__(self, code: str, message: str, **context: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.context = context

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 400)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "context": self.context}

    def __repr__(self) -> str:
        return f"FaceChainError({self.code!r}, {self.message!r})"
