"""Choosing the fusion backend: "blend" (weight-free, always there), "inswapper" (learned, optional) or "auto"."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import FaceChainError
from .blend import BlendFusion
from .inswapper import ARCFACE_DIM, InswapperFusion, find_inswapper_model

if TYPE_CHECKING:
    from ..config import Settings
    from ..faces.analyzer import FaceAnalyzer
    from . import FusionBackend

FUSION_BACKENDS = ("auto", "blend", "inswapper")


def select_backend(
    settings: Settings, analyzer: FaceAnalyzer, name: str = "auto", *, allow_learned: bool = False
) -> FusionBackend:
    """The fusion backend to use.

    "auto": inswapper only when learned fusion is allowed (an explicit user setting: the file may simply be lying in
    the shared insightface folder of another extension, and its licence is non-commercial), a model file is present
    and the face backend gives ArcFace embeddings; otherwise blend. "inswapper" named explicitly is the user's own
    choice: it fails loudly when the model or ArcFace embeddings are missing.
    """
    wanted = (name or "auto").strip().lower()
    if wanted not in FUSION_BACKENDS:
        raise FaceChainError(
            "invalid_request", f"Unknown fusion backend {name!r}; choose one of {', '.join(FUSION_BACKENDS)}.", backend=name
        )
    if wanted == "blend":
        return BlendFusion()
    model = find_inswapper_model(settings)
    if wanted == "auto":
        usable = allow_learned and model is not None and analyzer.embedding_dim == ARCFACE_DIM
        return InswapperFusion(model, analyzer) if usable and model is not None else BlendFusion()
    if model is None:
        where = settings.models_dir / "fusion"
        raise FaceChainError(
            "model_missing",
            f"No inswapper model found: put an inswapper-class .onnx file (e.g. inswapper_128.onnx) in {where}.",
            backend="inswapper",
            path=str(where),
        )
    return InswapperFusion(model, analyzer)
