"""Putting a face pass's output back into the template, and keeping every other pixel exactly as it was.

The host's inpainting ("only masked", modules/processing.py) returns the whole image with the repainted crop pasted
back and the original composited over it through the mask (`apply_overlay`), unless the user turned the
`overlay_inpaint` option off: then it returns only the working-resolution crop. `compose_pass` accepts both and in
either case guarantees the contract: where the face mask is 0, the result is bit-identical to the input.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from PIL import Image

from ..errors import FaceChainError
from .masks import FaceRegionMask


def compose_pass(before: np.ndarray, generated: Image.Image, mask: FaceRegionMask,
                 paste_to: Optional[tuple[int, int, int, int]]) -> np.ndarray:
    """The running image (uint8 H×W×3) after one pass; `paste_to` is the host's (x, y, w, h) of the crop."""
    height, width = before.shape[:2]
    full = mask.full()
    if generated.size == (width, height):
        out = np.asarray(generated.convert("RGB")).copy()
    elif paste_to is not None:
        out = _uncrop_and_blend(before, generated, full, paste_to)
    else:
        raise FaceChainError(
            "internal_error",
            f"The host returned a {generated.size[0]}x{generated.size[1]} image for a {width}x{height} template and no "
            "crop position; cannot put the face back.",
        )
    outside = full == 0
    out[outside] = before[outside]
    return out


def _uncrop_and_blend(before: np.ndarray, crop: Image.Image, alpha8: np.ndarray, paste_to: tuple[int, int, int, int]) -> np.ndarray:
    """What the host's `uncrop` + `apply_overlay` do: resize the crop back to its box, blend it in through the mask."""
    x, y, w, h = (int(v) for v in paste_to)
    resized = np.asarray(crop.convert("RGB").resize((w, h), Image.LANCZOS), np.float32)
    out = before.copy()
    region = out[y:y + h, x:x + w].astype(np.float32)
    alpha = alpha8[y:y + h, x:x + w, None].astype(np.float32) / 255.0
    blended = resized[: region.shape[0], : region.shape[1]] * alpha + region * (1.0 - alpha)
    out[y:y + h, x:x + w] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    return out


def restrict(changed: np.ndarray, original: np.ndarray, alpha8: np.ndarray) -> np.ndarray:
    """`changed` where `alpha8` > 0, `original` elsewhere (fusion must not write outside the face's mask)."""
    keep = alpha8 == 0
    out = changed.copy()
    out[keep] = original[keep]
    return out
