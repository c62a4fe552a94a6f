"""The default, weight-free fusion: aligned reference face, colour-matched, Poisson-blended into the target face.

No model beyond the face analyzer: works offline on every backend and on CPU in milliseconds.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..faces.types import Face
from .color import match_color_lab
from .mask import FaceMask, build_face_mask
from .warp import reference_to_target, warp_into_box

POISSON_PAD = 3  # OpenCV's seamlessClone needs the mask off the crop's border; reflect-pad the crop this much


class BlendFusion:
    """Landmark-aligned, colour-matched seamless cloning (OpenCV Poisson blending)."""

    name = "blend"

    def __init__(self, *, feather: float = 0.02, margin: float = 0.12) -> None:
        self.feather = feather
        self.margin = margin

    def fuse_one(
        self, target: np.ndarray, target_face: Face, reference: np.ndarray, reference_face: Face
    ) -> tuple[np.ndarray, FaceMask]:
        """Full-strength fused crop at the returned mask's box (RGB uint8 arrays in, crop out)."""
        mask = build_face_mask(target.shape, target_face, feather=self.feather, margin=self.margin)
        x1, y1, x2, y2 = mask.box
        target_crop = target[y1:y2, x1:x2]
        if target_crop.size == 0:
            return target_crop.copy(), mask
        warped, valid = warp_into_box(reference, reference_to_target(reference_face, target_face), mask.box)
        mask = mask.restricted(valid)
        if not mask.binary.any():
            return target_crop.copy(), mask
        guide = match_color_lab(warped, target_crop, mask.binary)
        return poisson_blend(guide, target_crop, mask.binary), mask


def poisson_blend(source: np.ndarray, destination: np.ndarray, binary: np.ndarray) -> np.ndarray:
    """`source` seamlessly cloned into `destination` (same-size crops) inside `binary`, in place (no shift)."""
    pad = POISSON_PAD
    src = cv2.copyMakeBorder(source, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    dst = cv2.copyMakeBorder(destination, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    region = cv2.copyMakeBorder(binary, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    x, y, w, h = cv2.boundingRect(region)
    # seamlessClone centres the mask's bounding box on `center` using integer halves: this places it in situ.
    center = (x + w // 2, y + h // 2)
    cloned = cv2.seamlessClone(src, dst, region, center, cv2.NORMAL_CLONE)
    return cloned[pad:-pad, pad:-pad]
