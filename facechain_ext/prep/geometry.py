"""FaceChain's crop geometry and the eye-line rotation, as 2x3 affine matrices over the photo.

Everything is expressed as one affine map from the original photo to the output, so the upright rotation and
the crop are resampled once (no blur from rotating and then cropping), and pixels outside the photo come out
white (FaceChain's background). Keypoints and boxes are mapped with the same matrices.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from PIL import Image

from ..faces.align import apply_matrix
from ..faces.types import Face

WHITE = (255, 255, 255)


def rotation_about(center: tuple[float, float], degrees: float) -> np.ndarray:
    """Affine matrix rotating the image by `degrees` counter-clockwise (as displayed) about `center`.

    Rotating by `faces.align.roll_degrees(kps)` levels the eyes.
    """
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    cx, cy = center
    # y points down, so a counter-clockwise turn on screen is x' = cos*x + sin*y, y' = -sin*x + cos*y
    return np.array([[cos, sin, cx - cos * cx - sin * cy], [-sin, cos, cy + sin * cx - cos * cy]], dtype=np.float64)


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The affine map `outer(inner(p))`."""
    a = np.vstack([outer, [0.0, 0.0, 1.0]])
    b = np.vstack([inner, [0.0, 0.0, 1.0]])
    return (a @ b)[:2]


def invert(matrix: np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]


def translate_scale(dx: float, dy: float, scale: float = 1.0) -> np.ndarray:
    """p -> (p + (dx, dy)) * scale."""
    return np.array([[scale, 0.0, dx * scale], [0.0, scale, dy * scale]], dtype=np.float64)


def map_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return apply_matrix(matrix, points).astype(np.float32)


def map_face(face: Face, matrix: np.ndarray) -> Face:
    """`face` in the coordinates of `matrix`'s output (box: mapped centre, sides scaled; exact for translate+scale)."""
    scale = math.hypot(matrix[0, 0], matrix[1, 0])
    ((cx, cy),) = map_points(matrix, np.array([face.center]))
    half_w, half_h = face.width * scale / 2.0, face.height * scale / 2.0
    landmarks = None if face.landmarks is None else map_points(matrix, face.landmarks)
    return replace(
        face,
        bbox=(float(cx - half_w), float(cy - half_h), float(cx + half_w), float(cy + half_h)),
        kps=map_points(matrix, face.kps),
        landmarks=landmarks,
    )


def crop_matrix(center: tuple[float, float], long_side: float, crop_scale: float, center_y: float) -> tuple[np.ndarray, float]:
    """Map from (upright) photo coordinates into FaceChain's square crop, and the crop side in photo pixels."""
    side = crop_scale * long_side
    x0 = center[0] - 0.5 * side
    y0 = center[1] - center_y * side
    return translate_scale(-x0, -y0), side


def warp(image: Image.Image, matrix: np.ndarray, size: int) -> Image.Image:
    """Resample `image` through `matrix` into a white-padded `size` x `size` square."""
    import cv2  # lazy: heavy import

    out = cv2.warpAffine(
        np.asarray(image.convert("RGB")),
        matrix.astype(np.float64),
        (int(size), int(size)),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=WHITE,
    )
    return Image.fromarray(out)


def resize_square(image: Image.Image, resolution: int) -> Image.Image:
    if image.size == (resolution, resolution):
        return image
    # LANCZOS antialiases when shrinking and stays sharp when enlarging.
    return image.resize((resolution, resolution), Image.LANCZOS)


def prescale(image: Image.Image, scale: float) -> tuple[Image.Image, np.ndarray]:
    """`image` shrunk by `scale` when that is below 1 (antialiased), and the matrix from its pixels back to `image`'s."""
    if scale >= 1.0:
        return image, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    small = image.resize(size, Image.LANCZOS, reducing_gap=3.0)
    return small, np.array([[image.width / size[0], 0.0, 0.0], [0.0, image.height / size[1], 0.0]])
