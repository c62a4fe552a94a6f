"""Template portraits, host-free parts: faces of real group photos, plan checks, masks, composition, canny guidance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from test_prep_parsing import write_fake_parser

from facechain_ext.config import Settings
from facechain_ext.errors import FaceChainError
from facechain_ext.faces import create_analyzer
from facechain_ext.faces.types import Face
from facechain_ext.imaging import load_image
from facechain_ext.prep.parsing import head_masker_for
from facechain_ext.templates.compose import compose_pass, restrict
from facechain_ext.templates.faces import (
    TemplateFace,
    check_template_size,
    find_template_faces,
    list_template_faces,
    match_face,
    numbered_overlay,
)
from facechain_ext.templates.guidance import canny_map
from facechain_ext.templates.masks import build_face_mask, separate, union
from facechain_ext.templates.plan import MIN_PADDING, plan_passes
from facechain_ext.templates.request import TemplateArgs


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory):
    return create_analyzer(Settings(models_dir=tmp_path_factory.mktemp("m"), face_backend="dlib"), "dlib")


@pytest.fixture(scope="module")
def two_people(data_dir, analyzer):
    image = load_image(data_dir / "edge" / "group_two_people.jpg")
    return image, list_template_faces(image, analyzer)


def synthetic_face(cx: float, cy: float, eye_dx: float = 30.0) -> Face:
    s = eye_dx / 30.0
    kps = np.array([[cx - 30 * s, cy - 20 * s], [cx + 30 * s, cy - 20 * s], [cx, cy], [cx - 25 * s, cy + 30 * s],
                    [cx + 25 * s, cy + 30 * s]], np.float32)
    half = 60 * s
    return Face(bbox=(cx - half, cy - half, cx + half, cy + half), score=0.9, kps=kps, backend="test")


def test_faces_of_a_real_group_photo_are_numbered_left_to_right(two_people):
    image, faces = two_people
    assert [f.index for f in faces] == [0, 1]
    assert faces[0].face.center[0] < faces[1].face.center[0]
    assert all(140 < f.face.long_side < 180 for f in faces)  # dlib boxes of the two ~156 px faces
    overlay = np.asarray(numbered_overlay(image, faces, chosen=[1]))
    original = np.asarray(image)
    x1, y1, x2, y2 = (round(v) for v in faces[1].bbox)
    assert (overlay[y1, x1:x2] == (255, 196, 0)).all()  # chosen face: its own colour
    assert (overlay[(y1 + y2) // 2, round(faces[0].bbox[0])] == (0, 200, 255)).all()
    changed = (overlay != original).any(axis=2)
    assert changed.mean() < 0.05  # only boxes and labels are drawn
    assert not changed[-5:, :].any()  # far from every face nothing changes


def test_a_sideways_template_is_searched_upright_and_faces_stay_in_its_pixels(two_people, analyzer):
    image, upright_faces = two_people
    turned = image.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise: faces now lie on their side
    faces, rotation = find_template_faces(turned, analyzer)
    assert rotation in (90, 270) and len(faces) == 2
    for item in faces:
        x1, y1, x2, y2 = item.bbox
        assert 0 <= x1 < x2 <= turned.width and 0 <= y1 < y2 <= turned.height
    assert find_template_faces(image, analyzer)[1] == 0


def test_template_size_and_no_face_errors(data_dir, analyzer):
    with pytest.raises(FaceChainError) as small:
        check_template_size(Image.new("RGB", (200, 600)))
    assert small.value.code == "template_too_small" and small.value.http_status == 422
    with pytest.raises(FaceChainError) as large:
        check_template_size(Image.new("RGB", (5000, 400)))
    assert large.value.code == "template_too_large" and large.value.http_status == 422
    with pytest.raises(FaceChainError) as none:
        list_template_faces(load_image(data_dir / "edge" / "noface_blank_gray.jpg"), analyzer)
    assert none.value.code == "no_face" and none.value.http_status == 422


def args(*choices: dict, **extra) -> TemplateArgs:
    return TemplateArgs(faces=[{"identity": "x", **c} for c in choices], **extra)


@pytest.mark.parametrize(
    "choices, code, field",
    [
        ([], "invalid_request", "faces"),
        ([{"index": 2}], "face_index_out_of_range", "faces[0].index"),
        ([{"index": 1}, {"index": 1}], "duplicate_face", "faces[1].index"),
        ([{"index": 0, "conditioning": "magic"}], "invalid_request", "faces[0].conditioning"),
    ],
)
def test_plan_errors_name_the_face(two_people, choices, code, field):
    _, faces = two_people
    with pytest.raises(FaceChainError) as err:
        plan_passes(args(*choices), faces)
    assert err.value.code == code and err.value.context["field"] == field and err.value.http_status == 422


def test_plan_orders_passes_left_to_right_with_face_sized_padding(two_people):
    _, faces = two_people
    passes = plan_passes(args({"index": 1}, {"index": 0, "conditioning": "lora+fact"}), faces)
    assert [p.index for p in passes] == [0, 1] and passes[0].choice.conditioning == "lora+fact"
    assert passes[1].choice.conditioning == "auto"  # the accordion's default
    assert all(p.padding == round(0.5 * p.face.face.long_side) for p in passes)
    assert plan_passes(args({"index": 0}, padding=7), faces)[0].padding == 7
    tiny = [TemplateFace(0, synthetic_face(100, 100, eye_dx=6))]
    with pytest.raises(FaceChainError) as err:
        plan_passes(args({"index": 0}), tiny)
    assert err.value.code == "face_too_small"
    assert MIN_PADDING == 32


def test_mask_covers_the_face_grows_below_the_eyes_and_is_zero_elsewhere(two_people):
    image, faces = two_people
    masks = [build_face_mask(image.size, f) for f in faces]
    for mask, item in zip(masks, faces, strict=True):
        full = mask.full()
        assert mask.source == "outline" and full.shape == (image.height, image.width)
        for x, y in np.round(item.face.kps).astype(int):
            assert full[y, x] == 255  # eyes, nose and mouth corners are fully repainted
        x1, y1, x2, y2 = item.bbox
        assert 0.6 < (full > 0).sum() / ((x2 - x1) * (y2 - y1)) < 3.0
        soft = ((full > 0) & (full < 255)).sum()
        assert soft > 0.05 * (full > 0).sum()  # a real feathered seam
        ys, xs = np.nonzero(full)
        cx, cy = item.face.center
        eye_y = item.face.kps[:2, 1].mean()
        assert ys.max() - eye_y > eye_y - ys.min()  # more room below the eye line (chin, jaw) than above
        assert full[0, 0] == 0 and full[-1, -1] == 0
        assert abs(xs.mean() - cx) < 0.15 * item.face.long_side
    assert not ((masks[0].full() > 0) & (masks[1].full() > 0)).any()  # far apart faces never share a pixel


def test_overlapping_masks_are_split_between_the_faces():
    faces = [TemplateFace(0, synthetic_face(200, 200)), TemplateFace(1, synthetic_face(290, 205))]
    masks = [build_face_mask((600, 400), f) for f in faces]
    assert ((masks[0].full() > 0) & (masks[1].full() > 0)).any()  # they do overlap as built
    split = separate(masks, faces)
    a, b = split[0].full(), split[1].full()
    assert not ((a > 0) & (b > 0)).any()
    assert a[200, 200] == 255 and b[205, 290] == 255  # each keeps its own face
    np.testing.assert_array_equal(union(split), np.maximum(a, b))


def test_parser_region_is_used_when_the_face_parsing_model_is_installed(tmp_path: Path):
    write_fake_parser(tmp_path / "models" / "parsing" / "face_parsing_bisenet.onnx")
    parser = head_masker_for(Settings(models_dir=tmp_path / "models"))
    template = Image.new("RGB", (512, 512), (20, 40, 200))  # blue: background for the fake parser
    ImageDraw.Draw(template).ellipse((196, 150, 316, 300), fill=(220, 60, 30))  # red: "skin"
    ImageDraw.Draw(template).rectangle((0, 480, 40, 511), fill=(220, 60, 30))  # red but far from the face
    item = TemplateFace(0, synthetic_face(256, 225))
    parsed = build_face_mask(template.size, item, parser=parser, template=template)
    outline = build_face_mask(template.size, item)
    assert parsed.source == "parsing" and outline.source == "outline"
    full = parsed.full()
    yy, xx = np.mgrid[:512, :512]
    ellipse = ((xx - 256) / 60.0) ** 2 + ((yy - 225) / 75.0) ** 2 <= 1.0
    assert (full[ellipse] == 255).all()
    assert not full[480:, :40].any()
    blank = Image.new("RGB", (512, 512), (20, 40, 200))  # the parser sees no face: keypoint outline instead
    assert build_face_mask(blank.size, item, parser=parser, template=blank).source == "outline"


def test_compose_keeps_every_pixel_outside_the_mask(two_people):
    image, faces = two_people
    before = np.asarray(image).copy()
    mask = build_face_mask(image.size, faces[0])
    full = mask.full()
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, before.shape, dtype=np.uint8)
    out = compose_pass(before, Image.fromarray(noise), mask, None)  # host composited: full-size result
    np.testing.assert_array_equal(out[full == 0], before[full == 0])
    np.testing.assert_array_equal(out[full == 255], noise[full == 255])
    x1, y1, x2, y2 = mask.box
    crop = Image.fromarray(noise[:512, :512])
    out = compose_pass(before, crop, mask, (x1, y1, x2 - x1, y2 - y1))  # overlay_inpaint off: only the crop
    np.testing.assert_array_equal(out[full == 0], before[full == 0])
    inside = full == 255
    assert (out[inside] != before[inside]).any(axis=1).mean() > 0.9
    back = restrict(noise, before, full)
    np.testing.assert_array_equal(back[full == 0], before[full == 0])
    with pytest.raises(FaceChainError):
        compose_pass(before, crop, mask, None)


def test_match_face_by_overlap(two_people):
    _, faces = two_people
    moved = Face(bbox=tuple(v + 6 for v in faces[1].bbox), score=1.0, kps=faces[1].face.kps, backend="test")
    assert match_face(faces[1], [faces[0].face, moved]) is moved
    assert match_face(faces[0], [moved]) is None


def test_canny_map_blanks_the_faces(two_people):
    image, faces = two_people
    blank = union([build_face_mask(image.size, f) for f in faces])
    edges = canny_map(image, blank)
    assert edges.shape == (image.height, image.width, 3) and edges.dtype == np.uint8
    assert not edges[blank > 0].any()
    assert (edges[blank == 0] == 255).any(axis=-1).mean() > 0.02  # clothes, background: real edges remain
