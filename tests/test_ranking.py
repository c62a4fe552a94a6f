"""Similarity ranking on real photos (../shared/data) with the real dlib analyzer, and the ranking rules themselves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from photo_helpers import downscaled
from PIL import Image

from facechain_ext.config import Settings
from facechain_ext.errors import FaceChainError
from facechain_ext.faces import create_analyzer
from facechain_ext.faces.analyzer import FaceAnalyzer
from facechain_ext.faces.similarity import mean_embedding
from facechain_ext.faces.types import Face
from facechain_ext.imaging import load_image
from facechain_ext.ranking import (
    DEFAULT_MAX_FACE_RATIO,
    DEFAULT_MIN_FACE_RATIO,
    FACECHAIN_MAX_FACE_RATIO,
    FACECHAIN_MIN_FACE_RATIO,
    ImageScore,
    RankingOptions,
    rank,
    score_images,
)

NO_SIZE_FILTER = RankingOptions(min_face_ratio=None, max_face_ratio=None)


@dataclass
class Photo:
    identity: str
    path: str
    image: Image.Image
    faces: list[Face]


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory: pytest.TempPathFactory) -> FaceAnalyzer:
    return create_analyzer(Settings(models_dir=tmp_path_factory.mktemp("models"), face_backend="dlib"), "dlib")


@pytest.fixture(scope="module")
def pool(analyzer: FaceAnalyzer, faces_table: list[dict]) -> list[Photo]:
    """Every photo of the 7 identities with ≥ 4 photos, plus one photo of each other identity (52 photos, 17 people),
    detected once at 512 px (the generated-image size)."""
    counts: dict[str, int] = {}
    for row in faces_table:
        counts[row["identity"]] = counts.get(row["identity"], 0) + 1
    chosen, seen = [], set()
    for row in faces_table:
        if counts[row["identity"]] >= 4 or row["identity"] not in seen:
            chosen.append(row)
            seen.add(row["identity"])
    photos = [Photo(r["identity"], r["path"], img, analyzer.detect(img)) for r in chosen for img in [downscaled(r["file"])]]
    assert len({p.identity for p in photos}) == 17
    assert all(len(p.faces) == 1 for p in photos), [p.path for p in photos if len(p.faces) != 1]
    return photos


def big_identities(pool: list[Photo]) -> list[str]:
    names = sorted({p.identity for p in pool})
    return [n for n in names if sum(p.identity == n for p in pool) >= 4]


def test_held_out_photos_of_the_identity_rank_above_everyone_else(analyzer, pool):
    """Reference = mean embedding of half of the identity's photos; its other photos must outrank all other people."""
    identities = big_identities(pool)
    assert len(identities) == 7
    for identity in identities:
        own = [i for i, p in enumerate(pool) if p.identity == identity]
        reference_ids = own[: (len(own) + 1) // 2]
        reference = mean_embedding(pool[i].faces[0].embedding for i in reference_ids)
        candidates = [i for i in range(len(pool)) if i not in reference_ids]
        scores = score_images(
            [pool[i].image for i in candidates], reference, analyzer, NO_SIZE_FILTER, faces=[pool[i].faces for i in candidates]
        )
        order = [candidates[k] for k in rank(scores, NO_SIZE_FILTER)]
        held_out = set(own) - set(reference_ids)
        assert set(order[: len(held_out)]) == held_out, (identity, order[: len(held_out) + 2])
        assert len(order) == len(candidates)


def test_with_the_full_reference_every_photo_of_the_identity_comes_first(analyzer, pool):
    for identity in big_identities(pool):
        own = {i for i, p in enumerate(pool) if p.identity == identity}
        reference = mean_embedding(pool[i].faces[0].embedding for i in own)
        scores = score_images([p.image for p in pool], reference, analyzer, NO_SIZE_FILTER, faces=[p.faces for p in pool])
        order = rank(scores, NO_SIZE_FILTER)
        assert set(order[: len(own)]) == own, identity
        values = [scores[i].score for i in order]
        assert values == sorted(values, reverse=True)
        # The identity's photos clear the backend's same-person threshold; the best impostor does not.
        assert min(scores[i].score for i in own) >= analyzer.threshold > max(scores[i].score for i in order[len(own) :])


def test_top_k_and_min_score_on_real_photos(analyzer, pool):
    identity = big_identities(pool)[0]
    own = {i for i, p in enumerate(pool) if p.identity == identity}
    reference = mean_embedding(pool[i].faces[0].embedding for i in own)
    options = RankingOptions(top_k=3, min_face_ratio=None, max_face_ratio=None)
    scores = score_images([p.image for p in pool], reference, analyzer, options, faces=[p.faces for p in pool])
    assert len(rank(scores, options)) == 3 and set(rank(scores, options)) <= own
    strict = RankingOptions(min_score=analyzer.threshold, min_face_ratio=None, max_face_ratio=None)
    scores = score_images([p.image for p in pool], reference, analyzer, strict, faces=[p.faces for p in pool])
    assert set(rank(scores, strict)) == own
    assert {s.reason for s in scores if s.index not in own} == {"low_score"}


def test_filter_excludes_group_photos_and_wrong_face_sizes(analyzer, pool, edge_table):
    base = next(p for p in pool if p.identity == "obama")
    reference = base.faces[0].embedding
    face = base.faces[0]
    x1, y1, x2, y2 = (int(v) for v in face.bbox)
    side = int(1.25 * max(x2 - x1, y2 - y1))
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    close_up = base.image.crop((cx - side // 2, cy - side // 2, cx + side // 2, cy + side // 2)).resize((512, 512))
    small_head = base.image.resize((base.image.width // 3, base.image.height // 3), Image.LANCZOS)
    canvas = Image.new("RGB", (1024, 1024), (128, 128, 128))
    canvas.paste(small_head, (400, 400))
    framed = Image.new("RGB", (3 * side, 3 * side), (128, 128, 128))
    framed.paste(base.image.crop((cx - side, cy - side, cx + side, cy + side)), (side // 2, side // 2))
    group = downscaled(next(r["file"] for r in edge_table if r["path"].endswith("group_two_people.jpg")), 768)
    images = [group, close_up, canvas, framed]
    detected = [analyzer.detect(img) for img in images]
    facechain = RankingOptions(min_face_ratio=FACECHAIN_MIN_FACE_RATIO, max_face_ratio=FACECHAIN_MAX_FACE_RATIO)
    scores = score_images(images, reference, analyzer, facechain, faces=detected)  # FaceChain's own filter
    assert [s.reason for s in scores] == ["multiple_faces", "face_size", "face_size", None]
    assert scores[0].face_count == 2 and scores[0].score is not None
    assert scores[1].face_ratio > FACECHAIN_MAX_FACE_RATIO and scores[2].face_ratio < FACECHAIN_MIN_FACE_RATIO
    assert FACECHAIN_MIN_FACE_RATIO <= scores[3].face_ratio <= FACECHAIN_MAX_FACE_RATIO
    assert rank(scores) == [3]
    # Our looser default keeps the close-up (a headshot) and still refuses the group photo.
    default = score_images(images, reference, analyzer, faces=detected)
    assert default[0].reason == "multiple_faces" and default[1].reason is None
    assert DEFAULT_MIN_FACE_RATIO < FACECHAIN_MIN_FACE_RATIO and DEFAULT_MAX_FACE_RATIO > FACECHAIN_MAX_FACE_RATIO
    # The range is configurable: widen it and the close-up and the small face are ranked too.
    wide = RankingOptions(min_face_ratio=0.02, max_face_ratio=2.0)
    rescored = score_images(images, reference, analyzer, wide, faces=detected)
    assert [s.reason for s in rescored] == ["multiple_faces", None, None, None]


def test_images_without_a_face_are_reported_and_kept_last_unless_dropped(analyzer, pool, edge_table):
    no_face = [load_image(r["file"]) for r in edge_table if r["kind"] == "no_face"][:2]
    people = [pool[0].image, pool[-1].image]
    images = [no_face[0], people[0], no_face[1], people[1]]
    reference = pool[-1].faces[0].embedding
    scores = score_images(images, reference, analyzer, NO_SIZE_FILTER)
    assert [(s.score is None, s.reason, s.face_count) for s in (scores[0], scores[2])] == [(True, "no_face", 0)] * 2
    assert rank(scores, NO_SIZE_FILTER) == [3, 1, 0, 2]
    dropping = RankingOptions(min_face_ratio=None, max_face_ratio=None, drop_no_face=True)
    assert rank(scores, dropping) == [3, 1]
    assert scores[0].to_dict() == {"index": 0, "score": None, "face_count": 0, "reason": "no_face", "face_ratio": None}


def test_ranking_rules_ties_and_top_k():
    scores = [
        ImageScore(0, 0.80, 1),
        ImageScore(1, None, 0, "no_face"),
        ImageScore(2, 0.95, 1),
        ImageScore(3, 0.80, 1),  # ties with 0: input order decides
        ImageScore(4, 0.99, 2, "multiple_faces"),
        ImageScore(5, 0.90, 1, "face_size"),
    ]
    assert rank(scores) == [2, 0, 3, 1]
    assert rank(list(reversed(scores))) == [2, 0, 3, 1]
    assert rank(scores, RankingOptions(top_k=2)) == [2, 0]
    assert rank(scores, RankingOptions(top_k=4)) == [2, 0, 3, 1]  # top_k bounds the whole list
    assert rank(scores, RankingOptions(drop_no_face=True)) == [2, 0, 3]
    assert rank([]) == []


@pytest.mark.parametrize(
    "kwargs",
    [{"top_k": 0}, {"top_k": 2.5}, {"min_score": 1.5}, {"min_face_ratio": -0.1}, {"min_face_ratio": 0.6, "max_face_ratio": 0.5}],
)
def test_bad_options_are_refused(kwargs):
    with pytest.raises(FaceChainError) as info:
        RankingOptions(**kwargs)
    assert info.value.code == "invalid_request"


def test_facechain_range_is_120_to_300_px_at_512():
    assert FACECHAIN_MIN_FACE_RATIO * 512 == pytest.approx(120) and FACECHAIN_MAX_FACE_RATIO * 512 == pytest.approx(300)


def test_reference_from_another_backend_is_refused(analyzer, pool):
    with pytest.raises(FaceChainError) as info:
        score_images([pool[0].image], np.ones(512, np.float32), analyzer, faces=[pool[0].faces])
    assert info.value.code == "invalid_request" and "backend" in info.value.message
    with pytest.raises(FaceChainError):
        score_images([pool[0].image], np.ones(128, np.float32), analyzer, faces=[])
