"""How much each candidate photo looks like the person in the reference photos: the one behaviour of the
`/face/similarity` route and the `similarity` CLI command.

Every photo goes through the same orientation policy (`FaceAnalyzer.find_faces`: a sideways photo is searched
upright) and the largest face counts. A photo that cannot be used does not fail the request: a candidate gets a
null score, a reference is left out of the mean, and each gets an error entry naming it (input name, role, index,
code, message). Only when no reference photo gives a face does the whole request fail (`no_face`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import FaceChainError
from .similarity import cosine_similarity, mean_embedding

if TYPE_CHECKING:
    from ..imaging import ImageSource
    from .analyzer import FaceAnalyzer

# Failures that belong to one photo; anything else (backend missing, a bug) still fails the request.
PHOTO_ERRORS = frozenset({"unreadable_image", "unsupported_format", "image_too_large", "no_face"})
SCORE_DIGITS = 6


def photo_embedding(analyzer: FaceAnalyzer, name: str, source: ImageSource) -> np.ndarray:
    """The embedding of the largest face in the photo, or FaceChainError naming it (unreadable, no face, ...)."""
    from ..imaging import load_image

    found = analyzer.find_faces(load_image(source, name), embed=True)
    if found.best is None or found.best.embedding is None:
        raise FaceChainError("no_face", f"{name}: no face found (also tried the photo turned by 90, 180 and 270 degrees).",
                             path=name)
    return found.best.embedding


def _embed_each(
    analyzer: FaceAnalyzer, photos: Sequence[tuple[str, ImageSource]], role: str, errors: list[dict[str, Any]]
) -> list[np.ndarray | None]:
    embeddings: list[np.ndarray | None] = []
    for index, (name, source) in enumerate(photos):
        try:
            embeddings.append(photo_embedding(analyzer, name, source))
        except FaceChainError as err:
            if err.code not in PHOTO_ERRORS:
                raise
            embeddings.append(None)
            errors.append({"input": name, "role": role, "index": index, "code": err.code, "message": err.message})
    return embeddings


def compare_photos(
    analyzer: FaceAnalyzer,
    references: Sequence[tuple[str, ImageSource]],
    candidates: Sequence[tuple[str, ImageSource]],
    *,
    top_k: int | None = None,
) -> dict[str, Any]:
    """{scores: [float | None] per candidate, order: indices best first (top_k of them), errors, backend, threshold}.

    Scores are cosine similarities to the mean embedding of the usable reference photos.
    """
    if top_k is not None and top_k < 1:
        raise FaceChainError("invalid_request", "The top_k value must be at least 1 (or left out).", field="top_k")
    errors: list[dict[str, Any]] = []
    usable = [e for e in _embed_each(analyzer, references, "reference", errors) if e is not None]
    if not usable:
        raise FaceChainError(
            "no_face",
            f"None of the {len(references)} reference photo(s) gives a face: " + " ".join(e["message"] for e in errors),
            path=errors[0]["input"] if errors else None, errors=errors,
        )
    reference = mean_embedding(usable)
    scores = [None if e is None else round(cosine_similarity(reference, e), SCORE_DIGITS)
              for e in _embed_each(analyzer, candidates, "candidate", errors)]
    order = sorted((i for i, s in enumerate(scores) if s is not None), key=lambda i: (-float(scores[i] or 0.0), i))
    return {
        "scores": scores,
        "order": order if top_k is None else order[:top_k],
        "errors": errors,
        "backend": analyzer.name,
        "threshold": round(float(analyzer.threshold), SCORE_DIGITS),
    }
