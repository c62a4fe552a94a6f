"""Training-photo preparation on real photos with the real dlib analyzer (weights from pip).

The mixed folder mirrors what users upload: four photos of one person, a stranger, the same file twice, a group photo,
a corrupt file, a photo without a face and one whose face is too small. The report must be exactly right.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facechain_ext.config import Settings
from facechain_ext.errors import FaceChainError
from facechain_ext.faces import create_analyzer
from facechain_ext.faces.align import roll_degrees
from facechain_ext.faces.analyzer import FaceAnalyzer
from facechain_ext.prep import PrepOptions, prepare_photos

ANGELINA = ["deepface_tests_img1.jpg", "deepface_tests_img2.jpg", "deepface_tests_img10.jpg", "deepface_tests_img11.jpg"]
# name in the upload -> (status, code)
EXPECTED = {
    "img1.jpg": ("accepted", None),
    "img2.jpg": ("accepted", None),
    "img10.jpg": ("accepted", None),
    "img11.jpg": ("accepted", None),  # head tilted ~16 degrees: levelled
    "img1_copy.jpg": ("rejected", "duplicate"),
    "obama.jpg": ("rejected", "different_person"),
    "group.jpg": ("rejected", "multiple_faces"),
    "corrupt.jpg": ("rejected", "unreadable_image"),
    "noface.jpg": ("rejected", "no_face"),
    "small_face.jpg": ("rejected", "face_too_small"),  # 426x240 video frame, face ~61 px
}
CROP_FACE_SIDE = 512 / 3.29
CROP_FACE_CENTER = (256.0, 0.435 * 512)


@pytest.fixture(scope="session")
def analyzer(tmp_path_factory: pytest.TempPathFactory) -> FaceAnalyzer:
    return create_analyzer(Settings(models_dir=tmp_path_factory.mktemp("models"), face_backend="dlib"), "dlib")


@pytest.fixture(scope="module")
def mixed_folder(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mixed")
    angelina = data_dir / "faces" / "deepface_angelina"
    for source in ANGELINA:
        shutil.copy(angelina / source, folder / source.replace("deepface_tests_", ""))
    shutil.copy(angelina / ANGELINA[0], folder / "img1_copy.jpg")  # the same file uploaded twice
    shutil.copy(data_dir / "faces" / "obama" / "face_recognition_obama.jpg", folder / "obama.jpg")
    shutil.copy(data_dir / "edge" / "group_two_people.jpg", folder / "group.jpg")
    shutil.copy(data_dir / "edge" / "corrupt_truncated_half.jpg", folder / "corrupt.jpg")
    shutil.copy(data_dir / "edge" / "noface_crop_flag.jpg", folder / "noface.jpg")
    shutil.copy(data_dir / "edge" / "lowres_obama_240p.jpg", folder / "small_face.jpg")
    return folder


@pytest.fixture(scope="module")
def report(mixed_folder: Path, analyzer: FaceAnalyzer):
    return prepare_photos([(name, mixed_folder / name) for name in EXPECTED], analyzer)


def assert_face_where_geometry_says(face, tolerance: float = 0.06) -> None:
    cx, cy = face.center
    assert abs(cx - CROP_FACE_CENTER[0]) < tolerance * 512, face.bbox
    assert abs(cy - CROP_FACE_CENTER[1]) < tolerance * 512, face.bbox
    assert 0.8 < face.long_side / CROP_FACE_SIDE < 1.25, face.bbox


def test_mixed_folder_statuses_and_codes_are_exact(report) -> None:
    got = {p.path: (p.status, p.code) for p in report.photos}
    assert got == EXPECTED
    assert [p.path for p in report.photos] == list(EXPECTED)  # input order kept
    assert report.counts() == {
        "total": 10,
        "accepted": 4,
        "rejected": 6,
        "different_person": 1,
        "duplicate": 1,
        "face_too_small": 1,
        "multiple_faces": 1,
        "no_face": 1,
        "unreadable_image": 1,
    }


def test_rejection_messages_name_the_photo_and_reason(report, analyzer: FaceAnalyzer) -> None:
    by_name = {p.path: p for p in report.photos}
    for photo in report.rejected:
        assert photo.message.startswith(photo.path + ":"), photo.message
        assert photo.caption is None
    assert "img1.jpg" in by_name["img1_copy.jpg"].message  # names the photo it duplicates
    stranger = by_name["obama.jpg"].message
    assert "different person" in stranger and f"threshold {analyzer.threshold:.3f}" in stranger
    assert "4x" in by_name["group.jpg"].message
    assert "61 px" in by_name["small_face.jpg"].message and "64 px" in by_name["small_face.jpg"].message


def test_accepted_crops_follow_facechain_geometry(report, analyzer: FaceAnalyzer) -> None:
    for photo in report.accepted:
        assert photo.crop is not None and photo.crop.size == (512, 512) and photo.crop.mode == "RGB"
        assert_face_where_geometry_says(photo.face, tolerance=0.001)  # where preparation put it
        found = analyzer.detect(photo.crop)  # and where a fresh detection finds it
        assert found, photo.path
        assert_face_where_geometry_says(found[0])
        assert abs(roll_degrees(found[0].kps)) < 3.0, photo.path
        assert found[0].embedding is not None and photo.face.embedding is not None
        assert float(found[0].embedding @ photo.face.embedding) > analyzer.threshold


def test_tilted_head_is_levelled_and_padding_is_white(report) -> None:
    tilted = next(p for p in report.photos if p.path == "img11.jpg")
    assert 10.0 < abs(tilted.rotation) < 25.0
    assert abs(roll_degrees(tilted.face.kps)) < 1.0
    corners = np.asarray(tilted.crop)[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == 255).all(axis=1).sum() >= 1  # the rotated photo's corner leaves white padding


def test_captions_phrase_and_best_photo(report) -> None:
    # dlib has no gender/age: a neutral phrase, and the report says why.
    assert report.trigger == "fcsks" and report.phrase == "a person" and report.phrase_source == "neutral"
    assert report.caption == "fcsks, a person"
    assert any("no gender" in note for note in report.notes)
    assert all(p.caption == "fcsks, a person" for p in report.accepted)
    assert report.background == "kept" and any("background kept" in note for note in report.notes)
    best = max(report.accepted, key=lambda p: p.quality["score"])
    assert report.best_photo == best.path and report.best is best
    for photo in report.accepted:
        q = photo.quality
        assert 0.0 < q["score"] <= 1.0 and q["face_size"] >= 150 and q["sharpness"] > 500
        assert 0.8 < q["frontalness"] <= 1.0


def test_report_to_dict_is_json_ready(report) -> None:
    import json

    doc = json.loads(json.dumps(report.to_dict({0: "photos/01.png"})))
    assert doc["caption"] == "fcsks, a person" and doc["best_photo"] == report.best_photo
    assert doc["photos"][0]["crop"] == "photos/01.png" and doc["photos"][1]["crop"] is None
    assert [p["code"] for p in doc["photos"]] == [code for _, code in EXPECTED.values()]


@pytest.fixture(scope="module")
def exif_rotated(data_dir: Path, analyzer: FaceAnalyzer):
    """obama2 stored sideways with EXIF orientation 6: load_image turns it upright before any face analysis."""
    return prepare_photos([("exif.jpg", data_dir / "edge" / "exif_orient6_obama2.jpg")], analyzer).accepted[0]


@pytest.mark.parametrize("rotated", ["rot90_obama2.jpg", "rot180_obama2.jpg", "rot270_deepface_img12.jpg"])
def test_rotated_photo_comes_out_upright(rotated: str, data_dir: Path, analyzer: FaceAnalyzer, exif_rotated) -> None:
    photo = prepare_photos([(rotated, data_dir / "edge" / rotated)], analyzer).accepted[0]
    assert abs(abs(photo.rotation) - (180 if "180" in rotated else 90)) < 10.0
    found = analyzer.detect(photo.crop)
    assert found and found[0].is_upright() and abs(roll_degrees(found[0].kps)) < 3.0
    assert_face_where_geometry_says(found[0])
    if "obama2" in rotated:  # the same pixels as the EXIF-rotated copy: the two crops must match
        a = np.asarray(photo.crop.convert("L"), dtype=np.float64).ravel()
        b = np.asarray(exif_rotated.crop.convert("L"), dtype=np.float64).ravel()
        assert np.corrcoef(a, b)[0, 1] > 0.98


def test_recompressed_copy_is_a_duplicate_and_the_sharper_photo_is_kept(
    data_dir: Path, analyzer: FaceAnalyzer, tmp_path: Path
) -> None:
    original = data_dir / "faces" / "obama" / "face_recognition_obama.jpg"
    smaller = tmp_path / "smaller.jpg"
    with Image.open(original) as image:
        image.resize((image.width // 2, image.height // 2), Image.LANCZOS).save(smaller, quality=70)
    photos = [
        ("smaller.jpg", smaller),
        ("original.jpg", original),
        ("other.jpg", data_dir / "faces" / "obama" / "face_recognition_obama2.jpg"),
    ]
    result = prepare_photos(photos, analyzer)
    assert {p.path: p.code for p in result.photos} == {"smaller.jpg": "duplicate", "original.jpg": None, "other.jpg": None}
    assert "original.jpg" in result.photos[0].message


def test_phrase_override_and_trigger(data_dir: Path, analyzer: FaceAnalyzer) -> None:
    options = PrepOptions(trigger="ohwx", phrase="a man in a suit")
    calls: list[tuple[int, int, str]] = []
    photos = [("o.jpg", data_dir / "faces" / "obama" / "face_recognition_obama.jpg"), ("bad.jpg", b"")]
    result = prepare_photos(photos, analyzer, options, progress=lambda *args: calls.append(args))
    assert [c[:2] for c in calls] == [(1, 2), (2, 2)]
    assert result.caption == "ohwx, a man in a suit" and result.phrase_source == "user"
    assert result.accepted[0].caption == "ohwx, a man in a suit" and result.best_photo == "o.jpg"


def test_nothing_usable_raises_with_the_per_photo_list(data_dir: Path, analyzer: FaceAnalyzer) -> None:
    photos = [
        ("corrupt.jpg", data_dir / "edge" / "corrupt_zero_bytes.jpg"),
        ("noise.png", data_dir / "edge" / "noface_noise.png"),
        ("group.jpg", data_dir / "edge" / "group_two_people.jpg"),
        ("bytes.jpg", b"not an image"),
    ]
    with pytest.raises(FaceChainError) as info:
        prepare_photos(photos, analyzer)
    err = info.value
    assert err.code == "no_usable_photos" and err.http_status == 422
    assert [(p["path"], p["status"], p["code"]) for p in err.context["photos"]] == [
        ("corrupt.jpg", "rejected", "unreadable_image"),
        ("noise.png", "rejected", "no_face"),
        ("group.jpg", "rejected", "multiple_faces"),
        ("bytes.jpg", "rejected", "unreadable_image"),
    ]
    assert err.context["counts"] == {"unreadable_image": 2, "no_face": 1, "multiple_faces": 1}
    for name in ("corrupt.jpg", "noise.png", "group.jpg", "bytes.jpg"):
        assert name in err.message


def test_empty_request_is_refused(analyzer: FaceAnalyzer) -> None:
    with pytest.raises(FaceChainError) as info:
        prepare_photos([], analyzer)
    assert info.value.code == "invalid_request"
