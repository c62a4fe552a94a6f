"""`FaceAnalyzer`: the one face-analysis object every other package uses, whatever backend runs underneath."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .backend import FaceBackend, ImageLike, as_rgb_array
from .similarity import cosine_similarity
from .types import Face

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

    def __init__(self, backend: FaceBackend) -> None:
        self.backend = backend

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

    def detect(self, image: ImageLike, *, embed: bool = True) -> list[Face]:
        """All faces in `image` (PIL or RGB uint8 array), largest first, in that image's pixel coordinates."""
        faces = self.backend.detect(as_rgb_array(image), embed=embed)
        return sorted(faces, key=lambda f: f.area, reverse=True)

    def embed(self, image: ImageLike, face: Face) -> np.ndarray:
        """The L2-normalised identity embedding of `face` (coordinates in `image`)."""
        return self.backend.embed(as_rgb_array(image), face)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        return cosine_similarity(a, b)

    def is_same_person(self, a: np.ndarray, b: np.ndarray) -> bool:
        return cosine_similarity(a, b) >= self.threshold

    def detect_upright(self, image: ImageLike, *, embed: bool = True) -> UprightResult:
        """Faces of the photo turned the right way up.

        EXIF orientation is already applied by `imaging.load_image`. When the largest face found as-is is not upright
        (eyes above mouth), the photo is tried at 90/180/270 degrees and the rotation whose largest face is upright
        with the best detection score wins. Without any upright face the photo is returned unrotated.
        """
        rgb_image = Image.fromarray(as_rgb_array(image)) if not isinstance(image, Image.Image) or image.mode != "RGB" else image
        faces = self.detect(rgb_image, embed=False)
        if faces and faces[0].is_upright():
            return self._finish(UprightResult(rgb_image, faces, 0), embed)
        best = UprightResult(rgb_image, faces, 0)
        best_score = -1.0
        for degrees, transpose in _ROTATIONS.items():
            rotated = rgb_image.transpose(transpose)
            candidates = self.detect(rotated, embed=False)
            if candidates and candidates[0].is_upright() and candidates[0].score > best_score:
                best, best_score = UprightResult(rotated, candidates, degrees), candidates[0].score
        return self._finish(best, embed)

    def _finish(self, result: UprightResult, embed: bool) -> UprightResult:
        """Add embeddings only for the chosen rotation (the search itself does not need them)."""
        if embed and result.faces:
            rgb = as_rgb_array(result.image)
            for face in result.faces:
                if face.embedding is None:
                    face.embedding = self.backend.embed(rgb, face)
        return result
