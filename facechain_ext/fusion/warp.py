"""Bring the reference face onto the target face: a similarity transform (rotation, uniform scale, shift).

Fitted on the 5 keypoints, plus the dense landmarks when both faces carry the same landmark set, then applied only
to the crop of the target that fusion works on (cheap even for a 1024 px reference).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..faces.align import similarity_matrix
from ..faces.types import Face


def reference_to_target(reference: Face, target: Face) -> np.ndarray:
    """(2, 3) matrix mapping reference-image pixels to target-image pixels."""
    src = np.asarray(reference.kps, np.float32)
    dst = np.asarray(target.kps, np.float32)
    if _same_landmark_set(reference, target):
        src = np.concatenate([src, np.asarray(reference.landmarks, np.float32)])
        dst = np.concatenate([dst, np.asarray(target.landmarks, np.float32)])
    return np.asarray(similarity_matrix(src, dst), np.float64)


def warp_into_box(image: np.ndarray, matrix: np.ndarray, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Warp `image` by `matrix` and return only the `box` (x1, y1, x2, y2) of the destination.

    Returns (warped RGB crop, valid mask uint8 0/255): pixels that came from outside the reference image are
    reflected for a smooth Poisson guide, but marked invalid so they are never pasted.
    """
    x1, y1, x2, y2 = box
    shifted = matrix.copy()
    shifted[:, 2] -= (x1, y1)
    size = (x2 - x1, y2 - y1)
    warped = cv2.warpAffine(image, shifted, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    ones = np.full(image.shape[:2], 255, np.uint8)
    valid = cv2.warpAffine(ones, shifted, size, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped, valid


def _same_landmark_set(a: Face, b: Face) -> bool:
    if a.landmarks is None or b.landmarks is None or a.backend != b.backend:
        return False
    return len(a.landmarks) == len(b.landmarks) and len(a.landmarks) > 5
