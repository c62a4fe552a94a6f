"""The FaceChain Script end to end in the fake host: real faces "generated" per seed, hooks in A1111 1.10's order.

Seeds (see generation_helpers): SEED another person, SEED+1 no face, SEED+2 the identity itself, SEED+3 another person.
"""

from __future__ import annotations

import numpy as np
import pytest
from generation_helpers import (
    IDENTITY,
    LORA_NAME,
    LORA_WEIGHT,
    SEED,
    expected_pixels,
    install_sampler,
    make_context,
    sampler_photos,
)
from modules import processing, scripts
from modules.infotext_utils import parse_generation_parameters

from facechain_ext.generation_state import get_state
from facechain_ext.webui.script import FaceChainScript

UI_DEFAULTS = [False, None, 0.9, "None", True, 0.7, True, 0, 0.0, False]  # the controls' values, ARG_NAMES order


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, data_dir):
    return make_context(tmp_path_factory.mktemp("facechain"), data_dir)


@pytest.fixture
def host(fake_host, data_dir):
    sampler = install_sampler(data_dir)
    yield sampler
    processing.fake_sampler = None


def make_p(script, script_args, **fields):
    """A txt2img job as the host's UI builds it: index 0 is the selectable-script slot, our controls follow."""
    runner = scripts.ScriptRunner()
    script.args_from, script.args_to, script.filename = 1, 1 + len(UI_DEFAULTS), "facechain.py"
    runner.alwayson_scripts = runner.scripts = [script]
    values = dict(prompt="portrait photo", negative_prompt="lowres", seed=SEED, batch_size=2, n_iter=2, steps=20,
                  sampler_name="Euler a", width=512, height=512, do_not_save_samples=True, do_not_save_grid=True)
    values.update(fields)
    p = processing.StableDiffusionProcessingTxt2Img(**values)
    p.scripts = runner
    p.script_args = [0, *script_args]
    return p


def parsed(processed):
    return [parse_generation_parameters(text) for text in processed.infotexts]


def test_full_job_prompts_fusion_ranking_and_aligned_infotexts(ctx, host, data_dir):
    script = FaceChainScript(ctx)
    # the accordion sends the style's display name; the infotext and the job use its id
    p = make_p(script, [True, IDENTITY, LORA_WEIGHT, "35mm film photo", True, 0.7, True, 0, 0.0, False])
    state_before = dict(vars(script))
    processed = processing.process_images(p)

    # prompts: identity + style + LoRA scaled by the style's face multiplier (film_photo: 0.95), style negatives once
    assert len(host.calls) == 4
    for call in host.calls:
        assert call["prompt"].startswith("portrait photo, 35mm film photograph of fcsks, a person")
        assert call["networks"] == [("lora", LORA_NAME, round(LORA_WEIGHT * 0.95, 2))]
        assert call["negative_prompt"].startswith("lowres, blurry") and call["negative_prompt"].count("lowres") == 1

    state = get_state(p)
    by_seed = {r.seed: r for r in state.records}
    photos = sampler_photos(data_dir)
    # ranking: the identity first, the other people next, the image without a face last
    assert processed.all_seeds[0] == SEED + 2 and processed.all_seeds[-1] == SEED + 1
    assert state.order[0] == 2 and state.order[-1] == 1
    assert by_seed[SEED + 2].score > max(by_seed[SEED].score, by_seed[SEED + 3].score)
    # everything stays aligned: images, infotexts, seeds, subseeds, prompts
    for image, params, seed, subseed, prompt in zip(processed.images, parsed(processed), processed.all_seeds,
                                                     processed.all_subseeds, processed.all_prompts, strict=True):
        record = by_seed[seed]
        assert int(params["Seed"]) == seed and record.subseed == subseed
        assert params["Prompt"] == prompt and image.info["parameters"].startswith(prompt)
        assert params["FaceChain identity"] == IDENTITY and params["FaceChain LoRA"] == LORA_NAME
        assert params["FaceChain style"] == "film_photo"
        assert params["FaceChain similarity"] == ("none (no face found)" if record.score is None else f"{record.score:.3f}".rstrip("0"))
    # the no-face image is exactly as generated, unscored, and the result says so
    no_face = processed.images[-1]
    assert np.array_equal(np.asarray(no_face), expected_pixels(photos[SEED + 1]))
    assert by_seed[SEED + 1].score is None and by_seed[SEED + 1].fusion_note == "no_face"
    assert parsed(processed)[-1]["FaceChain fusion"] == "0.7 (not applied - no face found)"
    assert "no detectable face" in processed.comments
    # fusion changed the face of another person's image and nothing far from it
    other = processed.images[processed.all_seeds.index(SEED)]
    raw = expected_pixels(photos[SEED])
    fused = np.asarray(other)
    assert by_seed[SEED].fused and not np.array_equal(fused, raw)
    assert np.array_equal(fused[:40, :40], raw[:40, :40]) and np.array_equal(fused[-40:, -40:], raw[-40:, -40:])
    assert parsed(processed)[processed.all_seeds.index(SEED)]["FaceChain fusion"] == "0.7"
    # no state on the Script instance
    assert dict(vars(script)) == state_before


def test_second_job_dict_argument_top_k_without_fusion_is_independent(ctx, host, data_dir):
    script = FaceChainScript(ctx)
    first = make_p(script, [True, IDENTITY, LORA_WEIGHT, "None", True, 0.7, False, 0, 0.0, False], n_iter=1)
    processing.process_images(first)
    first_job = get_state(first)
    # alwayson_scripts form: ONE dict where the first control sits, the rest are the controls' defaults
    args = {"identity": IDENTITY, "fusion": {"enabled": False}, "ranking": {"top_k": 2, "drop_no_face": True}}
    second = make_p(script, [args, *UI_DEFAULTS[1:]])
    processed = processing.process_images(second)
    state = get_state(second)
    assert state is not first_job and len(first_job.records) == 2 and len(state.records) == 4
    assert not first_job.ranked  # ranking was off in the first job: generation order kept
    photos = sampler_photos(data_dir)
    assert len(processed.images) == 2 and processed.all_seeds[0] == SEED + 2
    assert SEED + 1 not in processed.all_seeds  # drop_no_face
    for image, params, seed in zip(processed.images, parsed(processed), processed.all_seeds, strict=True):
        assert int(params["Seed"]) == seed and params["FaceChain fusion"] == "off"
        assert np.array_equal(np.asarray(image), expected_pixels(photos[seed]))  # fusion off: as generated
    assert "kept 2 of 4 images" in processed.comments
    # no style in this job: the prompt has the identity and the LoRA at its preferred weight, no style words
    assert all(call["networks"] == [("lora", LORA_NAME, LORA_WEIGHT)] for call in host.calls[-4:])
    assert all("35mm" not in call["prompt"] for call in host.calls[-4:])
    # fusion raised the similarity of another person's face toward the identity (same seed, fused vs not)
    fused_score = get_state(first).records[0].score
    plain_score = next(r.score for r in state.records if r.seed == SEED)
    assert first_job.records[0].fused and fused_score > plain_score


def test_disabled_unknown_identity_and_failed_jobs_leave_nothing_behind(ctx, host):
    script = FaceChainScript(ctx)
    off = make_p(script, UI_DEFAULTS, n_iter=1)
    processed = processing.process_images(off)
    assert get_state(off) is None and "FaceChain" not in "".join(processed.infotexts)
    assert all(call["networks"] == [] for call in host.calls)

    unknown = make_p(script, [True, "nobody", 0.9, "None", True, 0.7, True, 0, 0.0, False], n_iter=1)
    processed = processing.process_images(unknown)
    assert get_state(unknown) is None and len(processed.images) == 2
    assert "FaceChain is off for this job" in processed.comments and "nobody" in processed.comments

    failing = make_p(script, [True, IDENTITY, 0.9, "None", True, 0.7, True, 0, 0.0, False], n_iter=1)
    processing.fake_sampler = None  # the "model" fails mid-job: postprocess never runs
    with pytest.raises(RuntimeError):
        processing.process_images(failing)
    assert get_state(failing) is not None  # left on that p ...
    import copy

    reused = copy.copy(failing)  # ... and a copied p (X/Y/Z plot style) starts clean
    reused.script_args = [0, *UI_DEFAULTS]
    processing.fake_sampler = host
    processing.process_images(reused)
    assert get_state(reused) is None and not hasattr(reused, "_facechain_runtime")
    assert not any(name.startswith("_facechain") for name in vars(script))


def test_missing_lora_file_is_said_and_left_out_of_the_prompt(ctx, host):
    lora = ctx.identities.get(IDENTITY).loras[0]
    moved = lora["path"] + ".moved"
    import os

    os.replace(lora["path"], moved)
    try:
        p = make_p(FaceChainScript(ctx), [True, IDENTITY, 0.9, "None", False, 0.7, False, 0, 0.0, False], batch_size=1, n_iter=1)
        processed = processing.process_images(p)
    finally:
        os.replace(moved, lora["path"])
    assert host.calls[-1]["networks"] == [] and "fcsks, a person" in host.calls[-1]["prompt"]
    assert "LoRA file" in processed.comments and "is missing" in processed.comments


def test_hires_pass_gets_the_same_lora_and_negatives_and_no_spurious_hires_infotext(ctx, host):
    """A1111 1.10 hires fix reads p.all_hr_prompts / all_hr_negative_prompts (separate lists) after
    before_process_batch, and prints "Hires (negative) prompt" whenever they differ from the first pass."""
    script = FaceChainScript(ctx)
    p = make_p(script, [True, IDENTITY, LORA_WEIGHT, "film_photo", False, 0.7, False, 0, 0.0, False],
               n_iter=1, enable_hr=True, hr_upscaler="Latent")
    processed = processing.process_images(p)
    assert len(host.hr_calls) == 2
    for first, second in zip(host.calls[-2:], host.hr_calls, strict=True):
        assert second["prompt"] == first["prompt"] and second["networks"] == first["networks"]
        assert second["negative_prompt"] == first["negative_prompt"] and first["negative_prompt"].startswith("lowres, blurry")
    for params in parsed(processed):
        assert "Hires prompt" not in params and "Hires negative prompt" not in params
    # an explicit hires prompt keeps its own text and still gets the identity's LoRA
    p = make_p(script, [True, IDENTITY, LORA_WEIGHT, "None", False, 0.7, False, 0, 0.0, False],
               n_iter=1, enable_hr=True, hr_prompt="detailed skin")
    processing.process_images(p)
    assert all(call["prompt"].startswith("detailed skin") and call["networks"] == [("lora", LORA_NAME, LORA_WEIGHT)]
               for call in host.hr_calls[-2:])


def test_host_ui_defaults_grid_first_samples_saved_ranking_keeps_everything_aligned(ctx, host, fake_host):
    """The host's UI defaults (A1111 1.10 modules/processing.py): samples saved with their infotext (opts.samples_save),
    a grid of the batch inserted at index 0 with the job's infotext (opts.return_grid, index_of_first_image = 1) and
    saved (opts.grid_save). Ranking reorders the images after the grid, rebuilds the grid and keeps it first."""
    from pathlib import Path

    from modules import shared
    from PIL import Image

    opts = shared.opts
    p = make_p(FaceChainScript(ctx), [True, IDENTITY, LORA_WEIGHT, "None", False, 0.7, True, 0, 0.0, False],
               do_not_save_samples=False, do_not_save_grid=False, outpath_samples=opts.outdir_txt2img_samples,
               outpath_grids=opts.outdir_txt2img_grids)
    processed = processing.process_images(p)
    job = get_state(p)

    assert processed.index_of_first_image == 1 and len(processed.images) == 5 and len(processed.infotexts) == 5
    grid, ranked = processed.images[0], processed.images[1:]
    assert grid.size == (1024, 1024)  # 4 images of 512 px: 2 rows, 2 columns
    assert np.array_equal(np.asarray(grid.crop((0, 0, 512, 512))), np.asarray(ranked[0]))  # the grid shows the ranking
    assert job.order[0] == 2 and processed.all_seeds[0] == SEED + 2 and processed.all_seeds[-1] == SEED + 1
    for image, params, seed in zip(ranked, parsed(processed)[1:], processed.all_seeds, strict=True):
        assert int(params["Seed"]) == seed and image.info["parameters"] == processed.infotexts[1 + processed.images[1:].index(image)]
    assert processed.info == processed.infotexts[0] and "FaceChain identity" in processed.infotexts[0]

    saved = sorted(Path(opts.outdir_txt2img_samples).glob("*.png"))
    assert len(saved) == 4  # in generation order, each with its own infotext and score
    for path, seed in zip(saved, range(SEED, SEED + 4), strict=True):
        assert path.name == f"{saved.index(path):05d}-{seed}.png"
        with Image.open(path) as image:
            params = parse_generation_parameters(image.info["parameters"])
        record = next(r for r in job.records if r.seed == seed)
        assert int(params["Seed"]) == seed
        assert params["FaceChain similarity"] == ("none (no face found)" if record.score is None else f"{record.score:.3f}".rstrip("0"))
    assert [path.name for path in Path(opts.outdir_txt2img_grids).glob("*.png")] == ["grid-0000.png"]

    top1 = make_p(FaceChainScript(ctx), [True, IDENTITY, LORA_WEIGHT, "None", False, 0.7, True, 1, 0.0, False],
                  do_not_save_samples=True, do_not_save_grid=False, outpath_grids=opts.outdir_txt2img_grids)
    processed = processing.process_images(top1)
    # one image left: no grid (the host makes none for a single image), infotexts still aligned
    assert processed.index_of_first_image == 0 and len(processed.images) == len(processed.infotexts) == 1
    assert int(parsed(processed)[0]["Seed"]) == SEED + 2
