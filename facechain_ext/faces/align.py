"""Face alignment: map five keypoints onto the ArcFace template with a similarity transform.

Every recogniser and most face crops in FaceChain start from the same picture: the face rotated, scaled and moved so
that the eyes, nose and mouth corners land on fixed template positions. Keypoints follow `types.KEYPOINT_NAMES`.
"""

from __future__ import annotations

import math

import numpy as np

# The ArcFace 112x112 five-point template (insightface's `arcface_dst`): left eye, right eye, nose tip,
# left mouth corner, right mouth corner, in pixels of the 112x112 crop.
ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def template_for_size(size: int) -> np.ndarray:
    """The ArcFace template scaled to a `size` x `size` crop (same face proportions, centred)."""
    if size <= 0:
        raise ValueError(f"crop size must be positive, got {size}")
    if size % 112 != 0 and size % 128 == 0:
        # insightface's convention for 128-multiples: the 112 template sits 8 px (at 128) right of the crop's left edge.
        ratio = size / 128.0
        return (ARCFACE_112 + np.array([8.0, 0.0], dtype=np.float32)) * ratio
    return ARCFACE_112 * (size / 112.0)


def similarity_matrix(src_kps: np.ndarray, dst_kps: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation; no reflection) taking src to dst.

    Umeyama's closed form: returns the (2, 3) matrix M with dst ~= M @ [x, y, 1]. Needs at least two distinct points.
    """
    src = np.asarray(src_kps, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst_kps, dtype=np.float64).reshape(-1, 2)
    if src.shape != dst.shape or src.shape[0] < 2:
        raise ValueError(f"need matching point sets with >= 2 points, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c**2).sum() / len(src)
    if src_var <= 1e-12:
        raise ValueError("source points are all identical; no transform is defined")
    cov = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # would be a reflection: flip the weakest axis instead
        sign[1, 1] = -1.0
    rotation = u @ sign @ vt
    scale = float((singular * np.diag(sign)).sum() / src_var)
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]]).astype(np.float64)


def apply_matrix(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to (N, 2) points."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ np.asarray(matrix, dtype=np.float64)[:, :2].T + np.asarray(matrix, dtype=np.float64)[:, 2]


def align_face(image: np.ndarray, kps: np.ndarray, size: int = 112, border_value: int = 0) -> np.ndarray:
    """The face warped onto the ArcFace template: a (size, size, C) uint8 crop of `image` (H, W, C) uint8."""
    import cv2  # lazy: cv2 is heavy and only needed when a crop is actually made

    matrix = similarity_matrix(np.asarray(kps, dtype=np.float32), template_for_size(size))
    return cv2.warpAffine(
        np.ascontiguousarray(image),
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(border_value, border_value, border_value),
    )


def roll_degrees(kps: np.ndarray) -> float:
    """In-plane rotation of the face from the eye line, in degrees.

    0 for level eyes; positive when the eye on the image's right is lower than the one on the left (the head is
    tilted clockwise on screen). Rotating the image by this angle counter-clockwise (PIL's `rotate(angle)`) levels it.
    """
    pts = np.asarray(kps, dtype=np.float64).reshape(-1, 2)
    dx, dy = pts[1] - pts[0]
    return math.degrees(math.atan2(dy, dx))
