"""Set-level checks FaceChain never made: near-duplicate photos and photos of someone else.

Both work on candidates that already passed the per-photo checks, in a deterministic order, and return which
candidate is rejected because of which other one, so messages can name both photos.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..faces.similarity import cosine_similarity

THUMB_SIDE = 32
MAX_ASPECT_CHANGE = 0.03  # log ratio of width/height below which two photos may be the same picture


@dataclass
class Candidate:
    index: int  # position in the request
    name: str
    embedding: np.ndarray | None  # L2-normalised
    thumb: np.ndarray  # standardised grey thumbnail of the whole (upright) photo, see `thumbnail`
    quality: float
    aspect: float = 1.0  # width / height of the photo


def thumbnail(photo: Image.Image) -> np.ndarray:
    """Zero-mean, unit-norm grey thumbnail: the dot product of two is their correlation (lighting-invariant).

    Taken from the whole photo, not the crop: a resized or re-compressed copy gives a slightly different face box
    and so a shifted crop, but the same whole picture.
    """
    grey = np.asarray(photo.convert("L").resize((THUMB_SIDE, THUMB_SIDE), Image.BILINEAR), dtype=np.float64).ravel()
    grey -= grey.mean()
    norm = np.linalg.norm(grey)
    return grey / norm if norm > 0 else grey


def cosine(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """`faces.similarity.cosine_similarity`, NaN when a photo has no embedding."""
    if a is None or b is None:
        return float("nan")
    return cosine_similarity(a, b)


def find_duplicates(
    candidates: Sequence[Candidate], embedding_min: float, image_min: float
) -> dict[int, tuple[int, float, float]]:
    """{rejected index: (kept index, embedding similarity, image similarity)}; the better-quality photo is kept."""
    ranked = sorted(candidates, key=lambda c: (-c.quality, c.index))
    kept: list[Candidate] = []
    rejected: dict[int, tuple[int, float, float]] = {}
    for cand in ranked:
        for other in kept:
            if abs(math.log(cand.aspect / other.aspect)) > MAX_ASPECT_CHANGE:
                continue  # a different framing is a different picture
            emb = cosine(cand.embedding, other.embedding)
            img = float(np.dot(cand.thumb, other.thumb))
            if emb >= embedding_min and img >= image_min:
                rejected[cand.index] = (other.index, emb, img)
                break
        else:
            kept.append(cand)
    return rejected


def find_strangers(candidates: Sequence[Candidate], threshold: float) -> tuple[int | None, dict[int, float]]:
    """(index of the reference photo, {rejected index: its similarity to the majority}).

    The reference is the medoid of the largest "same person" neighbourhood: the photo that matches the most
    others at `threshold` (ties: higher mean similarity, then quality). A photo is a stranger when it matches
    neither the reference nor the mean embedding of the reference's matches. If no two photos match, only the
    best-quality photo is kept: with no majority there is no way to tell who the identity is.
    """
    usable = [c for c in candidates if c.embedding is not None]
    if len(usable) < 2:
        return (usable[0].index if usable else None), {}
    embs = np.stack([c.embedding / np.linalg.norm(c.embedding) for c in usable])
    sims = embs @ embs.T
    np.fill_diagonal(sims, np.nan)
    matches = np.nansum(sims >= threshold, axis=1)
    mean_sim = np.nanmean(sims, axis=1)
    order = sorted(range(len(usable)), key=lambda i: (-matches[i], -mean_sim[i], -usable[i].quality, usable[i].index))
    ref = order[0]
    if matches[ref] == 0:
        return usable[ref].index, {c.index: float(sims[ref, i]) for i, c in enumerate(usable) if i != ref}
    group = [ref] + [i for i in range(len(usable)) if i != ref and sims[ref, i] >= threshold]
    centroid = embs[group].mean(axis=0)
    centroid /= np.linalg.norm(centroid)
    rejected: dict[int, float] = {}
    for i, cand in enumerate(usable):
        if i in group:
            continue
        to_centroid = float(embs[i] @ centroid)
        if to_centroid < threshold:
            rejected[cand.index] = to_centroid
    return usable[ref].index, rejected
