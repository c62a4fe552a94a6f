"""/facechain/v1 generation routes through FastAPI's TestClient, generating with the fake host (real faces)."""

from __future__ import annotations

import base64
import io
import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from generation_helpers import IDENTITY, SEED, install_sampler, make_context, sampler_photos
from modules import call_queue, processing, progress, shared
from PIL import Image

from facechain_ext.webui.api_common import parse_api_auth
from facechain_ext.webui.api_generate import add_routes

URL = "/facechain/v1"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("facechain_api")
    user_styles = root / "user_styles"
    user_styles.mkdir()
    (user_styles / "broken.json").write_text('{"id": "broken"}', encoding="utf-8")
    return make_context(root, data_dir, styles_dirs=(user_styles,))


@pytest.fixture
def client(fake_host, ctx, data_dir):
    install_sampler(data_dir)
    app = FastAPI()
    add_routes(app, ctx, parse_api_auth(None))
    yield TestClient(app)
    processing.fake_sampler = None


def b64(path) -> str:
    return base64.b64encode(open(path, "rb").read()).decode()


def decode(data: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data)))


def txt2img(client, **facechain):
    body = {"prompt": "portrait", "seed": SEED, "batch_size": 4, "steps": 12, "width": 512, "height": 512,
            "facechain": {"identity": IDENTITY, **facechain}}
    return client.post(f"{URL}/txt2img", json=body)


def test_txt2img_runs_through_the_host_queue_and_returns_ranked_images(client):
    response = txt2img(client, style="film_photo", ranking={"top_k": 3})
    assert response.status_code == 200, response.text
    data = response.json()
    assert len(data["images"]) == 3 and len(data["scores"]) == 3 and len(data["order"]) == 3, data["comments"]
    assert data["order"][0] == 2  # the identity's own photo (seed SEED+2) ranks first
    assert data["scores"][0] > data["scores"][1] >= data["scores"][2]
    info = json.loads(data["info"])
    assert info["all_seeds"][0] == SEED + 2
    assert decode(data["images"][0]).size == (512, 512)
    # unset fields come from the style's recommendation (film_photo: CFG 6.5, DPM++ 2M), set ones are kept
    assert (info["cfg_scale"], info["sampler_name"], info["steps"]) == (6.5, "DPM++ 2M", 12)
    assert "FaceChain similarity: " + f"{data['scores'][0]:.3f}".rstrip("0") in info["infotexts"][0]
    assert data["parameters"]["facechain"]["ranking"]["top_k"] == 3
    # the host's job machinery was used and released
    assert "facechain_txt2img" in shared.state.history and shared.state.job == ""
    assert any(str(task).startswith("task(txt2img-") for task in progress.finished_tasks)
    assert call_queue.queue_lock.acquire(blocking=False)
    call_queue.queue_lock.release()


def test_txt2img_saving_with_a_grid_returns_only_the_ranked_images(client):
    """save_images + do_not_save_grid=false: the host writes the samples and a grid and returns the grid first in
    Processed.images; the route returns the generated images only, ranked, with infotexts in the same order."""
    from pathlib import Path

    response = client.post(f"{URL}/txt2img", json={
        "prompt": "portrait", "seed": SEED, "batch_size": 4, "steps": 12, "save_images": True,
        "do_not_save_grid": False, "facechain": {"identity": IDENTITY, "fusion": {"enabled": False}}})
    assert response.status_code == 200, response.text
    data = response.json()
    info = json.loads(data["info"])
    assert len(data["images"]) == 4 and data["order"][0] == 2 and data["order"][-1] == 1  # identity first, no face last
    assert info["index_of_first_image"] == 1 and len(info["infotexts"]) == 5  # the host's Processed, grid first
    assert all(decode(image).size == (512, 512) for image in data["images"])
    for image, seed_index in zip(data["images"], data["order"], strict=True):
        assert f"Seed: {SEED + seed_index}," in decode(image).info["parameters"]
    assert len(list(Path(shared.opts.outdir_txt2img_samples).glob("*.png"))) == 4
    assert len(list(Path(shared.opts.outdir_txt2img_grids).glob("grid-*.png"))) == 1


def test_txt2img_no_face_image_stays_with_null_score(client):
    data = txt2img(client, fusion={"enabled": False}).json()
    assert len(data["images"]) == 4 and data["scores"][-1] is None and data["order"][-1] == 1
    assert "no detectable face" in data["comments"]


@pytest.mark.parametrize(
    "change, status, code",
    [
        ({"facechain": {"identity": "nobody"}}, 404, "identity_not_found"),
        ({"facechain": {"identity": IDENTITY, "style": "no_such_style"}}, 404, "style_not_found"),
        ({"steps": 0}, 422, "invalid_request"),
        ({"width": 500}, 422, "invalid_request"),
        ({"facechain": {"identity": IDENTITY, "fusion": {"strength": 2}}}, 422, "invalid_request"),
        ({"facechain": {"style": "wedding"}}, 422, "invalid_request"),
        ({"facechain": {"identity": IDENTITY, "enabled": False}}, 422, "invalid_request"),
        ({"facechain": None}, 422, "invalid_request"),
        ({"facechain": {"identity": IDENTITY, "conditioning": "face"}}, 422, "invalid_request"),
        ({"facechain": {"identity": IDENTITY, "fact_scale": 1.6}}, 422, "invalid_request"),
        ({"facechain": {"identity": IDENTITY, "fact_photo_count": 0}}, 422, "invalid_request"),
    ],
)
def test_txt2img_errors(client, change, status, code):
    body = {"prompt": "x", "seed": SEED, "batch_size": 1, "facechain": {"identity": IDENTITY}, **change}
    response = client.post(f"{URL}/txt2img", json=body)
    assert response.status_code == status, response.text
    assert response.json()["detail"]["code"] == code
    assert shared.state.history == []  # nothing was queued for a request that cannot run


def test_fuse_with_identity_and_with_images(client, data_dir):
    photos = sampler_photos(data_dir)
    target = b64(photos[SEED])
    response = client.post(f"{URL}/face/fuse", json={"target": target, "reference": {"identity": IDENTITY}, "strength": 0.8})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["applied"] and data["similarity_after"] > data["similarity_before"]
    assert decode(data["image"]).size == Image.open(photos[SEED]).size
    refs = [b64(data_dir / "faces" / "deepface_angelina" / name) for name in ("deepface_tests_img1.jpg", "deepface_tests_img2.jpg")]
    by_images = client.post(f"{URL}/face/fuse", json={"target": target, "reference": {"images": refs}}).json()
    assert by_images["similarity_after"] > by_images["similarity_before"]


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"target": "NOFACE", "reference": {"identity": IDENTITY}}, 422, "no_face"),
        ({"target": "FACE", "reference": {}}, 422, "invalid_request"),
        ({"target": "FACE", "reference": {"identity": IDENTITY, "images": ["FACE"]}}, 422, "invalid_request"),
        ({"target": "FACE", "reference": {"identity": "nobody"}}, 404, "identity_not_found"),
        ({"target": "FACE", "reference": {"identity": IDENTITY}, "strength": 1.5}, 422, "invalid_request"),
        ({"target": "bm90IGFuIGltYWdl", "reference": {"identity": IDENTITY}}, 422, "unreadable_image"),
    ],
)
def test_fuse_errors(client, data_dir, body, status, code):
    photos = sampler_photos(data_dir)
    swap = {"FACE": b64(photos[SEED]), "NOFACE": b64(photos[SEED + 1])}
    body = json.loads(json.dumps(body))
    body["target"] = swap.get(body["target"], body["target"])
    if "images" in body["reference"]:
        body["reference"]["images"] = [swap.get(x, x) for x in body["reference"]["images"]]
    response = client.post(f"{URL}/face/fuse", json=body)
    assert response.status_code == status, response.text
    assert response.json()["detail"]["code"] == code


def test_styles_and_schema(client):
    styles = client.get(f"{URL}/styles").json()
    ids = [s["id"] for s in styles["styles"]]
    assert len(ids) >= 12 and "studio_headshot" in ids
    assert all(s["style_lora_present"] is None for s in styles["styles"])
    assert [k.endswith("broken.json") for k in styles["errors"]] == [True]
    schema = client.get(f"{URL}/schema").json()
    assert {"identity", "style", "fusion", "ranking"} <= set(schema["properties"])
    assert {"conditioning", "fact_scale", "fact_photo_count", "fact_photos"} <= set(schema["properties"])
    assert schema["properties"]["conditioning"]["enum"] == ["auto", "lora", "fact", "lora+fact"]


def test_fact_mode_without_its_files_generates_and_says_which_file_and_how_to_get_it(client, ctx):
    data = txt2img(client, conditioning="fact", fact_scale=0.7, ranking={"enabled": False}).json()
    assert len(data["images"]) == 4 and data["parameters"]["facechain"]["conditioning"] == "fact"
    assert "FACT is off" in data["comments"] and "ms1mv2_model_TransFace_S.pt" in data["comments"]
    assert "POST /facechain/v1/models/transface_s/download" in data["comments"]
    assert str(ctx.settings.models_dir / "fact") in data["comments"]
    infotext = json.loads(data["info"])["infotexts"][0]
    assert "FaceChain conditioning: none" in infotext  # neither the LoRA (not asked for) nor FACT was used


def test_routes_enforce_the_host_api_auth(fake_host, ctx):
    app = FastAPI()
    add_routes(app, ctx, parse_api_auth("user:secret"))
    client = TestClient(app)
    assert client.get(f"{URL}/styles").status_code == 401
    assert client.get(f"{URL}/styles", auth=("user", "secret")).status_code == 200
