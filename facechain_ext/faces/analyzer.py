"""`FaceAnalyzer`: the one face-analysis object every other package uses, whatever backend runs underneath."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

from . import tiling
from .backend import FaceBackend, ImageLike, as_rgb_array
from .orientation import FoundFaces, unrotate_face
from .similarity import cosine_similarity
from .types import Face

# Faces at least this large (box long side, photo pixels) are found at any photo resolution (see `tiling`);
# the same floor training-photo preparation accepts (PrepOptions.min_face_size).
DEFAULT_MIN_FACE_SIZE = 64

# PIL transposes that rotate the picture counter-clockwise by the key's degrees (no resampling, exact).
_ROTATIONS = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}


@dataclass
class UprightResult:
    """`image` is the input rotated counter-clockwise by `rotation` degrees (0/90/180/270); `faces` are in its pixels."""

    image: Image.Image
    faces: list[Face]
    rotation: int

    @property
    def best(self) -> Face | None:
        return self.faces[0] if self.faces else None


class FaceAnalyzer:
    """Detection, keypoints, embeddings and the upright search over one backend (thread-safe, models loaded once)."""

    def __init__(self, backend: FaceBackend, *, min_face_size: float = DEFAULT_MIN_FACE_SIZE,
                 max_tiles: int = tiling.MAX_TILES) -> None:
        self.backend = backend
        self.min_face_size = min_face_size
        self.max_tiles = max_tiles

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def threshold(self) -> float:
        return float(self.backend.threshold)

    @property
    def embedding_dim(self) -> int:
        return int(self.backend.embedding_dim)

    def info(self) -> dict[str, Any]:
        return {**self.backend.info(), "threshold": self.threshold, "embedding_dim": self.embedding_dim}

    def detect(self, image: ImageLike, *, embed: bool = True, min_face_size: float | None = None) -> list[Face]:
        """All faces in `image` (PIL or RGB uint8 array), largest first, in that image's pixel coordinates.

        Every face whose box is at least `min_face_size` px (default: the analyzer's) is found whatever the photo's
        resolution: large photos get a bounded second pass over tiles (`tiling`). Boxes are clipped to the image.
        """
        rgb = as_rgb_array(image)
        faces = self.backend.detect(rgb, embed=embed)
        plan = self.tile_plan(rgb.shape[1], rgb.shape[0], min_face_size)
        if plan is not None:
            faces = tiling.merge_faces(faces, self._detect_tiles(rgb, plan, embed))
        height, width = rgb.shape[:2]
        clipped = [clip_to_image(face, width, height) for face in faces]
        return sorted(clipped, key=lambda f: f.area, reverse=True)

    def tile_plan(self, width: int, height: int, min_face_size: float | None = None) -> tiling.TilePlan | None:
        """The tile pass `detect` runs on a `width` x `height` image (None: the backend's own pass suffices)."""
        return tiling.plan_tiles(
            width, height, max_input_side=self.backend.max_input_side,
            min_detectable_face=self.backend.min_detectable_face,
            min_face_size=self.min_face_size if min_face_size is None else min_face_size, max_tiles=self.max_tiles,
        )

    def _detect_tiles(self, rgb: np.ndarray, plan: tiling.TilePlan, embed: bool) -> list[Face]:
        """Faces from every tile, in `rgb`'s pixels; embeddings come from the full-resolution photo."""
        import cv2  # lazy: heavy import

        scaled = rgb if plan.scale == 1.0 else cv2.resize(rgb, plan.size, interpolation=cv2.INTER_AREA)
        found = []
        for x, y in plan.origins:
            tile = np.ascontiguousarray(scaled[y:y + plan.side, x:x + plan.side])
            tile_size = (tile.shape[1], tile.shape[0])
            for face in self.backend.detect(tile, embed=False):
                if not tiling.cut_by_tile(face, (x, y), tile_size, plan.size):
                    found.append(tiling.map_face(face, (x, y), plan.scale))
        if embed:
            found = [replace(face, embedding=self.backend.embed(rgb, face)) for face in found]
        return found

    def embed(self, image: ImageLike, face: Face) -> np.ndarray:
        """The L2-normalised identity embedding of `face` (coordinates in `image`)."""
        return self.backend.embed(as_rgb_array(image), face)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        return cosine_similarity(a, b)

    def is_same_person(self, a: np.ndarray, b: np.ndarray) -> bool:
        return cosine_similarity(a, b) >= self.threshold

    def detect_upright(self, image: ImageLike, *, embed: bool = True, min_face_size: float | None = None) -> UprightResult:
        """Faces of the photo turned the right way up.

        EXIF orientation is already applied by `imaging.load_image`. When the largest face found as-is is not upright
        (eyes above mouth), the photo is tried at 90/180/270 degrees and the rotation whose largest face is upright
        with the best detection score wins. Without any upright face the photo is returned unrotated.
        """
        rgb_image = Image.fromarray(as_rgb_array(image)) if not isinstance(image, Image.Image) or image.mode != "RGB" else image
        faces = self.detect(rgb_image, embed=False, min_face_size=min_face_size)
        if faces and faces[0].is_upright():
            return self._finish(UprightResult(rgb_image, faces, 0), embed)
        best = UprightResult(rgb_image, faces, 0)
        best_score = -1.0
        for degrees, transpose in _ROTATIONS.items():
            rotated = rgb_image.transpose(transpose)
            candidates = self.detect(rotated, embed=False, min_face_size=min_face_size)
            if candidates and candidates[0].is_upright() and candidates[0].score > best_score:
                best, best_score = UprightResult(rotated, candidates, degrees), candidates[0].score
        return self._finish(best, embed)

    def find_faces(self, image: ImageLike, *, embed: bool = True, min_face_size: float | None = None) -> FoundFaces:
        """The one orientation policy of every surface (detect, similarity, fuse, identities, CLI).

        The upright search of `detect_upright` (which training-photo preparation uses too), with the faces given back
        in `image`'s own pixels: a photo sent sideways gets the boxes of its sideways faces, found and embedded as if
        it had been turned upright.
        """
        upright = self.detect_upright(image, embed=embed, min_face_size=min_face_size)
        if upright.rotation in (90, 270):
            size = (upright.image.height, upright.image.width)
        else:
            size = upright.image.size
        return FoundFaces([unrotate_face(f, upright.rotation, size) for f in upright.faces], upright.rotation)

    def _finish(self, result: UprightResult, embed: bool) -> UprightResult:
        """Add embeddings only for the chosen rotation (the search itself does not need them)."""
        if embed and result.faces:
            rgb = as_rgb_array(result.image)
            for face in result.faces:
                if face.embedding is None:
                    face.embedding = self.backend.embed(rgb, face)
        return result


def clip_to_image(face: Face, width: int, height: int) -> Face:
    """`face` with its box clipped to a `width` x `height` image (the convention documented on `Face`)."""
    x1, y1, x2, y2 = (float(v) for v in face.bbox)
    clipped = (min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width), min(max(y2, 0.0), height))
    return face if clipped == (x1, y1, x2, y2) else replace(face, bbox=clipped)
