"""POST /facechain/v1/template and /template/faces through FastAPI's TestClient on the stand-in host (real photos)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from modules import call_queue, infotext_utils, processing, progress, shared
from PIL import Image
from template_helpers import install_painter, make_template_context, template_path

from facechain_ext.imaging import load_image
from facechain_ext.webui.api_common import parse_api_auth
from facechain_ext.webui.api_templates import add_routes

URL = "/facechain/v1"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, data_dir):
    return make_template_context(tmp_path_factory.mktemp("templates_api"), data_dir)


@pytest.fixture
def client(fake_host, ctx, data_dir, tmp_path):
    install_painter(ctx, data_dir)
    shared.opts.outdir_img2img_samples = str(tmp_path / "outputs")
    app = FastAPI()
    add_routes(app, ctx, parse_api_auth(None))
    yield TestClient(app)
    processing.fake_sampler = None


def b64_file(path) -> str:
    return base64.b64encode(open(path, "rb").read()).decode()


def b64_image(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def decode(data: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data)))


def body(data_dir, **change):
    return {"template": b64_file(template_path(data_dir)), "faces": [{"index": 1, "identity": "p02"},
            {"index": 0, "identity": "angelina"}], "n": 2, "seed": 7, "steps": 10, "guidance": {"pose": False}, **change}


def test_template_route_returns_ranked_candidates_with_per_face_scores(client, data_dir):
    response = client.post(f"{URL}/template", json=body(data_dir))
    assert response.status_code == 200, response.text
    data = response.json()
    assert len(data["images"]) == 2 and data["seeds"] in ([7, 8], [8, 7])
    assert [len(s) for s in data["scores"]] == [2, 2]
    assert [f["identity"] for f in data["faces"][0]] == ["p02", "angelina"]  # the request's `faces` order
    means = [np.mean(s) for s in data["scores"]]
    assert means[0] >= means[1]
    original = np.asarray(load_image(template_path(data_dir)))
    info = json.loads(data["info"])
    for encoded, text in zip(data["images"], info["infotexts"], strict=True):
        image = decode(encoded)
        assert image.size == (original.shape[1], original.shape[0]) and image.info["parameters"] == text
        changed = (np.asarray(image.convert("RGB")) != original).any(axis=2)
        assert 0.02 < changed.mean() < 0.2  # two faces repainted, the rest of the photo as it was
    params = infotext_utils.parse_generation_parameters(info["infotexts"][0])
    assert params["FaceChain face scores"].split() == [f"{s:.3f}".rstrip("0") for s in reversed(data["scores"][0])]
    assert info["guidance"] == "none" and "facechain_template" in shared.state.history
    assert any(str(task).startswith("task(img2img-") for task in progress.finished_tasks)
    assert call_queue.queue_lock.acquire(blocking=False)
    call_queue.queue_lock.release()


def test_template_faces_lists_faces_left_to_right(client, data_dir):
    data = client.post(f"{URL}/template/faces", json={"template": b64_file(template_path(data_dir))}).json()
    assert [f["index"] for f in data["faces"]] == [0, 1] and data["backend"] == "dlib" and data["rotation"] == 0
    assert data["faces"][0]["bbox"][0] < data["faces"][1]["bbox"][0] and (data["width"], data["height"]) == (1024, 601)


def _small(data_dir) -> str:
    return b64_image(load_image(template_path(data_dir)).resize((300, 176)))


@pytest.mark.parametrize(
    "change, status, code",
    [
        ({"template": "NOFACE"}, 422, "no_face"),
        ({"faces": [{"index": 2, "identity": "p02"}]}, 422, "face_index_out_of_range"),
        ({"faces": [{"index": -1, "identity": "p02"}]}, 422, "face_index_out_of_range"),
        ({"faces": [{"index": 0, "identity": "p02"}, {"index": 0, "identity": "angelina"}]}, 422, "duplicate_face"),
        ({"faces": [{"index": 0, "identity": "nobody"}]}, 404, "identity_not_found"),
        ({"template": "SMALL"}, 422, "template_too_small"),
        ({"template": "LARGE"}, 422, "template_too_large"),
        ({"template": "bm90IGFuIGltYWdl"}, 422, "unreadable_image"),
        ({"faces": []}, 422, "invalid_request"),
        ({"faces": [{"index": 0, "identity": "p02", "conditioning": "fact"}]}, 503, "fact_unavailable"),
        ({"strength": 0}, 422, "invalid_request"),
        ({"width": 500}, 422, "invalid_request"),
        ({"n": 0}, 422, "invalid_request"),
    ],
)
def test_template_errors_have_named_codes_and_queue_nothing(client, data_dir, change, status, code):
    if change.get("template") == "NOFACE":
        change["template"] = b64_file(data_dir / "edge" / "noface_blank_gray.jpg")
    elif change.get("template") == "SMALL":
        change["template"] = _small(data_dir)
    elif change.get("template") == "LARGE":
        change["template"] = b64_image(Image.new("RGB", (4200, 300), (128, 128, 128)))
    response = client.post(f"{URL}/template", json=body(data_dir, **change))
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert detail["code"] == code and detail["message"]
    assert shared.state.history == [] and processing.fake_sampler.calls == []
