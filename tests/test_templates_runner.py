"""Template jobs through the stand-in host: real group photo, real identities, img2img inpainting with the host's
"only masked" semantics, ControlNet guidance through its external API, fusion, scores, ranking, infotext, saving."""

from __future__ import annotations

import numpy as np
import pytest
from modules import call_queue, infotext_utils, processing, shared
from PIL import Image
from template_helpers import IDENTITIES, install_painter, make_template_context, template_path

from facechain_ext.errors import FaceChainError
from facechain_ext.imaging import load_image
from facechain_ext.templates.request import TemplateArgs
from facechain_ext.webui.template_runner import PassFields, prepare_template, run_template

OPENPOSE = "control_v11p_sd15_openpose [cab727d4]"
CANNY = "control_v11p_sd15_canny [d14c016b]"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, data_dir):
    return make_template_context(tmp_path_factory.mktemp("templates"), data_dir)


@pytest.fixture
def host(fake_host, ctx, data_dir, tmp_path):
    painter = install_painter(ctx, data_dir)
    shared.opts.outdir_img2img_samples = str(tmp_path / "outputs")
    yield painter
    processing.fake_sampler = None


def template(data_dir) -> Image.Image:
    return load_image(template_path(data_dir))


def job_args(**extra) -> TemplateArgs:
    data = {"faces": [{"index": 1, "identity": "p02"}, {"index": 0, "identity": "angelina"}], "n": 2, "seed": 40,
            "guidance": {"pose": False, "canny": False}, **extra}
    return TemplateArgs(**data)


def run(ctx, data_dir, save=False, **extra):
    prepared = prepare_template(ctx, template(data_dir), job_args(**extra))
    return run_template(ctx, prepared, PassFields(steps=12), save=save)


def test_two_people_two_passes_outside_pixels_untouched_fused_scored_ranked(ctx, data_dir, host):
    outcome = run(ctx, data_dir)
    job = outcome.run
    original = np.asarray(template(data_dir))
    union = job.union_mask()
    calls = processing.fake_sampler.calls
    assert len(calls) == 4 and [c["seed"] for c in calls] == [40, 40, 41, 41]  # candidate k: seed + k, both faces
    assert [host.painted[i]["lora"] for i in range(4)] == ["angelina_v1", "p02_v1"] * 2  # left face first
    assert all(c["img2img"] and c["denoising_strength"] == 0.65 and c["size"] == (512, 512) for c in calls)
    for call, face in zip(calls[:2], job.passes, strict=True):  # the host cropped around the right face
        x, y, w, h = call["paste_to"]
        x1, y1, x2, y2 = face.face.bbox
        assert x <= x1 and y <= y1 and x + w >= x2 and y + h >= y2 and w < 500
    assert len(job.candidates) == 2
    gains = []
    for candidate in job.candidates:
        pixels = np.asarray(candidate.image)
        assert pixels.shape == original.shape
        np.testing.assert_array_equal(pixels[union == 0], original[union == 0])  # exact, whole candidate
        for face in job.passes:
            inside = job.masks[face.index].full() == 255
            assert (np.abs(pixels[inside].astype(int) - original[inside]).sum(axis=1) > 30).mean() > 0.5
        for result in candidate.faces:
            assert result.fused and result.score is not None and result.score_before_fusion is not None
            gains.append(result.score - result.score_before_fusion)
    assert min(gains) > 0 and np.mean(gains) > 0.01  # fusion pulls every replaced face toward its identity
    analyzer = ctx.analyzer()
    for face in job.passes:  # the template's own face was someone else; the replaced one is the identity
        ident = job.identities[face.index]
        before = analyzer.similarity(analyzer.embed(original, face.face.face), ident.runtime.embedding())
        after = [next(f.score for f in c.faces if f.index == face.index) for c in job.candidates]
        assert before < analyzer.threshold < min(after)
    means = [outcome.run.candidates[i].mean_score for i in outcome.order]
    assert means == sorted(means, reverse=True) and len(set(means)) == 2
    assert [(h["job_no"], h["job_count"]) for h in host.painted] == [(0, 4), (1, 4), (2, 4), (3, 4)]  # host progress
    assert host.painted[3]["job"] == "FaceChain template 2/2: face 2" and "facechain_template" in shared.state.history
    assert call_queue.queue_lock.acquire(blocking=False)
    call_queue.queue_lock.release()


def test_infotext_names_faces_identities_scores_and_the_host_fields(ctx, data_dir, host):
    outcome = run(ctx, data_dir, n=1)
    candidate = outcome.ranked[0]
    params = infotext_utils.parse_generation_parameters(candidate.infotext)
    assert params["Seed"] == "40" and params["Denoising strength"] == "0.65"
    assert params["Inpaint area"] == "Only masked" and int(params["Masked area padding"]) == outcome.run.passes[0].padding
    assert params["FaceChain template faces"] == "1=angelina lora angelina_v1 0.9; 2=p02 lora p02_v1 0.9"
    scores = [f.score for f in candidate.faces]
    assert params["FaceChain face scores"] == " ".join(f"{s:.3f}".rstrip("0") for s in scores)
    assert abs(float(params["FaceChain similarity"]) - np.mean(scores)) < 1e-3
    assert params["FaceChain guidance"] == "none" and params["FaceChain template"] == "2 of 2 faces"
    assert "<lora:angelina_v1:0.9>" in params["Prompt"] and "high detail face" in params["Prompt"]
    assert candidate.image.info["parameters"] == candidate.infotext


def test_overlay_off_returns_the_crop_and_the_composition_still_keeps_outside_pixels(ctx, data_dir, host):
    shared.opts.overlay_inpaint = False
    outcome = run(ctx, data_dir, n=1)
    original, union = np.asarray(template(data_dir)), outcome.run.union_mask()
    pixels = np.asarray(outcome.ranked[0].image)
    np.testing.assert_array_equal(pixels[union == 0], original[union == 0])
    assert (pixels[union == 255] != original[union == 255]).any(axis=1).mean() > 0.5


def test_controlnet_guidance_follows_facechain_weights_and_leaves_the_host_runner_alone(ctx, data_dir, host, fake_host):
    external_code = fake_host.install_controlnet(models=[OPENPOSE, CANNY])
    from modules import scripts

    controlnet = __import__("extensions.sd-webui-controlnet.scripts.controlnet", fromlist=["RECORDED"])
    outcome = run(ctx, data_dir, n=1, guidance={"pose": True, "canny": True})
    assert outcome.run.guidance == "openpose+canny" and not outcome.run.comments
    assert len(controlnet.RECORDED) == 2  # one per face pass
    original = np.asarray(template(data_dir))
    for record, call in zip(controlnet.RECORDED, processing.fake_sampler.calls, strict=True):
        pose, canny = record["units"]
        assert (pose.module, pose.model, pose.weight) == ("openpose_hand", OPENPOSE, 1.0)
        assert (canny.module, canny.model, canny.weight) == ("none", CANNY, 0.2)
        assert np.asarray(pose.image).shape == original.shape  # the whole template: ControlNet crops it itself
        edges = np.asarray(canny.image)
        assert not edges[outcome.run.union_mask() > 0].any() and edges.any()
        x, y, w, h = call["paste_to"]
        expected = np.asarray(Image.fromarray(original[y:y + h, x:x + w]).resize((512, 512), Image.LANCZOS))
        assert np.abs(record["inputs"][0].astype(int) - expected).mean() < 1.0  # same crop as the host's inpainting
    host_cn = external_code.find_cn_script(scripts.scripts_img2img)
    assert (host_cn.args_from, host_cn.args_to) == (2, 5)  # the host's own runner was not touched
    params = infotext_utils.parse_generation_parameters(outcome.ranked[0].infotext)
    assert params["FaceChain guidance"] == "openpose+canny"


def test_without_controlnet_the_job_says_so_once(ctx, data_dir, host, fake_host):
    outcome = run(ctx, data_dir, n=2, guidance={"pose": True, "canny": True})
    notes = [c for c in outcome.run.comments if "guidance" in c]
    assert len(notes) == 1 and "ControlNet is not installed" in notes[0] and "control_v11p_sd15_openpose" in notes[0]
    assert len(outcome.run.candidates) == 2 and outcome.run.guidance == "none"
    fake_host.install_controlnet(models=[])
    outcome = run(ctx, data_dir, n=1, guidance={"pose": True, "canny": False})
    notes = [c for c in outcome.run.comments if "ControlNet lacks" in c]
    assert len(notes) == 1 and "an openpose model (its models: none)" in notes[0]
    assert outcome.run.guidance == "none" and len(outcome.run.candidates) == 1


@pytest.mark.parametrize("at_call", [3, 4])  # the second candidate's first pass, or its last one
def test_interrupt_keeps_only_finished_candidates(ctx, data_dir, host, at_call):
    painter = host

    def interrupting(p, init, mask, seed, networks):
        out = painter(p, init, mask, seed, networks)
        if len(painter.painted) == at_call:
            shared.state.interrupt()
        return out

    processing.fake_sampler.inpaint = interrupting
    outcome = run(ctx, data_dir, n=3)
    assert outcome.run.interrupted and len(outcome.run.candidates) == 1 and outcome.order == [0]
    assert len(painter.painted) == at_call and any("interrupted" in c for c in outcome.run.comments)
    assert call_queue.queue_lock.acquire(blocking=False)
    call_queue.queue_lock.release()


def test_skip_drops_the_current_candidate_and_goes_on(ctx, data_dir, host):
    painter = host

    def skipping(p, init, mask, seed, networks):
        out = painter(p, init, mask, seed, networks)
        if len(painter.painted) == 1:  # the first candidate's first pass
            shared.state.skip()
        return out

    processing.fake_sampler.inpaint = skipping
    outcome = run(ctx, data_dir, n=3)
    assert not outcome.run.interrupted and [c.seed for c in outcome.run.candidates] == [41, 42]
    assert len(painter.painted) == 5 and any("skipped" in c for c in outcome.run.comments)


def test_saved_like_host_outputs_with_infotext(ctx, data_dir, host, tmp_path):
    outcome = run(ctx, data_dir, n=2, save=True)
    assert len(outcome.saved) == 2
    for path, candidate in zip(outcome.saved, outcome.ranked, strict=True):
        assert path.startswith(str(tmp_path / "outputs")) and path.endswith(f"-{candidate.seed}.png")
        with Image.open(path) as image:
            assert image.info["parameters"] == candidate.infotext
    assert not list((tmp_path / "outputs").glob("*.tmp"))


def test_unknown_identity_is_404_before_anything_runs(ctx, data_dir, host):
    with pytest.raises(FaceChainError) as err:
        prepare_template(ctx, template(data_dir), job_args(faces=[{"index": 0, "identity": "nobody"}]))
    assert err.value.code == "identity_not_found" and err.value.http_status == 404
    assert set(IDENTITIES) == {"angelina", "p02"}


def test_face_restoration_after_fusion_stays_inside_the_masks(ctx, data_dir, host):
    from test_fusion_restore_host import InvertingRestorer

    restorer = InvertingRestorer()
    shared.face_restorers = [restorer]
    outcome = run(ctx, data_dir, n=1, fusion={"restore_face": True})
    candidate = outcome.ranked[0]
    assert restorer.calls == 2 and all(f.fused and f.restored for f in candidate.faces)
    original, union = np.asarray(template(data_dir)), outcome.run.union_mask()
    np.testing.assert_array_equal(np.asarray(candidate.image)[union == 0], original[union == 0])
    assert "FaceChain fusion: 0.7; face restoration on (restored)" in candidate.infotext
    shared.face_restorers = []
    outcome = run(ctx, data_dir, n=1, fusion={"restore_face": True})  # no restorer in the host: said once, still fused
    assert any("face restoration after fusion is unavailable" in c for c in outcome.run.comments)
    assert all(f.fused and not f.restored for f in outcome.ranked[0].faces)
