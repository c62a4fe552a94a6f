"""Where the face is, as a mask: a convex outline from forehead to chin and cheek to cheek, plus its feathered alpha.

The outline is drawn once in the 112×112 ArcFace template frame (the frame the 5 keypoints are normalised to) and
mapped onto each face with the similarity transform of its keypoints, so it works with any backend that gives the
5 keypoints. When the backend also gives dense landmarks (the jaw contour), their hull refines the lower face.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..faces.align import ARCFACE_112, apply_matrix, similarity_matrix
from ..faces.types import Face

# Face outline in ArcFace-112 template coordinates (eyes at y≈51.6, mouth at y≈92.3, eye distance ≈35 px):
# forehead a little above the brows, cheeks just inside the face contour, chin below the mouth.
TEMPLATE_OUTLINE = np.array(
    [
        [56.0, 20.0],
        [40.0, 23.0],
        [72.0, 23.0],
        [27.0, 34.0],
        [85.0, 34.0],
        [22.0, 52.0],
        [90.0, 52.0],
        [23.0, 70.0],
        [89.0, 70.0],
        [28.0, 88.0],
        [84.0, 88.0],
        [38.0, 103.0],
        [74.0, 103.0],
        [56.0, 111.0],
    ],
    dtype=np.float32,
)
# Outline points above the eyes: dense landmarks (jaw contours) say nothing about the forehead, so these stay.
FOREHEAD_POINTS = TEMPLATE_OUTLINE[TEMPLATE_OUTLINE[:, 1] < 45.0]
MIN_DENSE_LANDMARKS = 68  # fewer points than this are keypoint-like and do not trace the jaw


@dataclass
class FaceMask:
    """A face region cropped to its bounding box (plus margin) inside the full image."""

    box: tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive) of the crop in image pixels
    binary: np.ndarray  # uint8 0/255 in the crop: the convex face outline
    alpha: np.ndarray  # float32 0..1 in the crop: eroded + Gaussian-feathered, zero outside `binary`
    face_size: float  # keypoint-based face scale in pixels (drives erosion/feather radii)
    sigma: float  # feather sigma in pixels

    def restricted(self, valid: np.ndarray) -> FaceMask:
        """The same mask limited to `valid` (uint8 0/255 in the crop), feathered again from the new edge."""
        if bool((valid[self.binary > 0] > 0).all()):
            return self
        binary = np.where(valid > 0, self.binary, 0).astype(np.uint8)
        return FaceMask(self.box, binary, feathered_alpha(binary, sigma=self.sigma), self.face_size, self.sigma)


def face_outline(face: Face) -> np.ndarray:
    """Convex outline polygon (N, 2) float32 of `face` in image pixels."""
    to_image = similarity_matrix(ARCFACE_112, np.asarray(face.kps, dtype=np.float32))
    outline = _apply(to_image, TEMPLATE_OUTLINE)
    landmarks = face.landmarks
    if landmarks is not None and len(landmarks) >= MIN_DENSE_LANDMARKS:
        outline = np.concatenate([_apply(to_image, FOREHEAD_POINTS), np.asarray(landmarks, np.float32)])
    return cv2.convexHull(outline.astype(np.float32)).reshape(-1, 2)


def face_scale(face: Face) -> float:
    """Template-to-image scale × 112: roughly the face height in pixels, independent of the detector's box."""
    matrix = similarity_matrix(ARCFACE_112, np.asarray(face.kps, dtype=np.float32))
    return float(np.hypot(matrix[0, 0], matrix[0, 1]) * 112.0)


def build_face_mask(image_shape: tuple[int, ...], face: Face, *, feather: float = 0.02, margin: float = 0.12) -> FaceMask:
    """Mask of `face` in an image of `image_shape` (H, W, ...), cropped to the outline's box plus `margin`.

    `feather` is the Gaussian sigma as a fraction of the face size; the binary outline is eroded by 3 sigma first,
    so the feathered alpha reaches exactly zero on and beyond the outline (pixels outside it never change).
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    polygon = face_outline(face)
    size = face_scale(face)
    pad = int(round(margin * size)) + 2
    x1, y1 = np.floor(polygon.min(axis=0)).astype(int) - pad
    x2, y2 = np.ceil(polygon.max(axis=0)).astype(int) + pad + 1
    box = (max(int(x1), 0), max(int(y1), 0), min(int(x2), width), min(int(y2), height))
    crop_w, crop_h = box[2] - box[0], box[3] - box[1]
    binary = np.zeros((max(crop_h, 0), max(crop_w, 0)), np.uint8)
    if crop_w <= 0 or crop_h <= 0:
        return FaceMask(box, binary, binary.astype(np.float32), size, 1.0)
    local = np.round(polygon - np.array([box[0], box[1]], np.float32)).astype(np.int32)
    cv2.fillConvexPoly(binary, local, 255)
    sigma = max(feather * size, 1.0)
    return FaceMask(box, binary, feathered_alpha(binary, sigma=sigma), size, sigma)


def feathered_alpha(binary: np.ndarray, *, sigma: float) -> np.ndarray:
    """Erode by the blur's reach, then blur: a soft edge that stays strictly inside `binary`."""
    reach = int(np.ceil(3.0 * sigma))
    # Distance to the outline instead of a large erosion kernel: same disc-shaped erosion, linear time.
    distance = cv2.distanceTransform(binary, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    # Rounded before the threshold: OpenCV 4.11's precise transform returns values that differ by ~2e-6 from one call
    # to the next, and a pixel exactly at an integer distance (sqrt of a square) would flip in or out of the core, so
    # the same image fused twice would differ.
    core = (np.round(distance, 3) > reach + 1).astype(np.float32)
    ksize = 2 * reach + 1
    alpha = cv2.GaussianBlur(core, (ksize, ksize), sigma, borderType=cv2.BORDER_CONSTANT)
    alpha[binary == 0] = 0.0  # belt and braces: the contract is "nothing outside the outline changes"
    return alpha


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return apply_matrix(matrix, points).astype(np.float32)
