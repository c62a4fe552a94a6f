"""Comparing identity embeddings: cosine similarity and the mean (reference) embedding of a set of photos."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..errors import FaceChainError


def l2_normalize(vector: np.ndarray) -> np.ndarray:
    """`vector` scaled to unit length (float32); a zero vector is refused because it has no direction."""
    vec = np.asarray(vector, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(vec))
    if not np.isfinite(norm) or norm <= 1e-12:
        raise FaceChainError("invalid_request", "An embedding is zero or not finite; it cannot be compared.")
    return vec / norm


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of the angle between two embeddings, in [-1, 1] (1 = same direction)."""
    va, vb = l2_normalize(a), l2_normalize(b)
    if va.shape != vb.shape:
        raise FaceChainError(
            "invalid_request",
            f"Embeddings of different sizes ({va.size} vs {vb.size}) come from different face backends.",
            sizes=[int(va.size), int(vb.size)],
        )
    return float(np.clip(np.dot(va, vb), -1.0, 1.0))


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All pairwise cosine similarities between the rows of `a` (N, D) and `b` (M, D): an (N, M) array."""
    ma = np.atleast_2d(np.asarray(a, dtype=np.float32))
    mb = np.atleast_2d(np.asarray(b, dtype=np.float32))
    ma = ma / np.maximum(np.linalg.norm(ma, axis=1, keepdims=True), 1e-12)
    mb = mb / np.maximum(np.linalg.norm(mb, axis=1, keepdims=True), 1e-12)
    return np.clip(ma @ mb.T, -1.0, 1.0)


def mean_embedding(embs: Iterable[np.ndarray]) -> np.ndarray:
    """The L2-normalised mean of unit embeddings: the identity's reference vector."""
    vectors = [l2_normalize(e) for e in embs]
    if not vectors:
        raise FaceChainError("invalid_request", "No embeddings to average: at least one photo with a face is needed.")
    if len({v.size for v in vectors}) != 1:
        raise FaceChainError("invalid_request", "Embeddings of different sizes cannot be averaged (mixed face backends).")
    return l2_normalize(np.mean(np.stack(vectors), axis=0))
