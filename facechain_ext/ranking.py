"""Similarity ranking of generated images: which ones look most like the person, and which fail FaceChain's filter.

    scores = score_images(images, reference_embedding, analyzer, RankingOptions(top_k=6))
    order = rank(scores, options)          # kept indices, best first

Score = cosine similarity between the image's face embedding and the identity's reference embedding (the mean of its
photos). FaceChain's filter: exactly one face, and the face's long side within [min_face_ratio, max_face_ratio] of
the image's short side (FaceChain used 120–300 px at 512 px; our defaults are looser, see below). Images without a face are never dropped silently: they get
score None and reason "no_face", and are kept after the ranked ones unless `drop_no_face`.

Detection looks only for faces the filter could keep (`min_face_px`): a face well below `min_face_ratio` (under
~0.7 of it with dlib) is not looked for, so it neither makes an image "multiple_faces" nor "face_size" (an image with
only such a face counts as "no_face"). This is what keeps dlib's detector from scanning a 4× upsampled image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence, Union

import numpy as np
from PIL import Image

from .errors import FaceChainError
from .faces.types import Face

if TYPE_CHECKING:
    from .faces.analyzer import FaceAnalyzer

ImageLike = Union[Image.Image, np.ndarray]

# FaceChain kept faces whose box long side was 120–300 px in a 512 px image (its detector, its upper-body framing).
FACECHAIN_MIN_FACE_RATIO = 120.0 / 512.0  # ≈ 0.234
FACECHAIN_MAX_FACE_RATIO = 300.0 / 512.0  # ≈ 0.586
# Our defaults are looser: headshot styles fill more of the frame, dlib's HOG boxes are tighter than FaceChain's
# detector, and a user who paid for an image should not lose it to framing. They still drop thumbnails-in-a-crowd
# and faces cut by the frame; FaceChain's range is one RankingOptions away.
DEFAULT_MIN_FACE_RATIO = 0.08
DEFAULT_MAX_FACE_RATIO = 0.95

# Reasons an image is not ranked (stable strings shown in infotext, API and UI).
NO_FACE = "no_face"
MULTIPLE_FACES = "multiple_faces"
FACE_SIZE = "face_size"
LOW_SCORE = "low_score"


@dataclass(frozen=True)
class RankingOptions:
    top_k: int | None = None  # at most this many images returned (ranked ones first); None = all
    min_score: float | None = None  # cosine similarity below this is dropped (reason "low_score")
    min_face_ratio: float | None = DEFAULT_MIN_FACE_RATIO  # None = no lower bound
    max_face_ratio: float | None = DEFAULT_MAX_FACE_RATIO  # None = no upper bound
    drop_no_face: bool = False

    def __post_init__(self) -> None:
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k < 1):
            raise FaceChainError("invalid_request", f"The top_k value {self.top_k!r} must be a whole number of at least 1 (or left out).", field="top_k")
        if self.min_score is not None and not -1.0 <= float(self.min_score) <= 1.0:
            raise FaceChainError("invalid_request", f"The min_score value {self.min_score} is outside -1 to 1.", field="min_score")
        for name in ("min_face_ratio", "max_face_ratio"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= float(value) <= 10.0:
                raise FaceChainError("invalid_request", f"{name}: {value} must be between 0 and 10.", field=name)
        low, high = self.min_face_ratio, self.max_face_ratio
        if low is not None and high is not None and low > high:
            raise FaceChainError(
                "invalid_request", f"The min_face_ratio {low} is larger than the max_face_ratio {high}.", field="min_face_ratio"
            )


@dataclass
class ImageScore:
    index: int  # position in the input list
    score: float | None  # cosine similarity of the best-matching face, None without a face
    face_count: int
    reason: str | None = None  # None: passed the filter; else no_face | multiple_faces | face_size | low_score
    face_ratio: float | None = None  # largest face's long side / image short side

    @property
    def passed(self) -> bool:
        return self.reason is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "score": None if self.score is None else round(self.score, 4),
            "face_count": self.face_count,
            "reason": self.reason,
            "face_ratio": None if self.face_ratio is None else round(self.face_ratio, 4),
        }


def score_images(
    images: Sequence[ImageLike],
    reference_embedding: np.ndarray,
    analyzer: FaceAnalyzer,
    options: RankingOptions = RankingOptions(),
    *,
    faces: Sequence[Sequence[Face] | None] | None = None,
) -> list[ImageScore]:
    """Score every image against the identity's reference embedding and apply FaceChain's filter.

    `faces` (optional, one list per image) reuses detections made earlier on the same pixels (e.g. by fusion,
    which never moves a face); embeddings missing from them are computed on `images`.
    """
    reference = _checked_reference(reference_embedding, analyzer)
    if faces is not None and len(faces) != len(images):
        raise FaceChainError("invalid_request", f"There are {len(faces)} face lists for {len(images)} images; give one per image.", field="faces")
    results = []
    for index, image in enumerate(images):
        known = None if faces is None else faces[index]
        if known is not None:
            detected = list(known)
        else:
            detected = detect_for_ranking(analyzer, image, options, embed=True)
        results.append(score_faces(index, _short_side(image), detected, reference, image, analyzer, options))
    return results


def score_faces(
    index: int,
    short_side: int,
    faces: Sequence[Face],
    reference: np.ndarray,
    image: ImageLike,
    analyzer: FaceAnalyzer,
    options: RankingOptions,
) -> ImageScore:
    """The ImageScore of one image from its detected faces (largest first)."""
    if not faces:
        return ImageScore(index, None, 0, NO_FACE)
    similarities = [_similarity(face, reference, image, analyzer) for face in faces]
    ratio = float(max(faces[0].width, faces[0].height)) / float(max(short_side, 1))
    result = ImageScore(index, max(similarities), len(faces), None, ratio)
    if len(faces) > 1:
        result.reason = MULTIPLE_FACES
    elif not _ratio_ok(ratio, options):
        result.reason = FACE_SIZE
    elif options.min_score is not None and result.score is not None and result.score < options.min_score:
        result.reason = LOW_SCORE
    return result


def min_face_px(short_side: int, options: RankingOptions) -> float | None:
    """The smallest face (box long side, px) the filter keeps in an image with this short side; None: no floor.

    Faces smaller than this cannot pass the filter: `detect_for_ranking` does not look for them.
    """
    ratio = options.min_face_ratio
    if ratio is None or ratio <= 0 or short_side <= 0:
        return None
    return float(ratio) * float(short_side)


def detect_for_ranking(analyzer: FaceAnalyzer, image: ImageLike, options: RankingOptions, *, embed: bool) -> list[Face]:
    """The faces of `image` the filter can judge, largest first: those at least `min_face_px` (dlib then needs no
    upsampled detector pass); every face without a floor."""
    floor = min_face_px(_short_side(image), options)
    if floor is None:
        return analyzer.detect(image, embed=embed)
    return analyzer.detect(image, embed=embed, min_face_size=floor, skip_smaller=True)


def rank(scores: Sequence[ImageScore], options: RankingOptions = RankingOptions()) -> list[int]:
    """Indices to keep, best first: passing images by score (ties: input order), then the no-face images in input
    order unless `drop_no_face`; `top_k` bounds the whole list. Images failing the filter are left out."""
    passed = sorted((s for s in scores if s.passed), key=lambda s: (-float(s.score or 0.0), s.index))
    order = [s.index for s in passed]
    if not options.drop_no_face:
        order += sorted(s.index for s in scores if s.reason == NO_FACE)
    return order if options.top_k is None else order[: options.top_k]


def _similarity(face: Face, reference: np.ndarray, image: ImageLike, analyzer: FaceAnalyzer) -> float:
    embedding = face.embedding if face.embedding is not None else analyzer.embed(image, face)
    face.embedding = embedding
    vector = np.asarray(embedding, np.float32).ravel()
    if vector.shape != reference.shape:
        raise _mismatch(reference.size, vector.size, analyzer)
    return float(np.clip(np.dot(vector / max(float(np.linalg.norm(vector)), 1e-12), reference), -1.0, 1.0))


def _checked_reference(reference_embedding: np.ndarray, analyzer: FaceAnalyzer) -> np.ndarray:
    vector = np.asarray(reference_embedding, np.float32).ravel()
    if vector.size != analyzer.embedding_dim:
        raise _mismatch(vector.size, analyzer.embedding_dim, analyzer)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm <= 1e-12:
        raise FaceChainError("invalid_request", "The reference embedding is zero or not finite.", field="reference_embedding")
    return vector / norm


def _mismatch(reference_dim: int, face_dim: int, analyzer: FaceAnalyzer) -> FaceChainError:
    return FaceChainError(
        "invalid_request",
        f"The reference embedding has {reference_dim} values but the {analyzer.name} face backend gives {face_dim}: "
        "it was computed with another face backend. Recompute it with the active backend.",
        field="reference_embedding",
        backend=analyzer.name,
    )


def _ratio_ok(ratio: float, options: RankingOptions) -> bool:
    if options.min_face_ratio is not None and ratio < options.min_face_ratio:
        return False
    return options.max_face_ratio is None or ratio <= options.max_face_ratio


def _short_side(image: ImageLike) -> int:
    if isinstance(image, Image.Image):
        return min(image.size)
    return int(min(np.asarray(image).shape[:2]))
