"""The host's face restoration after fusion, through the fake host: the Script, the /face/fuse route, the lookup.

The stand-in `modules.face_restoration` (tests/fakehost) follows the host: `restore_faces` uses the restorer named in
Settings → Face restoration and returns the image unchanged when there is none. Our glue must notice that case and say
so in the generation's comments (never crash, never pretend), restore only the fused face, and write it in the infotext.
"""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from generation_helpers import IDENTITY, SEED, install_sampler, make_context, sampler_photos
from modules import face_restoration, processing, scripts, shared
from modules.infotext_utils import parse_generation_parameters

from facechain_ext.errors import FaceChainError
from facechain_ext.fusion.mask import build_face_mask
from facechain_ext.infotext import args_from_infotext
from facechain_ext.webui.api_common import parse_api_auth
from facechain_ext.webui.api_generate import add_routes
from facechain_ext.webui.face_restore import host_face_restorer
from facechain_ext.webui.script import FaceChainScript

UNAVAILABLE = "face restoration after fusion is unavailable"


class InvertingRestorer(face_restoration.FaceRestoration):
    """A host restorer whose result is known exactly (the inverted picture); counts its calls."""

    def __init__(self, name: str = "CodeFormer", fail: bool = False) -> None:
        self.restorer_name, self.fail, self.calls = name, fail, 0

    def name(self) -> str:
        return self.restorer_name

    def restore(self, np_image: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.fail:
            raise RuntimeError("CUDA out of memory")
        return (255 - np_image).astype(np.uint8)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, data_dir):
    return make_context(tmp_path_factory.mktemp("facechain"), data_dir)


@pytest.fixture(scope="module")
def plain_cache() -> dict:
    return {}


def plain_images(ctx, cache: dict) -> dict[int, tuple[np.ndarray, dict]]:
    """The same generation with restoration off (run once per module, inside whichever test asks first)."""
    if not cache:
        cache.update(by_seed(run_generation(ctx, {"restore_face": False})))
    return cache


@pytest.fixture
def host(fake_host, data_dir):
    sampler = install_sampler(data_dir)
    yield sampler
    processing.fake_sampler = None


def run_generation(ctx, fusion: dict) -> processing.Processed:
    """A txt2img generation with ONE dict argument (alwayson_scripts form): 4 images, 3 with a face, no ranking."""
    script = FaceChainScript(ctx)
    runner = scripts.ScriptRunner()
    script.args_from, script.args_to, script.filename = 1, 2, "facechain.py"
    runner.alwayson_scripts = runner.scripts = [script]
    p = processing.StableDiffusionProcessingTxt2Img(prompt="portrait photo", seed=SEED, batch_size=2, n_iter=2, steps=20,
                                                     width=512, height=512, do_not_save_samples=True, do_not_save_grid=True)
    p.scripts = runner
    p.script_args = [0, {"identity": IDENTITY, "fusion": fusion, "ranking": {"enabled": False}}]
    return processing.process_images(p)


def by_seed(processed) -> dict[int, tuple[np.ndarray, dict]]:
    return {seed: (np.asarray(image), parse_generation_parameters(text))
            for seed, image, text in zip(processed.all_seeds, processed.images, processed.infotexts, strict=True)}


def test_restoration_changes_only_the_fused_faces_and_is_written_in_the_infotext(ctx, host, plain_cache):
    plain = plain_images(ctx, plain_cache)
    restorer = InvertingRestorer()
    shared.face_restorers.append(restorer)
    processed = run_generation(ctx, {"restore_face": True, "restore_visibility": 1.0})
    restored = by_seed(processed)
    assert restorer.calls == 3  # one call per fused face; the image without a face is never sent
    assert UNAVAILABLE not in processed.comments
    for seed, (image, params) in restored.items():
        before, _ = plain[seed]
        changed = np.any(image != before, axis=2)
        if seed == SEED + 1:  # no face: untouched, and the infotext says why
            assert not changed.any() and params["FaceChain fusion"] == "0.7; face restoration on (not applied - no face found)"
            continue
        assert params["FaceChain fusion"] == "0.7; face restoration on (restored)"
        assert args_from_infotext(params).fusion.restore_face is True  # pasting the parameters restores the setting
        # Only the fused face changed: every changed pixel lies in its face outline (a few px of slack for the
        # keypoints of a re-detection), and deep inside the restorer's (inverted) pixels show unmixed.
        face = ctx.analyzer().detect(before, embed=False)[0]
        mask = build_face_mask(before.shape, face)
        x1, y1, x2, y2 = mask.box
        outline = np.zeros(before.shape[:2], np.uint8)
        outline[y1:y2, x1:x2] = cv2.dilate(mask.binary, np.ones((9, 9), np.uint8))
        assert changed.any() and not (changed & (outline == 0)).any()
        inverted = np.abs(image.astype(int) - (255 - before.astype(int))).max(axis=2) == 0
        assert (changed & inverted).sum() > 0.2 * changed.sum()


def test_without_a_host_restorer_the_generation_says_so_and_keeps_the_fused_images(ctx, host, plain_cache):
    plain = plain_images(ctx, plain_cache)
    shared.opts.face_restoration_model = "GFPGAN"  # the host's own silent no-op case: nothing by that name
    shared.face_restorers.append(InvertingRestorer("CodeFormer"))
    processed = run_generation(ctx, {"restore_face": True})
    assert len(processed.images) == 4
    assert UNAVAILABLE in processed.comments and "GFPGAN" in processed.comments
    assert "Settings → Face restoration" in processed.comments
    for seed, (image, params) in by_seed(processed).items():
        assert np.array_equal(image, plain[seed][0])
        assert "restored" not in params["FaceChain fusion"]


def test_a_failing_host_restorer_is_reported_not_raised(ctx, host, plain_cache):
    plain = plain_images(ctx, plain_cache)
    shared.face_restorers.append(InvertingRestorer(fail=True))
    processed = run_generation(ctx, {"restore_face": True})
    assert "face restorer failed" in processed.comments and "CUDA out of memory" in processed.comments
    for seed, (image, params) in by_seed(processed).items():
        assert np.array_equal(image, plain[seed][0]) and "restored" not in params["FaceChain fusion"]


def test_by_default_the_blend_is_not_restored(ctx, host):
    restorer = InvertingRestorer()
    shared.face_restorers.append(restorer)
    processed = run_generation(ctx, {})
    assert restorer.calls == 0 and UNAVAILABLE not in processed.comments
    assert {params["FaceChain fusion"] for _, params in by_seed(processed).values()} == {"0.7", "0.7 (not applied - no face found)"}


def test_host_lookup_follows_the_host_settings(fake_host):
    with pytest.raises(FaceChainError) as info:
        host_face_restorer()
    assert info.value.code == "backend_unavailable" and "none installed" in info.value.message
    gfpgan, codeformer = InvertingRestorer("GFPGAN"), InvertingRestorer("CodeFormer")
    shared.face_restorers.extend([gfpgan, codeformer])
    restore = host_face_restorer()  # opts.face_restoration_model is "CodeFormer" by default, as in the host
    image = np.full((8, 8, 3), 10, np.uint8)
    assert np.array_equal(restore(image), 255 - image) and (gfpgan.calls, codeformer.calls) == (0, 1)
    shared.opts.face_restoration_model = None  # the host then takes the first restorer
    host_face_restorer()(image)
    assert gfpgan.calls == 1


def test_fuse_route_restores_on_request_and_explains_when_it_cannot(fake_host, ctx, data_dir):
    app = FastAPI()
    add_routes(app, ctx, parse_api_auth(None))
    client = TestClient(app)
    target = base64.b64encode(sampler_photos(data_dir)[SEED].read_bytes()).decode()
    body = {"target": target, "reference": {"identity": IDENTITY}, "restore_face": True}
    missing = client.post("/facechain/v1/face/fuse", json=body)
    assert missing.status_code == 200, missing.text
    assert missing.json()["applied"] and not missing.json()["restored"]
    assert "face restoration is unavailable" in missing.json()["restore_note"]
    restorer = InvertingRestorer()
    shared.face_restorers.append(restorer)
    done = client.post("/facechain/v1/face/fuse", json=body).json()
    assert done["restored"] and done["restore_note"] is None and restorer.calls == 1
    assert done["image"] != missing.json()["image"]
    default = client.post("/facechain/v1/face/fuse", json={**body, "restore_face": None}).json()
    assert not default["restored"] and default["restore_note"] is None and restorer.calls == 1
    bad = client.post("/facechain/v1/face/fuse", json={**body, "restore_visibility": 2})
    assert bad.status_code == 422
