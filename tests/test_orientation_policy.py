"""One orientation policy and one similarity behaviour on every surface (issue 7 §2), through the HTTP routes on
the fake host and through the CLI, on real photos (dlib backend).

`edge/rot90_obama2.jpg` is `faces/obama/face_recognition_obama2.jpg` turned by 90 degrees without an EXIF tag:
dlib's frontal detector finds no face in it as it is.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from facechain_ext.faces.analyzer import FaceAnalyzer
from facechain_ext.faces.dlib_backend import DlibBackend
from facechain_ext.imaging import load_image
from facechain_ext.webui import register

V1 = "/facechain/v1"
UPRIGHT = "faces/obama/face_recognition_obama2.jpg"
SIDEWAYS = "edge/rot90_obama2.jpg"
SAME_PERSON = "faces/obama/face_recognition_obama.jpg"
OTHER_PERSON = "faces/biden/face_recognition_knn_train_biden.jpg"
CORRUPT = "edge/corrupt_text_named_jpg.jpg"
NO_FACE = "edge/noface_noise.png"
REPO_ROOT = Path(__file__).resolve().parents[1]


def b64(path: Path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


@pytest.fixture
def client(fake_host, tmp_path) -> TestClient:
    fake_host.reset_host(tmp_path / "webui", ["--api"])
    from modules import script_callbacks

    register()
    script_callbacks.ui_settings_callback()
    app = FastAPI()
    script_callbacks.app_started_callback(None, app)
    return TestClient(app)


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer(DlibBackend())


def test_the_sideways_photo_has_no_face_as_it_is(data_dir, analyzer):
    assert analyzer.detect(load_image(data_dir / SIDEWAYS)) == []


def test_detect_finds_the_sideways_face_in_the_photos_own_pixels(client, data_dir, analyzer):
    upright = load_image(data_dir / UPRIGHT)
    upright_box = np.array(analyzer.detect(upright)[0].bbox)
    sideways = Image.open(data_dir / SIDEWAYS)  # the upright photo turned, at 1200 px instead of 1024
    scale = sideways.width / upright.height
    body = client.post(f"{V1}/face/detect", json={"image": b64(data_dir / SIDEWAYS), "backend": "dlib"}).json()
    assert len(body["faces"]) == 1 and body["rotation"] in (90, 270)
    x1, y1, x2, y2 = body["faces"][0]["bbox"]
    assert 0 <= x1 < x2 <= sideways.width and 0 <= y1 < y2 <= sideways.height
    assert abs((x2 - x1) - scale * (upright_box[3] - upright_box[1])) < 12  # the box turned with the photo
    assert abs((y2 - y1) - scale * (upright_box[2] - upright_box[0])) < 12
    kps = np.array(body["faces"][0]["kps"])
    assert abs(kps[0, 0] - kps[1, 0]) < abs(kps[0, 1] - kps[1, 1])  # eyes one above the other: a sideways face


def test_fuse_accepts_a_sideways_reference_photo(client, data_dir):
    target = b64(data_dir / OTHER_PERSON)
    response = client.post(f"{V1}/face/fuse", json={"target": target, "reference": {"images": [b64(data_dir / SIDEWAYS)]},
                                                   "strength": 1.0})
    assert response.status_code == 200, response.text  # was 422 no_face
    data = response.json()
    assert data["applied"] and data["similarity_after"] > data["similarity_before"] + 0.02
    upright = client.post(f"{V1}/face/fuse", json={"target": target, "reference": {"images": [b64(data_dir / UPRIGHT)]},
                                                  "strength": 1.0}).json()
    assert data["similarity_before"] == pytest.approx(upright["similarity_before"], abs=0.01)
    assert data["similarity_after"] == pytest.approx(upright["similarity_after"], abs=0.03)


def test_a_sideways_target_is_fused_in_place(client, data_dir):
    response = client.post(f"{V1}/face/fuse", json={"target": b64(data_dir / SIDEWAYS),
                                                   "reference": {"images": [b64(data_dir / OTHER_PERSON)]}})
    assert response.status_code == 200, response.text
    fused = Image.open(io.BytesIO(base64.b64decode(response.json()["image"])))
    assert fused.size == Image.open(data_dir / SIDEWAYS).size and response.json()["applied"]


def similarity_request(data_dir: Path) -> tuple[list[Path], list[Path]]:
    references = [data_dir / SIDEWAYS, data_dir / CORRUPT]
    candidates = [data_dir / OTHER_PERSON, data_dir / CORRUPT, data_dir / SAME_PERSON, data_dir / NO_FACE,
                  data_dir / SIDEWAYS]
    return references, candidates


def test_similarity_scores_the_rest_when_one_photo_is_bad(client, data_dir):
    references, candidates = similarity_request(data_dir)
    request = {"reference": {"images": [b64(p) for p in references]}, "candidates": [b64(p) for p in candidates],
               "backend": "dlib"}
    response = client.post(f"{V1}/face/similarity", json=request)
    assert response.status_code == 200, response.text  # was 422 for the corrupt photos
    body = response.json()
    scores = body["scores"]
    assert scores[1] is None and scores[3] is None
    assert scores[2] >= body["threshold"] > scores[0] and scores[4] > 0.99  # the sideways photo is the reference itself
    assert body["order"] == [4, 2, 0]
    assert [(e["input"], e["role"], e["index"], e["code"]) for e in body["errors"]] == [
        ("reference.images[1]", "reference", 1, "unreadable_image"),
        ("candidates[1]", "candidate", 1, "unreadable_image"),
        ("candidates[3]", "candidate", 3, "no_face"),
    ]
    assert all(e["input"] in e["message"] for e in body["errors"])


def run_cli(tmp_path: Path, *args: object, timeout: float = 120) -> tuple[int, dict]:
    import json

    env = {**os.environ, "OMP_NUM_THREADS": "1", "FACECHAIN_MODELS_DIR": str(tmp_path / "models")}
    proc = subprocess.run([sys.executable, "-m", "facechain_ext", "--backend", "dlib", *map(str, args)], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, json.loads(proc.stdout)


def test_the_cli_gives_the_same_scores_and_errors_as_the_route(client, data_dir, tmp_path):
    references, candidates = similarity_request(data_dir)
    route = client.post(f"{V1}/face/similarity", json={"reference": {"images": [b64(p) for p in references]},
                                                       "candidates": [b64(p) for p in candidates], "backend": "dlib"}).json()
    rc, cli = run_cli(tmp_path, "similarity", "--reference", *references, "--candidates", *candidates)
    assert rc == 0
    assert cli["scores"] == route["scores"] and cli["order"] == route["order"] and cli["threshold"] == route["threshold"]
    assert [(e["role"], e["index"], e["code"]) for e in cli["errors"]] == [
        (e["role"], e["index"], e["code"]) for e in route["errors"]]
    assert [e["input"] for e in cli["errors"]] == [str(references[1]), str(candidates[1]), str(candidates[3])]


def test_the_cli_detects_the_sideways_face_and_refuses_a_fifo_at_once(data_dir, tmp_path):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)  # nobody writes to it: reading it would block forever
    rc, doc = run_cli(tmp_path, "detect", data_dir / SIDEWAYS, fifo, "/dev/zero", timeout=120)
    sideways, pipe, device = doc["results"]
    assert rc == 0 and len(sideways["faces"]) == 1 and sideways["rotation"] in (90, 270)
    assert pipe["error"]["code"] == "unreadable_image" and "FIFO" in pipe["error"]["message"]
    assert device["error"]["code"] == "unreadable_image" and "/dev/zero" in device["error"]["message"]


def test_an_identity_from_a_sideways_photo(client, data_dir):
    response = client.post(f"{V1}/identities", json={"name": "sideways", "images": [b64(data_dir / SIDEWAYS)]})
    assert response.status_code == 201, response.text
    photo = response.json()["photos"][0]
    assert photo["status"] == "accepted" and abs(abs(photo["rotation"]) - 90) < 10  # 90 degrees + the head's own tilt
