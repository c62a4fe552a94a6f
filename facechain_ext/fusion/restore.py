"""Face restoration after fusion: a restorer (the host's GFPGAN/CodeFormer) applied to each fused face only.

A `Restorer` has the signature of the host's `modules.face_restoration.restore_faces(np_image) -> np_image`
(A1111 modules/face_restoration.py): an RGB uint8 (H, W, 3) array in, the same size out, with the faces it finds
restored and pasted back (modules/face_restoration_utils.py: facexlib's RetinaFace, a 512 px aligned face, the net,
paste-back). The core never imports the host: the webui glue passes the host's function in.

We hand the restorer a crop around the fused face with context (its detector needs to see a whole face), take back the
part under the fusion mask's box, and mix it in by the mask's feathered alpha × `visibility`. That is the host's
Extras blend (`Image.blend(image, restored, visibility)`, scripts/postprocessing_gfpgan.py) confined to the fused face,
so pixels outside the fusion mask stay bit-identical and a face the user did not fuse is never touched.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from ..errors import FaceChainError
from .composite import composite_into
from .mask import FaceMask

Restorer = Callable[[np.ndarray], np.ndarray]

CONTEXT = 0.5  # context around the mask's box, on each side, as a fraction of the face size
LEARNED_BACKENDS = ("inswapper",)  # low-resolution learned swaps: restored by default (restore_face=None)


def restore_wanted(setting: Optional[bool], backend: Optional[str]) -> bool:
    """Whether to restore after fusion with `backend`: the user's True/False, or by default (None) after learned fusion."""
    if setting is not None:
        return bool(setting)
    return backend in LEARNED_BACKENDS


def checked_visibility(visibility: float) -> float:
    value = float(visibility)
    if not 0.0 <= value <= 1.0:
        raise FaceChainError(
            "invalid_request", f"The restore visibility {visibility} is outside 0 to 1.", field="restore_visibility", value=visibility
        )
    return value


def context_box(mask: FaceMask, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """x1, y1, x2, y2 (exclusive) of the crop the restorer gets: the mask's box grown by CONTEXT × face size."""
    height, width = int(shape[0]), int(shape[1])
    pad = int(round(CONTEXT * mask.face_size))
    x1, y1, x2, y2 = mask.box
    return max(x1 - pad, 0), max(y1 - pad, 0), min(x2 + pad, width), min(y2 + pad, height)


def restore_face_region(image: np.ndarray, mask: FaceMask, restore: Restorer, visibility: float) -> np.ndarray:
    """Restore the face under `mask` in `image` (RGB uint8, changed in place); returns the image-sized bool map of
    written pixels. Inside the mask: round(original + alpha × visibility × (restored − original)).

    Raises FaceChainError("restore_failed") when the restorer returns something other than an RGB uint8 array of the
    size it was given (the host's restorers always do); exceptions of the restorer itself propagate to the caller.
    """
    written = np.zeros(image.shape[:2], bool)
    x1, y1, x2, y2 = mask.box
    if visibility <= 0.0 or x2 <= x1 or y2 <= y1:
        return written
    cx1, cy1, cx2, cy2 = context_box(mask, image.shape)
    context = np.ascontiguousarray(image[cy1:cy2, cx1:cx2])
    restored = restore(context.copy())  # a copy: a restorer may work in place
    if not isinstance(restored, np.ndarray) or restored.shape != context.shape or restored.dtype != np.uint8:
        got = f"{type(restored).__name__} {getattr(restored, 'shape', '')} {getattr(restored, 'dtype', '')}".strip()
        raise FaceChainError(
            "restore_failed", f"The face restorer returned {got} for a {context.shape} uint8 image.", shape=list(context.shape)
        )
    crop = restored[y1 - cy1 : y2 - cy1, x1 - cx1 : x2 - cx1]
    return composite_into(image, crop, mask, visibility)
