"""`python -m facechain_ext` as a user runs it: a subprocess, one JSON document on stdout, meaningful exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_cli(models_dir: Path, *args: object) -> tuple[int, dict[str, Any], str]:
    python = REPO_ROOT / ".venv" / "bin" / "python"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FACECHAIN_MODELS_DIR": str(models_dir)}
    env.pop("FACECHAIN_FACE_BACKEND", None)
    proc = subprocess.run(
        [str(python if python.exists() else sys.executable), "-m", "facechain_ext", "--backend", "dlib", *map(str, args)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        doc = json.loads(proc.stdout)  # exactly one JSON document, nothing else on stdout
    except json.JSONDecodeError:
        pytest.fail(f"stdout is not one JSON document (rc={proc.returncode}):\n{proc.stdout}\n--- stderr:\n{proc.stderr}")
    return proc.returncode, doc, proc.stderr


@pytest.fixture
def models(tmp_path: Path) -> Path:
    return tmp_path / "models"


def test_detect_reports_each_input(data_dir: Path, models: Path) -> None:
    group, corrupt, noface = (
        data_dir / "edge" / "group_two_people.jpg",
        data_dir / "edge" / "corrupt_zero_bytes.jpg",
        data_dir / "edge" / "noface_noise.png",
    )
    rc, doc, _ = run_cli(models, "detect", group, corrupt, noface)
    assert rc == 0 and doc["backend"] == "dlib"
    assert [r["path"] for r in doc["results"]] == [str(group), str(corrupt), str(noface)]
    first, second, third = doc["results"]
    assert len(first["faces"]) == 2 and first["error"] is None
    for face in first["faces"]:
        assert set(face) == {"bbox", "score", "kps", "gender", "age"}
        assert len(face["bbox"]) == 4 and len(face["kps"]) == 5 and 0 < face["score"] <= 1
    assert second["faces"] == [] and second["error"]["code"] == "unreadable_image" and str(corrupt) in second["error"]["message"]
    assert third == {"path": str(noface), "faces": [], "rotation": 0, "error": None}


def test_detect_fails_when_no_input_is_readable(data_dir: Path, models: Path) -> None:
    rc, doc, stderr = run_cli(
        models, "detect", data_dir / "edge" / "corrupt_text_named_jpg.jpg", data_dir / "edge" / "missing.jpg"
    )
    assert rc == 1 and [r["error"]["code"] for r in doc["results"]] == ["unreadable_image", "unreadable_image"]


def test_similarity_ranks_the_same_person_first(data_dir: Path, models: Path) -> None:
    faces = data_dir / "faces"
    candidates = [
        faces / "biden" / "face_recognition_knn_train_biden.jpg",
        data_dir / "edge" / "noface_noise.png",
        faces / "obama" / "face_recognition_obama2.jpg",
        faces / "deepface_angelina" / "deepface_tests_img1.jpg",
    ]
    reference = [faces / "obama" / "face_recognition_obama.jpg", faces / "obama" / "face_recognition_knn_test_obama1.jpg"]
    rc, doc, _ = run_cli(models, "similarity", "--reference", *reference, "--candidates", *candidates, "--top-k", "2")
    assert rc == 0 and doc["backend"] == "dlib" and 0 < doc["threshold"] < 1
    scores = doc["scores"]
    assert len(scores) == 4 and scores[1] is None and all(isinstance(s, float) for i, s in enumerate(scores) if i != 1)
    assert scores[2] >= doc["threshold"] > max(scores[0], scores[3])  # only the same person passes the threshold
    by_score = sorted((0, 2, 3), key=lambda i: -scores[i])
    assert doc["order"] == by_score[:2] and doc["order"][0] == 2  # best first, cut to --top-k
    assert doc["errors"] == [{"input": str(candidates[1]), "role": "candidate", "index": 1, "code": "no_face",
                              "message": doc["errors"][0]["message"]}]
    assert str(candidates[1]) in doc["errors"][0]["message"]


def test_similarity_fails_without_a_reference_face(data_dir: Path, models: Path) -> None:
    rc, doc, _ = run_cli(
        models,
        "similarity",
        "--reference",
        data_dir / "edge" / "noface_noise.png",
        "--candidates",
        data_dir / "edge" / "noface_noise.png",
    )
    assert rc == 1 and doc["error"]["code"] == "no_face" and "noface_noise.png" in doc["error"]["message"]


def test_prepare_stores_an_identity_and_refuses_to_overwrite(data_dir: Path, models: Path) -> None:
    photos = [
        data_dir / "faces" / "obama" / "face_recognition_obama.jpg",
        data_dir / "faces" / "obama" / "face_recognition_obama2.jpg",
        data_dir / "edge" / "noface_noise.png",
    ]
    rc, doc, stderr = run_cli(models, "prepare", *photos, "--name", "obama", "--phrase", "a man")
    assert rc == 0, stderr
    assert doc["name"] == "obama" and doc["caption"] == "fcsks, a man" and doc["best_photo"] in {str(p) for p in photos[:2]}
    assert [(p["path"], p["status"], p["code"]) for p in doc["photos"]] == [
        (str(photos[0]), "accepted", None),
        (str(photos[1]), "accepted", None),
        (str(photos[2]), "rejected", "no_face"),
    ]
    for photo in doc["photos"][:2]:
        assert set(photo) >= {"path", "status", "code", "message", "crop", "quality"} and 0 < photo["quality"]["score"] <= 1
        assert Path(photo["crop"]).parent == models / "identities" / "obama" / "photos"
        assert Image.open(photo["crop"]).size == (512, 512)
    assert doc["photos"][2]["crop"] is None
    meta = json.loads((models / "identities" / "obama" / "identity.json").read_text())
    assert meta["phrase"] == "a man" and meta["photo_count"] == 2
    rc, doc, _ = run_cli(models, "prepare", photos[0], "--name", "obama")
    assert rc == 1 and doc["error"]["code"] == "name_taken"


def test_prepare_writes_an_out_folder(data_dir: Path, models: Path, tmp_path: Path) -> None:
    out = tmp_path / "dataset"
    rc, doc, _ = run_cli(
        models,
        "prepare",
        data_dir / "faces" / "obama" / "face_recognition_obama.jpg",
        "--name",
        "solo",
        "--out",
        out,
        "--head-mask",
    )
    assert rc == 0 and doc["identity_dir"] == str(out.resolve())
    assert doc["background"] == "kept" and any("no face-parsing model" in note for note in doc["notes"])
    assert (out / "photos" / "01.png").is_file() and (out / "photos" / "01.txt").read_text().strip() == "fcsks, a person"
    assert not (models / "identities").exists()


def test_prepare_failures_are_json_with_exit_codes(data_dir: Path, models: Path) -> None:
    bad = [data_dir / "edge" / "corrupt_header_zeroed.jpg", data_dir / "edge" / "noface_blank_gray.jpg"]
    rc, doc, _ = run_cli(models, "prepare", *bad, "--name", "nobody")
    assert rc == 1 and doc["error"]["code"] == "no_usable_photos"
    assert [(p["path"], p["code"]) for p in doc["error"]["context"]["photos"]] == [
        (str(bad[0]), "unreadable_image"),
        (str(bad[1]), "no_face"),
    ]
    rc, doc, _ = run_cli(models, "prepare", *bad, "--name", "bad name!")
    assert rc == 1 and doc["error"]["code"] == "invalid_name"
    rc, doc, _ = run_cli(models, "prepare", *bad)  # --name missing: a usage error, still JSON
    assert rc == 2 and doc["error"]["code"] == "invalid_request" and "--name" in doc["error"]["message"]
    assert not (models / "identities" / "nobody").exists()


def test_prepare_out_overwrite_never_deletes_a_folder_that_is_not_an_identity(data_dir: Path, models: Path, tmp_path: Path) -> None:
    photos = tmp_path / "my_photos"
    photos.mkdir()
    photo = photos / "me.jpg"
    photo.write_bytes((data_dir / "faces" / "obama" / "face_recognition_obama.jpg").read_bytes())
    (photos / "diary.txt").write_text("keep me")
    before = sorted(p.name for p in photos.iterdir())
    rc, doc, _ = run_cli(models, "prepare", photo, "--name", "solo", "--out", photos, "--overwrite")
    assert rc == 2 and doc["error"]["code"] == "invalid_request" and "contains the input photo" in doc["error"]["message"]
    assert sorted(p.name for p in photos.iterdir()) == before and (photos / "diary.txt").read_text() == "keep me"
