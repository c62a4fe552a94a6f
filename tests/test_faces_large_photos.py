"""Small faces in large photos are found (issue 7 §2): the tile pass, its bound, and a 6000 x 4000 photo."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from photo_helpers import face_in_large_canvas

from facechain_ext.faces.analyzer import FaceAnalyzer
from facechain_ext.faces.dlib_backend import DlibBackend
from facechain_ext.faces.tiling import MAX_TILES, plan_tiles
from facechain_ext.imaging import MAX_PIXELS, load_image
from facechain_ext.prep import PrepOptions, prepare_photos

FACE = "faces/obama/face_recognition_obama.jpg"
OTHER_PHOTO_OF_HIM = "faces/obama/face_recognition_obama2.jpg"
BACKGROUND = "edge/noface_crop_table.jpg"  # a real photo without a face


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer(DlibBackend())


def test_the_tile_plan_covers_what_the_first_pass_cannot_and_is_bounded():
    dlib = {"max_input_side": 1024, "min_detectable_face": 40.0}
    scrfd = {"max_input_side": 640, "min_detectable_face": 16.0}
    assert plan_tiles(1024, 768, **dlib, min_face_size=64) is None  # the 1024 px copy is the photo itself
    assert plan_tiles(1600, 1200, **dlib, min_face_size=64) is None  # 1024 px copy: faces of 62.5 px still found
    plan = plan_tiles(6000, 4000, **dlib, min_face_size=64)
    assert plan is not None and plan.scale == pytest.approx(40 / 64) and plan.size == (3750, 2500)
    assert plan.count == 15 and plan.side == 1024
    xs = sorted({x for x, _ in plan.origins})
    stride = max(b - a for a, b in zip(xs, xs[1:], strict=False))
    missed_by_first_pass = 40 / (1024 / 6000) * plan.scale  # the largest face the 1024 px copy may miss, tile px
    assert xs[0] == 0 and xs[-1] + 1024 == 3750 and 1024 - stride >= 1.25 * missed_by_first_pass
    assert plan_tiles(6000, 4000, **scrfd, min_face_size=64).count <= 6
    side = int(np.sqrt(MAX_PIXELS * 4 / 3))  # the largest photo imaging keeps, in 4:3
    assert plan_tiles(side, side * 3 // 4, **dlib, min_face_size=64).count <= MAX_TILES


def test_a_request_beyond_the_bound_is_cut_to_it_and_says_so(caplog):
    with caplog.at_level(logging.WARNING):
        plan = plan_tiles(9000, 7000, max_input_side=1024, min_detectable_face=40, min_face_size=16)
    assert plan is not None and plan.count <= MAX_TILES and plan.scale < 1.0
    assert "may be missed" in caplog.text


def test_a_112_px_face_in_a_6000x4000_photo_is_found_with_its_identity(data_dir: Path, analyzer: FaceAnalyzer):
    canvas, expected = face_in_large_canvas(str(data_dir / FACE), str(data_dir / BACKGROUND), 112, analyzer)
    assert analyzer.backend.detect(np.asarray(canvas), embed=False) == []  # what the 1024 px copy alone gave
    faces = analyzer.detect(canvas, embed=True)
    assert len(faces) == 1
    found = np.array(faces[0].bbox)
    assert np.abs(found - np.array(expected)).max() < 0.25 * 112, (found, expected)
    other = analyzer.detect(load_image(data_dir / OTHER_PHOTO_OF_HIM))[0]
    assert analyzer.similarity(faces[0].embedding, other.embedding) >= analyzer.threshold


def test_a_face_of_min_face_size_in_a_6000x4000_photo_is_prepared(data_dir: Path, analyzer: FaceAnalyzer):
    options = PrepOptions(check_identity=False)
    canvas, expected = face_in_large_canvas(str(data_dir / FACE), str(data_dir / BACKGROUND), options.min_face_size,
                                            analyzer)
    report = prepare_photos([("large.jpg", canvas)], analyzer, options)
    photo = report.photos[0]
    assert photo.status == "accepted", photo.message
    assert photo.crop.size == (512, 512)
    assert photo.quality["face_size"] >= options.min_face_size

