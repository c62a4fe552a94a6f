"""Finding small faces in large photos: a second detection pass over overlapping tiles at a higher scale.

A backend analyses a photo no larger than `max_input_side` (dlib: a 1024 px copy; SCRFD: 640 px), and finds faces
down to `min_detectable_face` pixels *in that input* (dlib HOG with one upsampling: ~40 px; SCRFD: ~16 px). In a
6000 x 4000 photo the 1024 px copy shrinks every face 5.9x, so dlib misses faces below ~234 px. When that floor is
above the `min_face_size` asked for, the photo is also scanned at scale `min_detectable_face / min_face_size`
(at most 1: never enlarged) in tiles of `max_input_side` px that overlap by more than the largest face the first pass
can miss, so every such face lies whole inside at least one tile. Boxes cut by a tile's inner edge are dropped
(the neighbouring tile holds the whole face), and the rest are merged with the first pass by overlap.

Bound: at most `MAX_TILES` tiles of `max_input_side`² pixels. With `imaging.MAX_PIXELS` (64 MP) and dlib at
min_face_size 64 a photo needs at most 48 tiles; when a request would need more (a smaller min_face_size), the
tile scale is lowered until it fits and the smallest faces may be missed (logged).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np

from .types import Face

log = logging.getLogger(__name__)

MAX_TILES = 48
OVERLAP_MARGIN = 1.25  # tiles overlap by this much more than the largest face the first pass may miss
DUPLICATE_IOU = 0.3  # a tile face overlapping a kept face this much (or centred inside it) is the same face
EDGE_PX = 2.0  # a box this close to a tile's inner edge was cut by it


@dataclass(frozen=True)
class TilePlan:
    scale: float  # tile-pass pixels per photo pixel
    size: tuple[int, int]  # (width, height) of the photo at `scale`
    side: int  # tile side in scaled pixels
    origins: tuple[tuple[int, int], ...]  # top-left corners of the tiles in scaled pixels

    @property
    def count(self) -> int:
        return len(self.origins)


def _starts(length: int, side: int, overlap: int) -> list[int]:
    """Tile starts along one axis: evenly spread from 0 to length - side, consecutive tiles overlapping >= overlap."""
    if length <= side:
        return [0]
    count = math.ceil((length - overlap) / max(side - overlap, 1))
    count = max(count, 2)
    return [round(i * (length - side) / (count - 1)) for i in range(count)]


def _layout(width: int, height: int, scale: float, side: int, overlap_photo_px: float) -> TilePlan:
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    overlap = min(math.ceil(overlap_photo_px * scale), side // 2)
    xs, ys = _starts(size[0], side, overlap), _starts(size[1], side, overlap)
    return TilePlan(scale, size, side, tuple((x, y) for y in ys for x in xs))


def plan_tiles(
    width: int, height: int, *, max_input_side: int, min_detectable_face: float, min_face_size: float,
    max_tiles: int = MAX_TILES,
) -> TilePlan | None:
    """The tile pass a `width` x `height` photo needs so faces >= `min_face_size` px are found, or None."""
    coarse_scale = min(1.0, max_input_side / float(max(width, height)))
    coarse_floor = min_detectable_face / coarse_scale  # smallest face (photo px) the first pass finds reliably
    if coarse_floor <= min_face_size or min_face_size <= 0:
        return None
    scale = min(1.0, min_detectable_face / float(min_face_size))
    overlap = OVERLAP_MARGIN * coarse_floor
    plan = _layout(width, height, scale, max_input_side, overlap)
    while plan.count > max_tiles and plan.scale > coarse_scale:
        plan = _layout(width, height, max(plan.scale * 0.9, coarse_scale), max_input_side, overlap)
    if plan.scale < scale:
        log.warning("a %dx%d photo needs more than %d tiles for faces of %s px; faces below %.0f px may be missed",
                    width, height, max_tiles, min_face_size, min_detectable_face / plan.scale)
    return None if plan.scale <= coarse_scale else plan


def map_face(face: Face, offset: tuple[float, float], scale: float) -> Face:
    """`face` found in a tile at (offset, in scaled px) of the photo shrunk by `scale`, in photo pixels."""
    ox, oy = offset

    def points(array: np.ndarray | None) -> np.ndarray | None:
        if array is None:
            return None
        return ((np.asarray(array, np.float32) + np.array([ox, oy], np.float32)) / scale).astype(np.float32)

    x1, y1, x2, y2 = face.bbox
    extra = dict(face.extra)
    if "dlib_points" in extra:
        extra["dlib_points"] = points(extra["dlib_points"])
    return replace(
        face,
        bbox=((x1 + ox) / scale, (y1 + oy) / scale, (x2 + ox) / scale, (y2 + oy) / scale),
        kps=points(face.kps),
        landmarks=points(face.landmarks),
        extra={**extra, "tile_scale": scale},
    )


def cut_by_tile(face: Face, origin: tuple[int, int], tile_size: tuple[int, int], image_size: tuple[int, int]) -> bool:
    """True when the face box (tile pixels) touches an edge of the tile that is not the photo's own edge."""
    x1, y1, x2, y2 = face.bbox
    ox, oy = origin
    tw, th = tile_size
    width, height = image_size
    return ((x1 <= EDGE_PX and ox > 0) or (y1 <= EDGE_PX and oy > 0)
            or (x2 >= tw - EDGE_PX and ox + tw < width) or (y2 >= th - EDGE_PX and oy + th < height))


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _same_face(a: Face, b: Face) -> bool:
    cx, cy = a.center
    inside = b.bbox[0] <= cx <= b.bbox[2] and b.bbox[1] <= cy <= b.bbox[3]
    return inside or iou(a.bbox, b.bbox) >= DUPLICATE_IOU


def merge_faces(first_pass: list[Face], tile_faces: list[Face]) -> list[Face]:
    """First-pass faces, plus each tile face (best score first) that is not a face already kept."""
    kept = list(first_pass)
    for face in sorted(tile_faces, key=lambda f: f.score, reverse=True):
        if not any(_same_face(face, other) or _same_face(other, face) for other in kept):
            kept.append(face)
    return kept
