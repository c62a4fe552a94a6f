"""The optional head mask through the real onnxruntime path, with a tiny ONNX graph shaped like BiSeNet face parsing.

The fake parser is a 1x1 convolution [1,3,512,512] -> [1,19,512,512] whose class 1 ("skin") wins where a pixel is
redder than it is blue and class 0 ("background") elsewhere, so the expected mask is known exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image, ImageDraw

from facechain_ext.config import Settings
from facechain_ext.faces import create_analyzer
from facechain_ext.faces.types import Face
from facechain_ext.prep import PrepOptions, apply_head_mask, prepare_photos
from facechain_ext.prep.parsing import BiSeNetHeadMasker, head_masker_for


def write_fake_parser(path: Path) -> Path:
    weight = np.zeros((19, 3, 1, 1), dtype=np.float32)
    bias = np.full((19,), -10.0, dtype=np.float32)
    weight[0, :, 0, 0] = [-1.0, 0.0, 1.0]  # background: blue minus red (normalised input)
    weight[1, :, 0, 0] = [1.0, 0.0, -1.0]  # skin: red minus blue
    bias[0] = bias[1] = 0.0
    node = helper.make_node("Conv", ["input", "w", "b"], ["output"], kernel_shape=[1, 1])
    graph = helper.make_graph(
        [node],
        "fake_bisenet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 512, 512])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 19, 512, 512])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    write_fake_parser(tmp_path / "models" / "parsing" / "face_parsing_bisenet.onnx")
    return tmp_path / "models"


def crop_face() -> Face:
    side = 512 / 3.29
    cx, cy = 256.0, 0.435 * 512
    kps = np.array([[cx - 30, cy - 20], [cx + 30, cy - 20], [cx, cy], [cx - 25, cy + 30], [cx + 25, cy + 30]], dtype=np.float32)
    return Face(bbox=(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2), score=0.9, kps=kps, backend="test")


def test_masker_is_found_only_when_the_model_file_exists(models_dir: Path, tmp_path: Path) -> None:
    assert isinstance(head_masker_for(Settings(models_dir=models_dir)), BiSeNetHeadMasker)
    assert head_masker_for(Settings(models_dir=tmp_path / "empty")) is None


def test_head_mask_follows_the_parser_inside_the_head_square(models_dir: Path) -> None:
    crop = Image.new("RGB", (512, 512), (20, 40, 200))  # blue: background for the fake parser
    draw = ImageDraw.Draw(crop)
    draw.ellipse((196, 163, 316, 283), fill=(220, 60, 30))  # red disk on the face: "skin"
    draw.rectangle((20, 460, 120, 500), fill=(220, 60, 30))  # red, but far below the head: outside the parsed square
    masker = head_masker_for(Settings(models_dir=models_dir))
    mask = masker.head_mask(crop, crop_face())
    assert mask.shape == (512, 512) and mask.dtype == bool
    disk = np.zeros((512, 512), dtype=bool)
    yy, xx = np.mgrid[:512, :512]
    disk[(xx - 256) ** 2 + (yy - 223) ** 2 <= 58**2] = True
    assert mask[disk].all()  # all of the disk's interior
    assert mask.sum() < disk.sum() * 1.2  # and little else
    assert not mask[460:500, 20:120].any()
    masked = np.asarray(apply_head_mask(crop, mask, dilate_px=0))
    assert (masked[470, 50] == 255).all() and (masked[10, 10] == 255).all()
    np.testing.assert_array_equal(masked[223, 256], [220, 60, 30])


def test_preparation_with_head_mask_paints_the_background_white(models_dir: Path, data_dir: Path) -> None:
    analyzer = create_analyzer(Settings(models_dir=models_dir, face_backend="dlib"), "dlib")
    photo = [("obama.jpg", data_dir / "faces" / "obama" / "face_recognition_obama.jpg")]
    plain = prepare_photos(photo, analyzer)
    masker = head_masker_for(Settings(models_dir=models_dir))
    masked = prepare_photos(photo, analyzer, PrepOptions(head_mask=True, head_masker=masker))
    assert plain.background == "kept" and masked.background == "masked"
    assert any("head mask applied" in note for note in masked.notes)
    before, after = np.asarray(plain.accepted[0].crop), np.asarray(masked.accepted[0].crop)
    white_before, white_after = (before == 255).all(axis=2).mean(), (after == 255).all(axis=2).mean()
    assert white_after > white_before + 0.3  # most of the photo around the head is now white
    changed = (before != after).any(axis=2)
    assert (after[changed] == 255).all()  # masking only ever paints white
    requested = prepare_photos(photo, analyzer, PrepOptions(head_mask=True))  # asked for, but no model
    assert requested.background == "kept" and any("no face-parsing model" in n for n in requested.notes)
