"""Optional head mask: keep face and hair, paint the rest white (FaceChain's human-parsing step).

The mask itself comes from a face-parsing model supplied by the caller (`HeadMasker`); preparation only runs it
when one is present, otherwise the report says the background was kept. This module owns the model-independent
part: clean the raw mask (largest region, a little dilation so hair edges survive) and composite on white.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from ..faces.types import Face


@runtime_checkable
class HeadMasker(Protocol):
    name: str

    def head_mask(self, crop: Image.Image, face: Face) -> np.ndarray:
        """Boolean (H, W) array, True where the crop shows the head (face or hair); `face` is in crop pixels."""
        ...


def clean_mask(mask: np.ndarray, dilate_px: int = 8) -> np.ndarray:
    """Largest connected region of `mask`, holes filled, dilated by `dilate_px`."""
    import cv2  # lazy: cv2 is heavy and not needed at import

    binary = (np.asarray(mask) > 0).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:
        return np.zeros(binary.shape, dtype=bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    region = (labels == largest).astype(np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(region)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    if dilate_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate_px + 1, 2 * dilate_px + 1))
        filled = cv2.dilate(filled, kernel)
    return filled.astype(bool)


def apply_head_mask(crop: Image.Image, mask: np.ndarray, dilate_px: int = 8) -> Image.Image:
    """`crop` with everything outside the cleaned head mask painted white."""
    keep = clean_mask(mask, dilate_px)
    if keep.shape != (crop.height, crop.width):
        raise ValueError(f"head mask shape {keep.shape} does not match the crop {crop.size}")
    pixels = np.asarray(crop.convert("RGB")).copy()
    pixels[~keep] = 255
    return Image.fromarray(pixels)
