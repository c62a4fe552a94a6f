"""The insightface backend through insightface's real model_zoo routing and decoding, on buffalo_l-shaped ONNX fakes."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from onnx_fakes import FakeSpec, expected_embedding, write_buffalo_pack

from facechain_ext.errors import FaceChainError
from facechain_ext.faces.align import align_face
from facechain_ext.faces.analyzer import FaceAnalyzer
from facechain_ext.faces.insightface_backend import InsightFaceBackend, choose_providers

SPEC = FakeSpec()


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_buffalo_pack(tmp_path_factory.mktemp("models") / "buffalo_l", SPEC)


@pytest.fixture(scope="module")
def backend(pack: Path) -> InsightFaceBackend:
    return InsightFaceBackend(pack)


def scene(height: int, width: int, cell: tuple[int, int], cell_size: int) -> np.ndarray:
    """A dark, coloured RGB picture with one white square (the fake detector's 'face'); colour makes RGB != BGR."""
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    rgb[:, :, 0] = 90  # dark red background: mean brightness low, so only the white square fires
    rgb[:, : width // 2, 1] = 40
    y, x = cell
    rgb[y : y + cell_size, x : x + cell_size] = 255
    return rgb


def test_models_are_routed_by_insightface(backend: InsightFaceBackend) -> None:
    pack = backend.models()
    assert backend.info()["models"] == {
        "detection": "det_10g.onnx",
        "landmark_2d_106": "2d106det.onnx",
        "genderage": "genderage.onnx",
        "recognition": "w600k_r50.onnx",
    }
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.attribute import Attribute
    from insightface.model_zoo.landmark import Landmark
    from insightface.model_zoo.scrfd import SCRFD

    assert isinstance(pack.models["detection"], SCRFD) and pack.models["detection"].use_kps
    assert isinstance(pack.models["landmark_2d_106"], Landmark)
    assert isinstance(pack.models["genderage"], Attribute)
    assert isinstance(pack.models["recognition"], ArcFaceONNX)


def test_provider_is_chosen_once_and_reported(backend: InsightFaceBackend, capsys: pytest.CaptureFixture[str]) -> None:
    import onnxruntime

    fresh = InsightFaceBackend(backend.pack_dir)
    fresh.models()
    fresh.models()
    printed = [line for line in capsys.readouterr().out.splitlines() if "insightface models" in line]
    expected = choose_providers(onnxruntime.get_available_providers())
    assert len(printed) == 1 and expected[0] in printed[0]
    assert fresh.info()["providers"] == expected
    session = fresh.models().models["recognition"].session
    assert session.get_providers()[0] == expected[0]


def test_provider_priority() -> None:
    cpu = "CPUExecutionProvider"
    assert choose_providers(["AzureExecutionProvider", cpu]) == [cpu]
    assert choose_providers([cpu, "CUDAExecutionProvider", "CoreMLExecutionProvider"]) == ["CUDAExecutionProvider", cpu]
    assert choose_providers(["CoreMLExecutionProvider", cpu]) == ["CoreMLExecutionProvider", cpu]
    assert choose_providers(["DmlExecutionProvider", cpu]) == ["DmlExecutionProvider", cpu]
    assert choose_providers(["TensorrtExecutionProvider"]) == ["TensorrtExecutionProvider"]
    with pytest.raises(FaceChainError):
        choose_providers([])


@pytest.mark.parametrize(
    ("shape", "cell", "det_scale"),
    [
        ((640, 640), (160, 224), 1.0),  # one stride-32 cell at the 640 detection size: anchor (224, 160)
        ((960, 1280), (320, 448), 0.5),  # letterboxed to 640x480, so the square is the cell at anchor (224, 160)
    ],
)
def test_decoded_face_maps_onto_face(
    backend: InsightFaceBackend, shape: tuple[int, int], cell: tuple[int, int], det_scale: float
) -> None:
    rgb = scene(*shape, cell, round(32 / det_scale))
    faces = FaceAnalyzer(backend).detect(rgb)
    assert len(faces) == 1  # both anchors of the cell fire; NMS keeps one; the 128 px pass finds nothing
    # insightface's default multi-scale detection ran at both sizes, each on its own fixed-shape session.
    assert backend.models().models["detection"].resolution_session_input_sizes == ((128, 128), (640, 640))
    face = faces[0]
    bbox, kps = SPEC.expected_detection((224, 160), det_scale)
    np.testing.assert_allclose(face.bbox, bbox, atol=1e-3)
    np.testing.assert_allclose(face.kps, kps, atol=1e-3)
    assert face.score == pytest.approx(0.9, abs=1e-5)
    assert face.backend == "insightface"
    assert face.gender == "male" and face.age == 37.0  # dark crop -> logits [m, -m] favour index 1 = male
    assert face.landmarks is not None and face.landmarks.shape == (106, 2)
    np.testing.assert_allclose(face.landmarks, SPEC.expected_landmarks(bbox), atol=0.05)
    assert face.embedding is not None and face.embedding.shape == (512,) and face.embedding.dtype == np.float32
    assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-5)
    # The embedding is the recogniser applied to the ArcFace-aligned crop in RGB order (insightface takes BGR and
    # swaps it back): our own alignment of the RGB image reproduces it, the channel-swapped image does not.
    aligned = align_face(rgb, face.kps, 112)
    assert float(expected_embedding(aligned, SPEC) @ face.embedding) > 0.999
    assert float(expected_embedding(aligned[:, :, ::-1], SPEC) @ face.embedding) < 0.99
    assert face.to_dict()["gender"] == "male"


def test_embed_and_detect_without_embedding(backend: InsightFaceBackend) -> None:
    analyzer = FaceAnalyzer(backend)
    rgb = scene(640, 640, (160, 224), 32)
    face = analyzer.detect(rgb, embed=False)[0]
    assert face.embedding is None
    vector = analyzer.embed(rgb, face)
    assert float(vector @ analyzer.detect(rgb)[0].embedding) > 0.99999
    assert analyzer.embedding_dim == 512 and analyzer.name == "insightface"


def test_nothing_found_in_a_dark_picture(backend: InsightFaceBackend) -> None:
    assert FaceAnalyzer(backend).detect(np.zeros((480, 640, 3), np.uint8)) == []


def test_single_load_across_threads(pack: Path) -> None:
    fresh = InsightFaceBackend(pack)
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(fresh.models())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 4 and all(p is seen[0] for p in seen)


def test_pack_without_recognition_is_refused(tmp_path: Path, pack: Path) -> None:
    partial = tmp_path / "buffalo_l"
    partial.mkdir()
    (partial / "det_10g.onnx").write_bytes((pack / "det_10g.onnx").read_bytes())
    with pytest.raises(FaceChainError) as err:
        InsightFaceBackend(partial).models()
    assert err.value.code == "backend_unavailable" and "recognition" in err.value.message


def test_importing_the_backend_is_cheap() -> None:
    code = (
        "import sys, facechain_ext.faces, facechain_ext.faces.insightface_backend, facechain_ext.faces.analyzer\n"
        "heavy = [m for m in ('onnxruntime', 'insightface', 'cv2', 'dlib', 'onnx', 'torch') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
