"""Mix a fused face crop back into the image by the feathered mask × strength, touching nothing else."""

from __future__ import annotations

import numpy as np

from .mask import FaceMask


def composite_into(image: np.ndarray, fused_crop: np.ndarray, mask: FaceMask, strength: float) -> np.ndarray:
    """Blend `fused_crop` (the crop at `mask.box`, full strength) into `image` in place.

    Returns the boolean map (image-sized) of pixels that were written. Pixels with zero weight are not even
    re-rounded, so everything outside the mask stays bit-identical to the input.
    """
    x1, y1, x2, y2 = mask.box
    weight = mask.alpha * float(strength)
    written = np.zeros(image.shape[:2], bool)
    if x2 <= x1 or y2 <= y1 or not (weight > 0).any():
        return written
    original = image[y1:y2, x1:x2]
    mixed = original.astype(np.float32) + weight[..., None] * (fused_crop.astype(np.float32) - original)
    rounded = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    inside = weight > 0
    original[inside] = rounded[inside]
    written[y1:y2, x1:x2] = inside
    return written


def bounding_region(written: np.ndarray) -> tuple[int, int, int, int] | None:
    """x1, y1, x2, y2 (exclusive) of the True pixels, or None."""
    ys, xs = np.nonzero(written)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
