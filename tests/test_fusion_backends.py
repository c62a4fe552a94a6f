"""Fusion backend selection and the learned (inswapper-class) backend, run through insightface's real INSwapper on
ONNX fakes: a buffalo_l-shaped pack (tests/onnx_fakes.py) and a 2-input 128×128 "swapper" that inverts the face."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from insightface.utils.face_align import norm_crop2
from onnx import TensorProto, helper, numpy_helper
from onnx_fakes import write_buffalo_pack

from facechain_ext.config import Settings
from facechain_ext.errors import FaceChainError
from facechain_ext.faces import create_analyzer
from facechain_ext.fusion import create_fusion_backend, fuse_face
from facechain_ext.fusion.blend import BlendFusion
from facechain_ext.fusion.inswapper import InswapperFusion, find_inswapper_model
from facechain_ext.fusion.mask import build_face_mask


def write_fake_inswapper(path: Path) -> Path:
    """inswapper's signature: target (1,3,128,128) in [0,1] + source latent (1,512) -> (1,3,128,128).

    Output = 1 - target (the face inverted) + 0 × latent, so the expected result is known exactly; the latent
    projection matrix ("emap") is the graph's last initializer, where insightface's INSwapper reads it.
    """
    nodes = [
        helper.make_node("MatMul", ["source", "emap"], ["latent"]),
        helper.make_node("ReduceMean", ["latent"], ["latent_mean"], keepdims=1),
        helper.make_node("Mul", ["latent_mean", "zero"], ["nothing"]),
        helper.make_node("Sub", ["one", "target"], ["inverted"]),
        helper.make_node("Add", ["inverted", "nothing"], ["output"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.eye(512, dtype=np.float32), "emap"),
    ]
    graph = helper.make_graph(
        nodes,
        "fake_inswapper",
        [
            helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 128, 128]),
            helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 512]),
        ],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 128, 128])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def scene(size: int = 512, cell: int = 224) -> np.ndarray:
    """Dark picture with one white 32×32 square: the fake detector's single 'face'."""
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[:, :, 0] = 90
    rgb[:, : size // 2, 1] = 40
    rgb[cell : cell + 32, cell : cell + 32] = 255
    return rgb


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("facechain")
    write_buffalo_pack(root / "insightface" / "models" / "buffalo_l")
    return root


@pytest.fixture(scope="module")
def insightface_analyzer(models_dir: Path):
    analyzer = create_analyzer(Settings(models_dir=models_dir), "insightface")
    assert analyzer.embedding_dim == 512
    return analyzer


@pytest.fixture(scope="module")
def dlib_analyzer(tmp_path_factory: pytest.TempPathFactory):
    return create_analyzer(Settings(models_dir=tmp_path_factory.mktemp("m"), face_backend="dlib"), "dlib")  # lazy load


def test_auto_and_blend_give_the_weight_free_backend_without_a_model(models_dir, insightface_analyzer):
    settings = Settings(models_dir=models_dir)
    assert find_inswapper_model(settings) is None
    assert isinstance(create_fusion_backend(settings, insightface_analyzer, "auto"), BlendFusion)
    assert isinstance(create_fusion_backend(settings, insightface_analyzer, "blend"), BlendFusion)


def test_asking_for_inswapper_without_a_model_names_the_folder(models_dir, insightface_analyzer):
    with pytest.raises(FaceChainError) as info:
        create_fusion_backend(Settings(models_dir=models_dir), insightface_analyzer, "inswapper")
    assert info.value.code == "model_missing" and str(models_dir / "fusion") in info.value.message


def test_unknown_backend_is_refused(models_dir, insightface_analyzer):
    with pytest.raises(FaceChainError) as info:
        create_fusion_backend(Settings(models_dir=models_dir), insightface_analyzer, "gan")
    assert info.value.code == "invalid_request" and "gan" in info.value.message


def test_auto_picks_inswapper_only_when_allowed_present_and_arcface(tmp_path, insightface_analyzer, dlib_analyzer):
    settings = Settings(models_dir=tmp_path)
    write_fake_inswapper(tmp_path / "fusion" / "inswapper_128.onnx")
    # A model file alone is not consent: "auto" stays weight-free until learned fusion is allowed.
    assert isinstance(create_fusion_backend(settings, insightface_analyzer, "auto"), BlendFusion)
    assert isinstance(create_fusion_backend(settings, insightface_analyzer, "auto", allow_learned=True), InswapperFusion)
    # Naming the backend is the user's explicit choice.
    assert isinstance(create_fusion_backend(settings, insightface_analyzer, "inswapper"), InswapperFusion)
    # dlib's 128-d embeddings cannot condition inswapper: auto falls back, an explicit request explains why.
    assert isinstance(create_fusion_backend(settings, dlib_analyzer, "auto", allow_learned=True), BlendFusion)
    with pytest.raises(FaceChainError) as info:
        create_fusion_backend(settings, dlib_analyzer, "inswapper")
    assert info.value.code == "backend_unavailable" and "insightface" in info.value.message


def test_the_shared_insightface_folder_is_searched_too(tmp_path, insightface_analyzer):
    shared = tmp_path / "webui_models" / "insightface"
    write_fake_inswapper(shared / "inswapper_128.onnx")
    settings = Settings(models_dir=tmp_path / "facechain", insightface_root=shared)
    assert find_inswapper_model(settings) == shared / "inswapper_128.onnx"


def test_a_model_with_the_wrong_signature_is_refused(tmp_path, models_dir, insightface_analyzer):
    # The fake recogniser (1 input, 112×112) renamed to look like a swapper.
    (tmp_path / "fusion").mkdir()
    wrong = tmp_path / "fusion" / "inswapper_128.onnx"
    wrong.write_bytes((models_dir / "insightface" / "models" / "buffalo_l" / "w600k_r50.onnx").read_bytes())
    with pytest.raises(FaceChainError) as info:
        create_fusion_backend(Settings(models_dir=tmp_path), insightface_analyzer, "inswapper")
    assert info.value.code == "unsupported_model" and "inswapper_128.onnx" in info.value.message


def test_inswapper_output_is_pasted_inside_the_face_mask_only(tmp_path, insightface_analyzer):
    write_fake_inswapper(tmp_path / "fusion" / "inswapper_128.onnx")
    backend = create_fusion_backend(Settings(models_dir=tmp_path), insightface_analyzer, "inswapper")
    target, reference = scene(), scene(cell=192)
    result = fuse_face(target, reference, insightface_analyzer, strength=1.0, backend=backend)
    assert result.applied and result.backend == "inswapper" and result.faces_fused == 1
    fused = np.asarray(result.image).astype(int)
    assert np.array_equal(fused[~result.mask], target[~result.mask])
    # Deep inside the mask the fake swapper's output (the inverted face) replaces the target, up to resampling.
    face = result.target_faces[0]
    mask = build_face_mask(target.shape, face)
    x1, y1, x2, y2 = mask.box
    # The swapper only sees insightface's 128×128 aligned crop: the mask is limited to what that crop covers.
    _, to_crop = norm_crop2(np.ascontiguousarray(target[:, :, ::-1]), face.kps, 128)
    from_crop = cv2.invertAffineTransform(to_crop)
    from_crop[:, 2] -= (x1, y1)
    covered = cv2.warpAffine(np.full((128, 128), 255, np.uint8), from_crop, (x2 - x1, y2 - y1), flags=cv2.INTER_NEAREST)
    core = np.zeros(target.shape[:2], bool)
    core[y1:y2, x1:x2] = mask.restricted(covered).alpha >= 0.999
    # Stay away from the white square's edges, where bilinear resampling mixes values.
    flat = np.ones(target.shape[:2], bool)
    flat[214:266, 214:266] = False
    flat[:, 246:266] = False
    region = core & flat
    assert region.sum() > 1000
    assert np.abs(fused[region] - (255 - target[region].astype(int))).max() <= 3
    half = fuse_face(target, reference, insightface_analyzer, strength=0.5, backend=backend)
    expected = target[region] + 0.5 * ((255 - target[region].astype(int)) - target[region])
    assert np.abs(np.asarray(half.image).astype(int)[region] - expected).max() <= 3
