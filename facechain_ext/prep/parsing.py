"""The head mask's model: BiSeNet face parsing (CelebAMask-HQ's 19 classes) run with onnxruntime.

FaceChain kept "face ∪ hair" from a human-parsing model and painted the rest white. We use the widely used MIT-licensed
BiSeNet face parser (zllrunning/face-parsing.PyTorch, 512x512 RGB in, (1, 19, 512, 512) class scores out) on a square
around the head, so the face fills the parser's input the way its training images did. Optional: without the file,
preparation keeps the background and says so.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..errors import FaceChainError
from ..faces.types import Face
from . import geometry as geo

if TYPE_CHECKING:
    from ..config import Settings

# File names accepted in <models_dir>/parsing (the upstream ONNX export has been published under several names).
PARSING_FILES = ("face_parsing_bisenet.onnx", "face-parsing-bisenet.onnx", "79999_iter.onnx")
INPUT_SIDE = 512
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # ImageNet statistics, as the parser was trained
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# CelebAMask-HQ labels kept as "head": skin, brows, eyes, glasses, ears, earrings, nose, mouth, lips, hair.
# Dropped: background 0, neck 14, necklace 15, cloth 16, hat 18.
HEAD_LABELS = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 17])
HEAD_BOX_SCALE = 2.4  # side of the parsed square, in face box long sides (room for hair)
HEAD_BOX_LIFT = 0.2  # the square's centre sits this many face sides above the face centre (hair is above)


def find_parsing_model(settings: Settings) -> Path | None:
    folder = settings.models_dir / "parsing"
    return next((folder / name for name in PARSING_FILES if (folder / name).is_file()), None)


def head_masker_for(settings: Settings) -> BiSeNetHeadMasker | None:
    """A head masker when the parsing model file is installed (and onnxruntime imports), else None."""
    path = find_parsing_model(settings)
    if path is None:
        return None
    try:
        import onnxruntime  # noqa: F401 - only checking that it is there
    except ImportError:
        return None
    return BiSeNetHeadMasker(path)


class BiSeNetHeadMasker:
    """HeadMasker over a BiSeNet face-parsing ONNX file; the session is created on first use, once."""

    name = "BiSeNet face parsing"

    def __init__(self, model_path: Path) -> None:
        self.model_path = Path(model_path)
        self._session: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._session is None:
                import onnxruntime as ort

                try:
                    self._session = ort.InferenceSession(str(self.model_path), providers=["CPUExecutionProvider"])
                except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
                    raise FaceChainError(
                        "model_missing",
                        f"The face-parsing model {self.model_path} cannot be loaded ({exc}).",
                        path=str(self.model_path),
                    ) from exc
            return self._session

    def labels(self, image: Image.Image) -> np.ndarray:
        """(H, W) CelebAMask-HQ class of every pixel of a square `image` (resized to the parser's 512 internally)."""
        session = self._load()
        pixels = np.asarray(image.convert("RGB").resize((INPUT_SIDE, INPUT_SIDE), Image.BILINEAR), dtype=np.float32)
        batch = ((pixels / 255.0 - MEAN) / STD).transpose(2, 0, 1)[None].astype(np.float32)
        scores = session.run(None, {session.get_inputs()[0].name: batch})[0]
        if scores.ndim != 4 or scores.shape[1] != 19:
            raise FaceChainError(
                "unsupported_model", f"{self.model_path.name}: expected (1, 19, H, W) class scores, got {scores.shape}."
            )
        labels = scores[0].argmax(axis=0).astype(np.uint8)
        return np.asarray(Image.fromarray(labels).resize(image.size, Image.NEAREST))

    def head_mask(self, crop: Image.Image, face: Face) -> np.ndarray:
        """True where the parser sees face or hair, within a square around `face` (crop pixels)."""
        import cv2  # lazy: heavy import

        side = HEAD_BOX_SCALE * face.long_side
        cx, cy = face.center
        cy -= HEAD_BOX_LIFT * face.long_side
        to_square = geo.translate_scale(side / 2.0 - cx, side / 2.0 - cy, INPUT_SIDE / side)
        square = geo.warp(crop, to_square, INPUT_SIDE)
        labels = self.labels(square)
        back = cv2.warpAffine(
            labels, geo.invert(to_square), crop.size, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        return np.isin(back, HEAD_LABELS)
