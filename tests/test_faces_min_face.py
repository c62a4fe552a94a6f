"""Detection sized to the smallest wanted face (`FaceAnalyzer.detect(min_face_size=..., skip_smaller=True)`), dlib.

Post-processing only needs faces the ranking can keep (at least `min_face_ratio` of the short side: 41 px in a
512 px image by default), so dlib's HOG detector runs on a copy where such a face meets its finest level instead of
a 4× upsampled copy. It must still find every face at least that large: checked against the general-purpose
detection on real faces pasted at sizes from just above the floor to a close-up.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facechain_ext.errors import FaceChainError
from facechain_ext.faces.analyzer import FaceAnalyzer
from facechain_ext.faces.dlib_backend import HOG_SMALLEST_BOX, DlibBackend
from facechain_ext.imaging import load_image
from facechain_ext.ranking import DEFAULT_MIN_FACE_RATIO, RankingOptions, min_face_px

SIZE = 512
MIN_FACE = DEFAULT_MIN_FACE_RATIO * SIZE  # ≈ 41 px
FACE_SIZES = (42, 46, 52, 64, 80, 120, 200)  # face box long side (general-purpose detection) in the 512 px canvas
PEOPLE = ("biden", "deepface_p10", "kit_harington", "deepface_angelina", "alex_lacamoire")


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer(DlibBackend())


def pasted(photo: Image.Image, box: tuple[float, float, float, float], long_side: float) -> Image.Image:
    """`photo` scaled so its face box is `long_side` px, its face centred in a gray 512 px canvas."""
    x1, y1, x2, y2 = box
    scale = long_side / max(x2 - x1, y2 - y1)
    small = photo.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))), Image.LANCZOS)
    canvas = Image.new("RGB", (SIZE, SIZE), (128, 128, 128))
    canvas.paste(small, (round(SIZE / 2 - (x1 + x2) / 2 * scale), round(SIZE / 2 - (y1 + y2) / 2 * scale)))
    return canvas


def test_every_face_at_least_min_face_is_found(analyzer: FaceAnalyzer, faces_table: list[dict]) -> None:
    checked = 0
    for person in PEOPLE:
        row = next(r for r in faces_table if r["identity"] == person)
        photo = load_image(row["file"])
        box = analyzer.detect(photo, embed=False)[0].bbox
        for size in FACE_SIZES:
            canvas = pasted(photo, box, size)
            general = [f for f in analyzer.detect(canvas, embed=False) if f.long_side >= MIN_FACE]
            sized = analyzer.detect(canvas, embed=False, min_face_size=MIN_FACE, skip_smaller=True)
            assert len(sized) == len(general), (person, size, [f.long_side for f in general], [f.long_side for f in sized])
            # The pyramid's finest box maps to no less than min_face: a face at the floor is never reported below it.
            assert all(f.long_side >= MIN_FACE * (1 - 1e-9) for f in sized), (person, size)
            # Same face, same place: keypoints agree within a few pixels of the general-purpose detection.
            if general:
                assert np.abs(sized[0].kps[:3] - general[0].kps[:3]).max() < 0.08 * general[0].long_side + 2
            checked += len(general)
    assert checked >= len(PEOPLE) * (len(FACE_SIZES) - 1)


def test_the_detector_scans_fewer_pixels_for_a_512_px_image() -> None:
    backend = DlibBackend()
    rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
    general, general_upsample = backend.detection_image(rgb)
    sized, sized_upsample = backend.detection_image(rgb, MIN_FACE)
    assert (general.array.shape[:2], general_upsample) == ((640, 640), 1)
    # floor(512 × 73 / 40.96): a face of min_face px meets the finest level, no upsampling.
    assert sized_upsample == 0 and sized.array.shape[:2] == (912, 912)
    assert HOG_SMALLEST_BOX / sized.scale >= MIN_FACE
    # dlib doubles the image once per upsampling step, and each pyramid level costs in proportion to its pixels:
    # the finest level (and with it the whole pyramid) has about half the pixels of the general-purpose one.
    finest = lambda work, upsample: work.array.shape[0] * work.array.shape[1] * 4**upsample  # noqa: E731
    assert finest(sized, sized_upsample) / finest(general, general_upsample) < 0.51


def test_min_face_follows_the_ranking_floor() -> None:
    assert min_face_px(SIZE, RankingOptions()) == pytest.approx(MIN_FACE)
    assert min_face_px(768, RankingOptions(min_face_ratio=0.25)) == pytest.approx(192.0)
    assert min_face_px(SIZE, RankingOptions(min_face_ratio=None)) is None


@pytest.mark.parametrize("bad", [0, -5, float("nan")])
def test_a_bad_min_face_is_refused(bad: float) -> None:
    with pytest.raises(FaceChainError) as info:
        DlibBackend().detection_image(np.zeros((64, 64, 3), np.uint8), bad)
    assert info.value.code == "invalid_request" and "min_face" in info.value.message
