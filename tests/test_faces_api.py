"""Backend resolution, alignment geometry and similarity helpers (no photos needed)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from onnx_fakes import write_buffalo_pack

from facechain_ext.config import Settings
from facechain_ext.context import FaceChainContext
from facechain_ext.errors import FaceChainError
from facechain_ext.faces import backend_status, create_analyzer, resolve_backend
from facechain_ext.faces.align import ARCFACE_112, align_face, apply_matrix, roll_degrees, similarity_matrix, template_for_size
from facechain_ext.faces.similarity import cosine_matrix, cosine_similarity, mean_embedding


def settings_for(tmp_path: Path, **changes: object) -> Settings:
    return Settings(models_dir=tmp_path / "facechain", insightface_root=tmp_path / "insightface").with_(**changes)


# -- backend resolution ---------------------------------------------------------------------------------------------
def test_auto_falls_back_to_dlib_without_the_pack(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    status = backend_status(settings)
    assert status["dlib"] == {"available": True, "reason": None, "path": status["dlib"]["path"]}
    assert Path(status["dlib"]["path"], "dlib_face_recognition_resnet_model_v1.dat").is_file()
    assert status["insightface"]["available"] is False
    assert str(tmp_path / "insightface" / "models" / "buffalo_l") in status["insightface"]["reason"]
    assert resolve_backend(settings, "auto") == "dlib"
    assert resolve_backend(settings, None) == "dlib"
    assert create_analyzer(settings).name == "dlib"


def test_named_backend_must_be_available(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with pytest.raises(FaceChainError) as err:
        resolve_backend(settings, "insightface")
    assert err.value.code == "backend_unavailable" and err.value.http_status == 503
    assert "buffalo_l" in err.value.message and err.value.context["backend"] == "insightface"
    with pytest.raises(FaceChainError) as err:
        resolve_backend(settings, "mtcnn")
    assert err.value.code == "backend_unavailable" and "mtcnn" in err.value.message


@pytest.mark.parametrize("location", ["insightface_root", "models_dir"])
def test_auto_prefers_insightface_when_the_pack_is_there(tmp_path: Path, location: str) -> None:
    settings = settings_for(tmp_path)
    base = tmp_path / "insightface" if location == "insightface_root" else tmp_path / "facechain" / "insightface"
    pack = write_buffalo_pack(base / "models" / "buffalo_l")
    status = backend_status(settings)
    assert status["insightface"] == {"available": True, "reason": None, "path": str(pack)}
    assert resolve_backend(settings, "auto") == "insightface"
    assert resolve_backend(settings, "DLIB") == "dlib"
    analyzer = create_analyzer(settings, "auto")
    assert analyzer.name == "insightface" and analyzer.info()["model_dir"] == str(pack)


def test_context_shares_one_analyzer_per_backend(tmp_path: Path) -> None:
    context = FaceChainContext(settings_for(tmp_path))
    assert context.analyzer() is context.analyzer("dlib")
    assert context.analyzer().threshold == pytest.approx(0.925)


# -- alignment ------------------------------------------------------------------------------------------------------
def test_similarity_matrix_recovers_a_known_transform() -> None:
    rng = np.random.default_rng(0)
    angle, scale, shift = math.radians(23.0), 1.7, np.array([31.0, -12.5])
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    src = rng.uniform(0, 200, size=(5, 2))
    dst = src @ (scale * rotation).T + shift
    matrix = similarity_matrix(src, dst)
    np.testing.assert_allclose(matrix[:, :2], scale * rotation, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-7)
    # With noise it is the least-squares fit: residuals are small and the mirror image is never returned.
    noisy = dst + rng.normal(0, 0.5, size=dst.shape)
    fitted = similarity_matrix(src, noisy)
    assert np.abs(apply_matrix(fitted, src) - noisy).max() < 2.0
    mirrored = similarity_matrix(src, src * np.array([-1.0, 1.0]))
    assert np.linalg.det(mirrored[:, :2]) > 0
    with pytest.raises(ValueError):
        similarity_matrix(np.ones((5, 2)), dst)


def test_align_face_puts_keypoints_on_the_template() -> None:
    # Draw five dots where a tilted, scaled face would have its keypoints, align, and find the dots on the template.
    to_image = np.array([[2.0, -0.6, 140.0], [0.6, 2.0, 60.0]])
    kps = apply_matrix(to_image, ARCFACE_112)
    image = np.zeros((480, 480, 3), dtype=np.uint8)
    for x, y in kps:
        image[round(y) - 2 : round(y) + 3, round(x) - 2 : round(x) + 3] = 255
    crop = align_face(image, kps, 112)
    assert crop.shape == (112, 112, 3)
    for x, y in ARCFACE_112:
        assert crop[round(y), round(x)].min() > 100
    assert crop[5, 5].max() == 0
    assert align_face(image, kps, 256).shape == (256, 256, 3)
    np.testing.assert_allclose(template_for_size(224), ARCFACE_112 * 2)
    np.testing.assert_allclose(template_for_size(128), ARCFACE_112 + [8.0, 0.0])


def test_roll_degrees() -> None:
    level = ARCFACE_112.copy()
    level[:2, 1] = 50.0
    assert roll_degrees(level) == pytest.approx(0.0)
    tilted = level.copy()
    tilted[1, 1] += tilted[1, 0] - tilted[0, 0]  # right eye one eye-distance lower: 45 degrees clockwise on screen
    assert roll_degrees(tilted) == pytest.approx(45.0)


# -- similarity -----------------------------------------------------------------------------------------------------
def test_cosine_and_mean_embedding() -> None:
    a, b = np.array([3.0, 4.0, 0.0]), np.array([0.0, 2.0, 0.0])
    assert cosine_similarity(a, b) == pytest.approx(0.8)
    assert cosine_similarity(a, -a) == pytest.approx(-1.0)
    mean = mean_embedding([np.array([1.0, 0.0]), np.array([0.0, 5.0])])
    np.testing.assert_allclose(mean, [math.sqrt(0.5), math.sqrt(0.5)], rtol=1e-6)
    np.testing.assert_allclose(cosine_matrix(np.eye(2), np.array([[1.0, 1.0]])), [[math.sqrt(0.5)], [math.sqrt(0.5)]], rtol=1e-6)
    for bad in ([], [np.zeros(3)], [np.ones(3), np.ones(4)]):
        with pytest.raises(FaceChainError):
            mean_embedding(bad)
    with pytest.raises(FaceChainError):
        cosine_similarity(np.ones(128), np.ones(512))
