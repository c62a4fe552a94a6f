"""What every face backend provides, and the image plumbing they share.

A backend turns an RGB uint8 array into `Face` records in that array's pixel coordinates. `FaceAnalyzer` adds the
backend-independent parts (input checks, sorting, the upright search) on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Union

import numpy as np
from PIL import Image

from ..errors import FaceChainError
from .types import Face

ImageLike = Union[Image.Image, np.ndarray]


class FaceBackend(Protocol):
    name: str
    threshold: float  # calibrated cosine similarity above which two faces are the same person
    embedding_dim: int
    max_input_side: int  # long side (px) the detector works at; larger inputs are shrunk to it
    min_detectable_face: float  # smallest face box (px of that input) the detector finds reliably

    def detect(self, rgb: np.ndarray, *, embed: bool = True, min_face_size: float | None = None) -> list[Face]:
        """Faces in `rgb`. `min_face_size` (px, box long side) is a hint: the smallest face the caller needs, so the
        backend may skip work on smaller ones; faces at least that large must be found as without the hint."""
        ...

    def embed(self, rgb: np.ndarray, face: Face) -> np.ndarray: ...

    def info(self) -> dict[str, Any]: ...


def as_rgb_array(image: ImageLike, name: str = "image") -> np.ndarray:
    """A contiguous (H, W, 3) uint8 RGB array from a PIL image (any mode) or an RGB/gray uint8 array."""
    if isinstance(image, Image.Image):
        from ..imaging import to_rgb

        return np.ascontiguousarray(np.asarray(to_rgb(image), dtype=np.uint8))
    if not isinstance(image, np.ndarray):
        raise FaceChainError(
            "invalid_request", f"{name}: expected an image or an RGB uint8 array, got {type(image).__name__}."
        )
    if image.dtype != np.uint8:
        raise FaceChainError("invalid_request", f"{name}: expected uint8 pixels, got {image.dtype}.", path=name)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        raise FaceChainError("invalid_request", f"{name}: an RGBA array is ambiguous; load the image file instead.")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise FaceChainError("invalid_request", f"{name}: expected an (H, W, 3) array, got shape {image.shape}.", path=name)
    return np.ascontiguousarray(image)


@dataclass(frozen=True)
class WorkImage:
    """A resized copy used for analysis; `scale` = work pixels per original pixel."""

    array: np.ndarray
    scale: float


def working_copy(rgb: np.ndarray, *, max_side: int, min_side: int) -> WorkImage:
    """Downscale so the long side is <= max_side, or upscale so it is >= min_side (small photos, small faces)."""
    height, width = rgb.shape[:2]
    long_side = max(height, width)
    if long_side > max_side:
        scale = max_side / long_side
    elif long_side < min_side:
        scale = min_side / long_side
    else:
        return WorkImage(rgb, 1.0)
    import cv2  # lazy: only backends that analyse images need it

    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(rgb, size, interpolation=interpolation)
    # The rounded size changes the effective scale slightly; use the long side's exact ratio.
    exact = (size[0] / width) if width >= height else (size[1] / height)
    return WorkImage(np.ascontiguousarray(resized), exact)
