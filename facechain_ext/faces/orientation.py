"""Faces found in a photo turned by 90/180/270 degrees, given back in the pixels of the photo as it was sent.

PIL's `transpose(ROTATE_90)` turns a W x H picture counter-clockwise into an H x W one: the point (x, y) moves to
(y, W - x). ROTATE_180 sends it to (W - x, H - y) and ROTATE_270 to (H - y, x). The inverses below undo that on
continuous pixel coordinates (box corners, keypoints), so the boxes are exact and the keypoints still mark the same
eyes, nose and mouth (now in a sideways face; alignment and fusion work from them at any angle).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .types import Face


@dataclass
class FoundFaces:
    """What the orientation policy found: faces (largest first) in the photo's own pixels, and the turn that
    made them upright (degrees counter-clockwise; 0 when the photo was upright or no upright face was found)."""

    faces: list[Face]
    rotation: int

    @property
    def best(self) -> Face | None:
        return self.faces[0] if self.faces else None


def unrotate_points(points: np.ndarray, rotation: int, size: tuple[int, int]) -> np.ndarray:
    """(N, 2) points of the photo turned by `rotation`, in the pixels of the original `size` = (W, H) photo."""
    width, height = size
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    u, v = pts[:, 0], pts[:, 1]
    if rotation == 90:
        x, y = width - v, u
    elif rotation == 180:
        x, y = width - u, height - v
    elif rotation == 270:
        x, y = v, height - u
    else:
        return pts.copy()
    return np.stack([x, y], axis=1).astype(np.float32)


def unrotate_face(face: Face, rotation: int, size: tuple[int, int]) -> Face:
    """`face` found in the photo turned by `rotation`, in the original photo's pixels (embedding unchanged)."""
    if rotation == 0:
        return face
    x1, y1, x2, y2 = face.bbox
    corners = unrotate_points(np.array([[x1, y1], [x2, y2]]), rotation, size)
    (bx1, by1), (bx2, by2) = corners.min(axis=0), corners.max(axis=0)
    extra = dict(face.extra)
    if extra.get("dlib_points") is not None:
        extra["dlib_points"] = unrotate_points(extra["dlib_points"], rotation, size)
    return replace(
        face,
        bbox=(float(bx1), float(by1), float(bx2), float(by2)),
        kps=unrotate_points(face.kps, rotation, size),
        landmarks=None if face.landmarks is None else unrotate_points(face.landmarks, rotation, size),
        extra={**extra, "upright_rotation": rotation},
    )
