"""The pieces of the blend fusion on synthetic inputs: mask geometry, colour transfer, Poisson placement, compositing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facechain_ext.faces.align import ARCFACE_112, apply_matrix
from facechain_ext.faces.types import Face
from facechain_ext.fusion.blend import BlendFusion, poisson_blend
from facechain_ext.fusion.color import match_color_lab
from facechain_ext.fusion.composite import bounding_region, composite_into
from facechain_ext.fusion.mask import build_face_mask, face_outline, face_scale, feathered_alpha
from facechain_ext.fusion.warp import reference_to_target


def face_at(scale: float, shift: tuple[float, float], angle_deg: float = 0.0, landmarks: np.ndarray | None = None) -> Face:
    """A face whose keypoints are the ArcFace template rotated by `angle_deg`, scaled and shifted."""
    theta = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    matrix = np.hstack([rot, np.array(shift, float)[:, None]])
    kps = apply_matrix(matrix, ARCFACE_112).astype(np.float32)
    x1, y1 = kps.min(axis=0) - 20 * scale
    x2, y2 = kps.max(axis=0) + 20 * scale
    return Face(bbox=(x1, y1, x2, y2), score=0.99, kps=kps, backend="test", landmarks=landmarks)


def test_outline_covers_forehead_to_chin_and_scales_with_the_face():
    face = face_at(2.0, (100.0, 50.0))
    outline = face_outline(face)
    assert face_scale(face) == pytest.approx(224.0, rel=1e-4)
    eyes_y, mouth_y = face.kps[:2, 1].mean(), face.kps[3:, 1].mean()
    assert outline[:, 1].min() < eyes_y - 0.7 * (mouth_y - eyes_y)  # forehead, well above the brows
    assert outline[:, 1].max() > mouth_y + 0.3 * (mouth_y - eyes_y)  # chin below the mouth
    eye_dx = face.kps[1, 0] - face.kps[0, 0]
    assert outline[:, 0].max() - outline[:, 0].min() > 1.7 * eye_dx  # cheek to cheek
    for point in face.kps:  # every keypoint is well inside
        assert cv2.pointPolygonTest(outline.reshape(-1, 1, 2), tuple(map(float, point)), True) > 10


def test_dense_landmarks_replace_the_template_jaw():
    base = face_at(2.0, (100.0, 50.0))
    # A wide, long jaw traced by 68 "landmarks" reaching below the template chin.
    t = np.linspace(0, np.pi, 68)
    jaw = np.stack([212 + 110 * np.cos(t), 200 + 120 * np.sin(t)], axis=1).astype(np.float32)
    dense = face_at(2.0, (100.0, 50.0), landmarks=jaw)
    assert face_outline(dense)[:, 1].max() == pytest.approx(jaw[:, 1].max(), abs=1.0)
    assert face_outline(dense)[:, 1].max() > face_outline(base)[:, 1].max() + 40


def test_feathered_alpha_is_zero_outside_and_one_deep_inside():
    binary = np.zeros((200, 200), np.uint8)
    cv2.circle(binary, (100, 100), 70, 255, -1)
    alpha = feathered_alpha(binary, sigma=4.0)
    assert alpha[binary == 0].max() == 0.0
    assert alpha[100, 100] == pytest.approx(1.0, abs=1e-5)
    assert 0.0 < alpha[100, 100 + 70 - 13] < 1.0  # the soft edge lies inside the outline


def test_mask_is_clipped_to_the_image():
    face = face_at(3.0, (-60.0, -40.0))  # face partly above/left of a 300x300 image
    mask = build_face_mask((300, 300, 3), face)
    x1, y1, x2, y2 = mask.box
    assert x1 == 0 and y1 == 0 and x2 <= 300 and y2 <= 300
    assert mask.binary.shape == (y2 - y1, x2 - x1) == mask.alpha.shape


def test_colour_matching_transfers_lab_statistics_inside_the_mask():
    rng = np.random.default_rng(0)
    source = np.clip(rng.normal((90, 140, 200), 12, size=(64, 64, 3)), 0, 255).astype(np.uint8)
    target = np.clip(rng.normal((200, 150, 120), 15, size=(64, 64, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[8:56, 8:56] = 255
    matched = match_color_lab(source, target, mask)
    lab = [cv2.cvtColor(a.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)[mask > 0] for a in (matched, target)]
    np.testing.assert_allclose(lab[0].mean(axis=0), lab[1].mean(axis=0), atol=1.0)
    assert np.abs(matched.astype(int) - target.astype(int)).mean() < np.abs(source.astype(int) - target.astype(int)).mean() / 3


def test_colour_matching_bounds_contrast_and_allows_a_gray_face():
    rng = np.random.default_rng(2)
    source = np.clip(rng.normal((160, 110, 90), 30, size=(64, 64, 3)), 0, 255).astype(np.uint8)
    flat_gray = np.full((64, 64, 3), 128, np.uint8)
    mask = np.full((64, 64), 255, np.uint8)
    lab = [
        cv2.cvtColor(a.astype(np.float32) / 255, cv2.COLOR_RGB2LAB).reshape(-1, 3)
        for a in (source, match_color_lab(source, flat_gray, mask))
    ]
    assert lab[1][:, 1:].std(axis=0).max() < 0.5  # no tint left on a gray target
    assert lab[1][:, 0].std() == pytest.approx(0.6 * lab[0][:, 0].std(), rel=0.05)  # lightness detail kept at 60 %


def test_poisson_blend_places_the_source_in_situ():
    rng = np.random.default_rng(1)
    # Smooth but non-trivial content: a blurred noise field.
    dst = cv2.GaussianBlur(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8), (0, 0), 3)
    src = dst.copy()
    src[30:60, 40:80] = np.flip(src[30:60, 40:80], axis=1)  # a detail the output must show in the same place
    binary = np.zeros(dst.shape[:2], np.uint8)
    cv2.ellipse(binary, (61, 44), (30, 22), 0, 0, 360, 255, -1)
    out = poisson_blend(src, dst, binary)
    assert out.shape == dst.shape
    inner = cv2.erode(binary, np.ones((9, 9), np.uint8)) > 0
    # Gradients inside come from `src` (not shifted by a pixel): the blend is close to src there.
    assert np.abs(out[inner].astype(int) - src[inner].astype(int)).mean() < 3.0
    # The Poisson solve spans the mask's bounding rectangle: exact outside it, near-exact between it and the mask
    # (fusion's compositing weight is zero there anyway).
    x, y, w, h = cv2.boundingRect(binary)
    outside_rect = np.ones(binary.shape, bool)
    outside_rect[y : y + h, x : x + w] = False
    assert np.array_equal(out[outside_rect], dst[outside_rect])
    assert np.abs(out[binary == 0].astype(int) - dst[binary == 0].astype(int)).max() <= 4
    # Same source and destination: nothing to change.
    assert np.abs(poisson_blend(dst, dst, binary).astype(int) - dst.astype(int)).max() <= 1


def test_composite_writes_only_where_the_weight_is_positive():
    image = np.full((50, 60, 3), 100, np.uint8)
    face = face_at(0.35, (10.0, 5.0))
    mask = build_face_mask(image.shape, face)
    x1, y1, x2, y2 = mask.box
    fused = np.full((y2 - y1, x2 - x1, 3), 200, np.uint8)
    before = image.copy()
    written = composite_into(image, fused, mask, 0.5)
    assert written.any()
    assert np.array_equal(image[~written], before[~written])
    assert set(np.unique(image[written])) <= set(range(100, 151))
    assert bounding_region(written) is not None
    bx1, by1, bx2, by2 = bounding_region(written)
    assert x1 <= bx1 and y1 <= by1 and bx2 <= x2 and by2 <= y2
    assert not composite_into(image, fused, mask, 0.0).any()


def test_alignment_maps_reference_keypoints_onto_target_keypoints():
    reference = face_at(1.5, (30.0, 20.0), angle_deg=-12.0)
    target = face_at(2.5, (200.0, 90.0), angle_deg=20.0)
    matrix = reference_to_target(reference, target)
    np.testing.assert_allclose(apply_matrix(matrix, reference.kps), target.kps, atol=1e-3)


def test_blend_fuses_a_synthetic_face_inside_its_mask_only():
    rng = np.random.default_rng(3)
    # Skin-like target with some texture (a perfectly flat target would flatten the reference's contrast to zero).
    target = np.clip(rng.normal((180, 140, 120), 25, size=(256, 256, 3)), 0, 255).astype(np.uint8)
    reference = np.full((300, 300, 3), (60, 90, 160), np.uint8)
    cv2.circle(reference, (150, 150), 40, (250, 250, 250), -1)  # a bright feature in the reference face
    t_face, r_face = face_at(1.6, (38.0, 30.0)), face_at(2.2, (27.0, 20.0))
    crop, mask = BlendFusion().fuse_one(target, t_face, reference, r_face)
    x1, y1, x2, y2 = mask.box
    assert crop.shape == (y2 - y1, x2 - x1, 3)
    # Structure from the reference: its bright disc (warped onto the target's face) shows up in the crop,
    # compared with a point of the face outside the disc.
    to_crop = reference_to_target(r_face, t_face)
    disc = apply_matrix(to_crop, np.array([[150.0, 150.0]]))[0] - (x1, y1)
    cheek = apply_matrix(to_crop, np.array([[150.0, 150.0 + 75.0]]))[0] - (x1, y1)
    (dx, dy), (kx, ky) = np.round(disc).astype(int), np.round(cheek).astype(int)
    assert mask.alpha[dy, dx] > 0.99 and mask.alpha[ky, kx] > 0.99
    brightness = crop.astype(float).sum(axis=2)
    assert brightness[dy - 2 : dy + 3, dx - 2 : dx + 3].mean() > brightness[ky - 2 : ky + 3, kx - 2 : kx + 3].mean() + 30
    # Colour from the target: along the mask's edge the Poisson solution meets the target's colour.
    edge = (mask.binary > 0) & (cv2.erode(mask.binary, np.ones((5, 5), np.uint8)) == 0)
    target_crop = target[y1:y2, x1:x2]
    assert np.abs(crop[edge].astype(float).mean(axis=0) - target_crop[edge].astype(float).mean(axis=0)).max() <= 6
