"""Optional learned fusion: an inswapper-class ONNX model (128×128 aligned face + identity latent → swapped face).

The model file is never downloaded here (the manifest and the user's consent handle that); this module only finds a
file the user placed, checks that it really is an inswapper-class model, and runs it through insightface's
`INSwapper`. The swapped crop is pasted back with FaceChain's own feathered mask and strength, so the "nothing
outside the face changes" guarantee holds for this backend too.

inswapper conditions on an ArcFace (512-d) identity embedding: it needs the insightface analyzer.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import FaceChainError
from ..faces.types import Face
from .mask import FaceMask, build_face_mask

if TYPE_CHECKING:
    from ..config import Settings
    from ..faces.analyzer import FaceAnalyzer

INSWAPPER_INPUT_SIZE = 128
ARCFACE_DIM = 512


def inswapper_candidates(settings: Settings) -> list[Path]:
    """Where a user may put the model, in priority order: our models folder, then the shared insightface folder
    (the place other webui face-swap extensions use)."""
    folders = [settings.models_dir / "fusion", settings.models_dir / "insightface"]
    if settings.insightface_root is not None:
        folders.append(settings.insightface_root)
    found: list[Path] = []
    for folder in folders:
        if folder.is_dir():
            found.extend(sorted(p for p in folder.glob("*.onnx") if "swap" in p.name.lower()))
    return found


def find_inswapper_model(settings: Settings) -> Path | None:
    candidates = inswapper_candidates(settings)
    return candidates[0] if candidates else None


def check_inswapper_session(session: Any, path: Path) -> None:
    """An inswapper-class model has exactly 2 inputs, the first (N, 3, 128, 128), and one output; refuse others."""
    inputs = session.get_inputs()
    shape = list(inputs[0].shape) if inputs else []
    if (
        len(inputs) != 2
        or len(shape) != 4
        or shape[2:] != [INSWAPPER_INPUT_SIZE, INSWAPPER_INPUT_SIZE]
        or len(session.get_outputs()) != 1
    ):
        raise FaceChainError(
            "unsupported_model",
            f"{path.name}: not an inswapper-class model (expected 2 inputs, the first N×3×128×128, and 1 output; "
            f"got inputs {[list(i.shape) for i in inputs]}).",
            path=str(path),
        )


class InswapperFusion:
    """Learned face swap via insightface's INSwapper, composited with FaceChain's mask."""

    name = "inswapper"

    def __init__(self, model_path: Path, analyzer: FaceAnalyzer, *, providers: list[str] | None = None) -> None:
        if analyzer.embedding_dim != ARCFACE_DIM:
            raise FaceChainError(
                "backend_unavailable",
                f"The inswapper fusion backend needs ArcFace (512-d) embeddings from the insightface face backend; "
                f"the active face backend is {analyzer.name} ({analyzer.embedding_dim}-d).",
                backend="inswapper",
                face_backend=analyzer.name,
            )
        self.model_path = Path(model_path)
        self.analyzer = analyzer
        self._swapper = self._load(providers)

    def _load(self, providers: list[str] | None) -> Any:
        import onnxruntime
        from insightface.model_zoo.inswapper import INSwapper

        if not self.model_path.is_file():
            raise FaceChainError("model_missing", f"The inswapper model is not at {self.model_path}.", path=str(self.model_path))
        try:
            session = onnxruntime.InferenceSession(str(self.model_path), providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises several unrelated types for a bad file
            raise FaceChainError(
                "unsupported_model", f"{self.model_path.name}: ONNX Runtime cannot load it ({exc}).", path=str(self.model_path)
            ) from exc
        check_inswapper_session(session, self.model_path)
        return INSwapper(model_file=str(self.model_path), session=session)

    def fuse_one(
        self, target: np.ndarray, target_face: Face, reference: np.ndarray, reference_face: Face
    ) -> tuple[np.ndarray, FaceMask]:
        import cv2

        embedding = reference_face.embedding
        if embedding is None or np.asarray(embedding).size != ARCFACE_DIM:
            # Stored on the (cached) reference face so a job embeds its reference once, not once per image.
            embedding = reference_face.embedding = self.analyzer.embed(reference, reference_face)
        source = SimpleNamespace(normed_embedding=np.asarray(embedding, np.float32))
        bgr = np.ascontiguousarray(target[:, :, ::-1])
        swapped_bgr, matrix = self._swapper.get(
            bgr, SimpleNamespace(kps=np.asarray(target_face.kps, np.float32)), source, paste_back=False
        )
        mask = build_face_mask(target.shape, target_face)
        x1, y1, x2, y2 = mask.box
        back = cv2.invertAffineTransform(matrix)
        back[:, 2] -= (x1, y1)
        crop = cv2.warpAffine(
            np.ascontiguousarray(swapped_bgr[:, :, ::-1]),
            back,
            (x2 - x1, y2 - y1),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
        )
        # Only where the 128×128 swap actually covers the crop.
        covered = cv2.warpAffine(
            np.full(swapped_bgr.shape[:2], 255, np.uint8), back, (x2 - x1, y2 - y1), flags=cv2.INTER_NEAREST, borderValue=0
        )
        return crop, mask.restricted(covered)
