"""Optional pose image for txt2img (POST /facechain/v1/txt2img `pose_image`, Generate view): openpose guidance through
the host ControlNet's external API when it can use it, and a visible comment when it cannot (never an error)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from generation_helpers import IDENTITY, SEED, install_sampler, make_context
from modules import processing, scripts
from PIL import Image, ImageDraw

from facechain_ext.imaging import load_image
from facechain_ext.templates.guidance import is_pose_skeleton
from facechain_ext.webui.api_common import parse_api_auth
from facechain_ext.webui.api_generate import add_routes

OPENPOSE = "control_v11p_sd15_openpose [cab727d4]"
URL = "/facechain/v1/txt2img"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, data_dir):
    return make_context(tmp_path_factory.mktemp("pose"), data_dir)


@pytest.fixture
def client(fake_host, ctx, data_dir):
    install_sampler(data_dir)
    app = FastAPI()
    add_routes(app, ctx, parse_api_auth(None))
    yield TestClient(app)
    processing.fake_sampler = None


def skeleton() -> Image.Image:
    """An openpose-style render: coloured limbs on black."""
    image = Image.new("RGB", (512, 512))
    draw = ImageDraw.Draw(image)
    for (x1, y1, x2, y2), colour in [((256, 100, 256, 250), (255, 0, 0)), ((256, 140, 170, 230), (255, 170, 0)),
                                     ((256, 140, 340, 230), (0, 255, 0)), ((256, 250, 200, 420), (0, 85, 255)),
                                     ((256, 250, 312, 420), (170, 0, 255))]:
        draw.line((x1, y1, x2, y2), fill=colour, width=8)
    return image


def b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def post(client, pose: Image.Image):
    body = {"prompt": "portrait", "seed": SEED, "batch_size": 1, "steps": 8, "pose_image": b64(pose),
            "facechain": {"identity": IDENTITY}}
    response = client.post(URL, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def recorded():
    return __import__("extensions.sd-webui-controlnet.scripts.controlnet", fromlist=["RECORDED"]).RECORDED


def test_skeleton_and_photo_are_told_apart(data_dir):
    assert is_pose_skeleton(skeleton())
    assert not is_pose_skeleton(load_image(data_dir / "faces" / "obama" / "face_recognition_obama.jpg"))
    assert not is_pose_skeleton(load_image(data_dir / "edge" / "group_two_people.jpg"))


def test_a_skeleton_is_used_as_is(client, fake_host):
    external_code = fake_host.install_controlnet(models=[OPENPOSE])
    data = post(client, skeleton())
    (record,) = recorded()
    (unit,) = record["units"]
    assert (unit.module, unit.model, unit.weight, unit.enabled) == ("none", OPENPOSE, 1.0, True)
    np.testing.assert_array_equal(np.asarray(unit.image), np.asarray(skeleton()))
    assert "FaceChain pose: openpose skeleton" in json.loads(data["info"])["infotexts"][0]
    host_cn = external_code.find_cn_script(scripts.scripts_txt2img)
    assert (host_cn.args_from, host_cn.args_to) == (2, 5)  # the host's txt2img runner was not touched
    assert len(data["images"]) == 1 and "pose image" not in data["comments"]


def test_a_photo_goes_through_the_openpose_preprocessor(client, fake_host, data_dir):
    fake_host.install_controlnet(models=[OPENPOSE])
    post(client, load_image(data_dir / "faces" / "obama" / "face_recognition_obama.jpg"))
    (unit,) = recorded()[0]["units"]
    assert unit.module == "openpose_hand" and unit.model == OPENPOSE


@pytest.mark.parametrize(
    "models, preprocessors, expected",
    [
        (None, None, "the pose image is not used (ControlNet is not installed"),
        ([], None, "ControlNet has no openpose model"),
        ([OPENPOSE], ["none", "canny"], "looks like a photo and ControlNet has no openpose preprocessor"),
    ],
)
def test_without_a_usable_controlnet_the_reason_is_shown(client, fake_host, data_dir, models, preprocessors, expected):
    if models is not None:
        fake_host.install_controlnet(models=models, preprocessors=preprocessors)
    data = post(client, load_image(data_dir / "faces" / "obama" / "face_recognition_obama.jpg"))
    assert expected in data["comments"] and len(data["images"]) == 1
    assert "FaceChain pose: none" in json.loads(data["info"])["infotexts"][0]
    if models is not None:
        assert recorded() == []
