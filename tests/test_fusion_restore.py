"""Face restoration after fusion, host-free: `fuse_face(..., restore=..., restore_visibility=...)` on real photos.

The restorers here are plain functions with the host's `restore_faces(np_image) -> np_image` signature whose output
is known exactly (the inverted picture), so the tests can predict every pixel: the restored face is mixed in only
under the fusion mask, by round(fused + alpha × visibility × (restored − fused)), and a failing restorer leaves the
fused image exactly as it was.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from photo_helpers import downscaled
from PIL import Image

from facechain_ext.config import Settings
from facechain_ext.context import FaceChainContext
from facechain_ext.errors import FaceChainError
from facechain_ext.faces import create_analyzer
from facechain_ext.faces.analyzer import FaceAnalyzer
from facechain_ext.fusion import fuse_face, reference_face_of
from facechain_ext.fusion.blend import BlendFusion
from facechain_ext.fusion.restore import CONTEXT, context_box, restore_wanted
from facechain_ext.generation_state import GenerationState
from facechain_ext.infotext import fusion_text
from facechain_ext.portraits import GenerationRuntime, process_image
from facechain_ext.prompts import plan_prompts
from facechain_ext.schemas import parse_args

STRENGTH = 0.7


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory: pytest.TempPathFactory) -> FaceAnalyzer:
    return create_analyzer(Settings(models_dir=tmp_path_factory.mktemp("models"), face_backend="dlib"), "dlib")


@pytest.fixture(scope="module")
def scene(analyzer: FaceAnalyzer, faces_table: list[dict]) -> dict:
    """A target (another person's photo at 512 px), the reference, and the plain fusion result to compare with."""
    target_row = next(r for r in faces_table if r["identity"] == "biden")
    reference_row = next(r for r in faces_table if Path(r["file"]).name == "face_recognition_obama.jpg")
    target = np.asarray(downscaled(target_row["file"]))
    reference = downscaled(reference_row["file"], 768)
    reference_face = reference_face_of(reference, analyzer)
    face = analyzer.detect(target, embed=False)[0]
    plain = fuse_face(target, reference, analyzer, strength=STRENGTH, target_face=face, reference_face=reference_face)
    assert plain.applied and not plain.restored and plain.restore_error is None
    # The mask fusion (and so restoration) used: the face outline limited to where the warped reference has pixels.
    mask = BlendFusion().fuse_one(target, face, np.asarray(reference), reference_face)[1]
    return {"target": target, "reference": reference, "reference_face": reference_face, "face": face, "plain": plain,
            "mask": mask}


class Inverter:
    """restore_faces stand-in: returns 255 - image and remembers what it was given."""

    def __init__(self) -> None:
        self.inputs: list[np.ndarray] = []

    def __call__(self, np_image: np.ndarray) -> np.ndarray:
        self.inputs.append(np_image.copy())
        return (255 - np_image).astype(np.uint8)


def fuse(scene: dict, analyzer: FaceAnalyzer, restore, visibility: float = 1.0):
    return fuse_face(scene["target"], scene["reference"], analyzer, strength=STRENGTH, target_face=scene["face"],
                     reference_face=scene["reference_face"], restore=restore, restore_visibility=visibility)


def expected(fused: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """round(fused + weight × (restored − fused)) with restored = 255 − fused, in composite_into's float32 arithmetic."""
    original = fused.astype(np.float32)
    mixed = original + weight[..., None] * ((255 - fused).astype(np.float32) - original)
    return np.where(weight[..., None] > 0, np.clip(np.rint(mixed), 0, 255), original).astype(np.uint8)


@pytest.mark.parametrize("visibility", [1.0, 0.35])
def test_restoration_touches_the_fused_face_only_and_blends_exactly(scene, analyzer, visibility) -> None:
    inverter = Inverter()
    result = fuse(scene, analyzer, inverter, visibility)
    assert result.applied and result.restored and result.restore_error is None
    fused, restored = np.asarray(scene["plain"].image), np.asarray(result.image)
    mask = scene["mask"]
    x1, y1, x2, y2 = mask.box
    # Outside the fusion mask: bit-identical to the fused image (and so to the target outside the fusion's own mask).
    inside = np.zeros(fused.shape[:2], bool)
    inside[y1:y2, x1:x2] = mask.alpha > 0
    assert np.array_equal(restored[~inside], fused[~inside])
    assert np.array_equal(restored[~result.mask], scene["target"][~result.mask])
    # Inside: exactly the visibility blend weighted by the feathered alpha (visibility 1 -> the restorer's pixels).
    weight = mask.alpha * np.float32(visibility)
    assert np.array_equal(restored[y1:y2, x1:x2], expected(fused[y1:y2, x1:x2], weight))
    core = mask.alpha >= 0.999  # the feathered alpha's plateau (a Gaussian-blurred step peaks just under 1)
    assert core.sum() > 800
    if visibility == 1.0:
        assert np.array_equal(restored[y1:y2, x1:x2][core], 255 - fused[y1:y2, x1:x2][core])
    # Close to the host's Extras blend (PIL Image.blend truncates where we round): within one level.
    crop = Image.fromarray(np.ascontiguousarray(fused[y1:y2, x1:x2]))
    host = np.asarray(Image.blend(crop, Image.fromarray(255 - np.asarray(crop)), visibility)).astype(int)
    assert np.abs(restored[y1:y2, x1:x2][core].astype(int) - host[core]).max() <= 1


def test_the_restorer_gets_the_fused_face_with_context(scene, analyzer) -> None:
    inverter = Inverter()
    fuse(scene, analyzer, inverter)
    assert len(inverter.inputs) == 1
    fused = np.asarray(scene["plain"].image)
    mask = scene["mask"]
    cx1, cy1, cx2, cy2 = context_box(mask, fused.shape)
    given = inverter.inputs[0]
    assert given.dtype == np.uint8 and given.shape == (cy2 - cy1, cx2 - cx1, 3)
    assert given.shape[0] < fused.shape[0] or given.shape[1] < fused.shape[1]  # a crop, not the whole picture
    x1, y1, x2, y2 = mask.box
    assert cx1 <= x1 and cy1 <= y1 and cx2 >= x2 and cy2 >= y2
    assert (x1 - cx1 == round(CONTEXT * mask.face_size)) or cx1 == 0
    assert np.array_equal(given, fused[cy1:cy2, cx1:cx2])  # the FUSED face is restored, not the original one


def test_visibility_zero_never_calls_the_restorer(scene, analyzer) -> None:
    inverter = Inverter()
    result = fuse(scene, analyzer, inverter, 0.0)
    assert inverter.inputs == [] and not result.restored
    assert np.array_equal(np.asarray(result.image), np.asarray(scene["plain"].image))


def broken(np_image: np.ndarray) -> np.ndarray:
    raise RuntimeError("CUDA out of memory")


def wrong_size(np_image: np.ndarray) -> np.ndarray:
    return np_image[:10]


def as_float(np_image: np.ndarray) -> np.ndarray:
    return np_image / 255.0


@pytest.mark.parametrize("restorer, words", [(broken, "CUDA out of memory"), (wrong_size, "returned ndarray (10,"),
                                             (as_float, "float64")])
def test_a_failing_restorer_keeps_the_fused_image_and_says_why(scene, analyzer, restorer, words) -> None:
    result = fuse(scene, analyzer, restorer)
    assert result.applied and not result.restored and words in result.restore_error
    assert np.array_equal(np.asarray(result.image), np.asarray(scene["plain"].image))
    assert np.array_equal(result.mask, scene["plain"].mask)
    assert result.to_dict()["restore_error"] == result.restore_error


def test_restoration_default_follows_the_backend() -> None:
    assert restore_wanted(None, "inswapper") and not restore_wanted(None, "blend")
    assert restore_wanted(True, "blend") and not restore_wanted(False, "inswapper")


@pytest.mark.parametrize("visibility", [-0.1, 1.5])
def test_visibility_outside_0_1_is_refused(scene, analyzer, visibility) -> None:
    with pytest.raises(FaceChainError) as info:
        fuse(scene, analyzer, Inverter(), visibility)
    assert info.value.code == "invalid_request" and "restore visibility" in info.value.message


def test_fusing_the_same_image_again_gives_the_same_pixels(scene, analyzer) -> None:
    # OpenCV's precise distance transform (the mask's erosion) is not repeatable to the last bit; the mask rounds it.
    first = np.asarray(scene["plain"].image)
    for _ in range(6):
        assert np.array_equal(np.asarray(fuse(scene, analyzer, None).image), first)


class GivenEmbeddingRuntime(GenerationRuntime):
    """The Script's GenerationRuntime with the identity store replaced by the reference photo's own embedding."""

    def embedding(self) -> np.ndarray:
        reference, face = self.reference()
        return self.analyzer.embed(reference, face)


def fake_generation(tmp_path: Path, fusion: dict) -> tuple[FaceChainContext, GenerationState, Image.Image]:
    """An insightface-shaped context (ONNX fakes) with an inswapper-class model, a generation and a target image."""
    from onnx_fakes import write_buffalo_pack
    from test_fusion_backends import scene as fake_scene
    from test_fusion_backends import write_fake_inswapper

    write_buffalo_pack(tmp_path / "insightface" / "models" / "buffalo_l")
    write_fake_inswapper(tmp_path / "fusion" / "inswapper_128.onnx")
    ctx = FaceChainContext(Settings(models_dir=tmp_path, face_backend="insightface"))
    Image.fromarray(fake_scene(cell=192)).save(tmp_path / "best.png")
    state = GenerationState(args=parse_args({"identity": "x", "fusion": fusion}),
                       plan=plan_prompts(activation="x", lora_name=None, lora_weight=0.0))
    state.reference_photo = str(tmp_path / "best.png")
    return ctx, state, Image.fromarray(fake_scene())


@pytest.mark.parametrize(
    "backend, restore_face, restored",
    [("inswapper", None, True), ("blend", None, False), ("blend", True, True), ("inswapper", False, False)],
)
def test_a_generation_restores_after_learned_fusion_by_default(tmp_path, backend, restore_face, restored) -> None:
    ctx, state, target = fake_generation(tmp_path, {"backend": backend, "restore_face": restore_face})
    inverter = Inverter()
    record = state.add_record(1, 1)
    image = process_image(GivenEmbeddingRuntime(ctx, state, find_restorer=lambda: inverter), target, record)
    assert record.fused and record.restored is restored and len(inverter.inputs) == int(restored)
    assert fusion_text(state.args.fusion, record).endswith(" (restored)") is restored
    assert image.size == (512, 512) and state.comments == []


def test_without_a_restorer_a_generation_comments_once_and_still_fuses(tmp_path) -> None:
    ctx, state, target = fake_generation(tmp_path, {"backend": "inswapper"})
    runtime = GivenEmbeddingRuntime(ctx, state)  # outside the webui: no host restorer to look up
    records = [state.add_record(seed, seed) for seed in (1, 2)]
    for record in records:
        process_image(runtime, target, record)
    assert all(r.fused and not r.restored for r in records)
    assert state.comments == ["FaceChain: face restoration after fusion is unavailable (no face restorer is available "
                            "outside the webui); images are fused without it."]
