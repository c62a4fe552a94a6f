"""Preparation pieces that need no photos: caption phrase voting, crop geometry, head mask, set-level checks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facechain_ext.faces.align import roll_degrees
from facechain_ext.faces.types import Face
from facechain_ext.prep import geometry as geo
from facechain_ext.prep.captions import choose_phrase
from facechain_ext.prep.consistency import Candidate, find_duplicates, find_strangers
from facechain_ext.prep.headmask import apply_head_mask
from facechain_ext.prep.options import PrepOptions
from facechain_ext.prep.pipeline import IDENTITY, crop_face
from facechain_ext.prep.quality import frontalness

FRONTAL_KPS = np.array([[40, 50], [72, 50], [56, 70], [44, 90], [68, 90]], dtype=np.float32)


def face(gender=None, age=None, bbox=(30.0, 30.0, 82.0, 100.0), kps=FRONTAL_KPS) -> Face:
    return Face(bbox=bbox, score=0.9, kps=np.asarray(kps, dtype=np.float32), backend="test", gender=gender, age=age)


@pytest.mark.parametrize(
    ("people", "expected", "source"),
    [
        ([("male", 30), ("male", 35), ("female", 33)], "a handsome man", "attributes"),
        ([("female", 25), ("female", 28)], "a beautiful woman", "attributes"),
        ([("male", 8), ("male", 9), ("female", 10)], "a boy", "attributes"),
        ([("female", 6)], "a girl", "attributes"),
        ([("male", 61), ("male", 58)], "a mature man", "attributes"),
        ([("female", 70), ("female", 52), ("male", 40)], "a mature woman", "attributes"),
        ([("male", 30), ("female", 30)], "a person", "neutral"),  # tie
        ([(None, None), (None, None)], "a person", "neutral"),  # dlib: no attributes at all
    ],
)
def test_phrase_is_voted_over_the_photos(people, expected: str, source: str) -> None:
    phrase = choose_phrase([face(g, a) for g, a in people], child_age=13, mature_age=50)
    assert (phrase.text, phrase.source) == (expected, source)
    if source == "neutral":
        assert phrase.note and "a person" in phrase.note


def test_user_phrase_wins() -> None:
    phrase = choose_phrase([face("female", 30)], 13, 50, override="  a man with a beard ")
    assert (phrase.text, phrase.source) == ("a man with a beard", "user")


def test_rotation_by_roll_levels_the_eyes() -> None:
    for tilt in (-30.0, -7.5, 12.0, 40.0):
        theta = np.radians(tilt)
        rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        tilted = (FRONTAL_KPS - 60) @ rot.T + 60  # eyes tilted by `tilt` degrees on screen
        assert roll_degrees(tilted) == pytest.approx(tilt, abs=1e-3)
        levelled = geo.map_points(geo.rotation_about((60.0, 60.0), roll_degrees(tilted)), tilted)
        assert roll_degrees(levelled) == pytest.approx(0.0, abs=1e-3)
        np.testing.assert_allclose(levelled, FRONTAL_KPS, atol=1e-3)  # a pure rotation back


def test_crop_geometry_and_white_outside_the_photo() -> None:
    # A grey photo with a face box in its top-left corner: the crop reaches outside the photo there.
    photo = Image.new("RGB", (400, 300), (90, 90, 90))
    box = (20.0, 10.0, 80.0, 70.0)  # long side 60 -> crop side 197.4 px of the photo
    kps = FRONTAL_KPS * 0.5 + np.array([22.0, 12.0], dtype=np.float32)
    options = PrepOptions(resolution=256)
    crop, mapped = crop_face(photo, face(bbox=box, kps=kps), IDENTITY, options)
    assert crop.size == (256, 256)
    assert mapped.center == pytest.approx((128.0, 0.435 * 256), abs=1e-3)
    assert mapped.long_side == pytest.approx(256 / 3.29, rel=1e-3)
    pixels = np.asarray(crop)
    # photo x=0 maps to crop x = (0 - (50 - 0.5*197.4)) * 256/197.4 = 63.2; y=0 -> (0 - (40 - 0.435*197.4)) * 1.297 = 59.5
    assert (pixels[:55, :, :] == 255).all() and (pixels[:, :58, :] == 255).all()
    assert (np.abs(pixels[120:250, 80:250].astype(int) - 90) <= 1).all()


def test_frontalness_falls_when_the_head_turns() -> None:
    turned = FRONTAL_KPS.copy()
    turned[2, 0] += 12  # nose moves towards one eye: yaw
    assert frontalness(FRONTAL_KPS) == pytest.approx(1.0)
    assert frontalness(turned) < 0.75


def test_head_mask_keeps_the_largest_region_and_paints_the_rest_white() -> None:
    rng = np.random.default_rng(0)
    crop = Image.fromarray(rng.integers(0, 200, size=(128, 128, 3), dtype=np.uint8))
    mask = np.zeros((128, 128), dtype=bool)
    mask[30:90, 40:100] = True  # the head
    mask[5:8, 5:8] = True  # a speck the parser got wrong
    out = np.asarray(apply_head_mask(crop, mask, dilate_px=2))
    original = np.asarray(crop)
    np.testing.assert_array_equal(out[30:90, 40:100], original[30:90, 40:100])
    assert (out[5:8, 5:8] == 255).all() and (out[110:, :] == 255).all()
    assert (out[28:92, 38:102] != 255).any()  # dilated border keeps a little of the surroundings


def candidate(index: int, emb: list[float], quality: float, thumb: np.ndarray | None = None, aspect: float = 1.0) -> Candidate:
    vec = np.asarray(emb, dtype=np.float64)
    thumb = np.ones(4) / 2 if thumb is None else thumb
    return Candidate(index, f"p{index}", vec / np.linalg.norm(vec), thumb, quality, aspect)


def test_duplicates_keep_the_better_photo_and_need_both_similarities() -> None:
    same_picture = np.array([0.5, 0.5, -0.5, -0.5])
    other_picture = np.array([0.5, -0.5, 0.5, -0.5])
    cands = [
        candidate(0, [1, 0, 0], 0.5, same_picture),
        candidate(1, [1, 0.01, 0], 0.9, same_picture),  # the same picture, better quality: kept
        candidate(2, [1, 0.02, 0], 0.7, other_picture),  # same face, different picture: not a duplicate
        candidate(3, [1, 0, 0], 0.4, same_picture, aspect=1.5),  # different framing: not a duplicate
    ]
    rejected = find_duplicates(cands, embedding_min=0.92, image_min=0.97)
    assert list(rejected) == [0] and rejected[0][0] == 1


def test_strangers_are_found_against_the_majority() -> None:
    cands = [candidate(i, [1, 0.1 * i, 0], 0.8) for i in range(4)] + [candidate(4, [0, 1, 0.2], 0.99)]
    reference, rejected = find_strangers(cands, threshold=0.9)
    assert reference in range(4) and list(rejected) == [4] and rejected[4] < 0.9


def test_without_any_match_only_the_best_photo_is_kept() -> None:
    cands = [candidate(0, [1, 0, 0], 0.5), candidate(1, [0, 1, 0], 0.8), candidate(2, [0, 0, 1], 0.6)]
    reference, rejected = find_strangers(cands, threshold=0.5)
    assert reference == 1 and sorted(rejected) == [0, 2]


def test_a_huge_photo_gives_the_same_crop_as_its_half_size_copy() -> None:
    # 4000 px photo with a 1600 px face box: the crop is 5264 px of the photo, shrunk before the warp.
    rng = np.random.default_rng(1)
    small = Image.fromarray(rng.integers(0, 255, size=(50, 50, 3), dtype=np.uint8)).resize((2000, 2000), Image.BICUBIC)
    big = small.resize((4000, 4000), Image.BICUBIC)
    options = PrepOptions(resolution=128)
    kps_big = FRONTAL_KPS * 20 + 800
    crop_big, face_big = crop_face(big, face(bbox=(1200.0, 1200.0, 2800.0, 2800.0), kps=kps_big), IDENTITY, options)
    crop_small, face_small = crop_face(small, face(bbox=(600.0, 600.0, 1400.0, 1400.0), kps=kps_big / 2), IDENTITY, options)
    assert crop_big.size == crop_small.size == (128, 128)
    np.testing.assert_allclose(face_big.bbox, face_small.bbox, atol=1e-3)
    diff = np.abs(np.asarray(crop_big, dtype=int) - np.asarray(crop_small, dtype=int))
    assert diff.mean() < 3.0
