"""FACT rows under every batching the host's CFG denoiser does, through tests/fakehost's sd_samplers_cfg_denoiser
(written to the host's layout) and the callbacks `register()` wires.

UNet: the real ldm UNetModel with SD1.x topology (16 transformer sites, context 768) at 1/10 of the width, so each
layout runs in well under a second. For every row of every denoiser step the UNet output (`on_cfg_denoised`'s x_out)
must equal the row computed alone with the face tokens (conditional rows) or the no-face tokens (unconditional
rows); the swapped assignment is far away, so a misrouted row cannot pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest
import torch
from fact_hook_helpers import (
    FakeLatentDiffusion,
    build_adapter,
    build_unet,
    narrow_unet_config,
    pairs,
    sites_for,
    text_cond,
    tokens,
)

from facechain_ext.fact.attach import FaceTokens, attach, has_fact_hooks
from facechain_ext.fact.files import FactFiles
from facechain_ext.fact_runtime import FactJob

WIDTH = 32
F_TOK, N_TOK = tokens(1), tokens(2)
TOTAL_STEPS = 10


@pytest.fixture(scope="module")
def unet():
    return build_unet(narrow_unet_config(WIDTH))


@pytest.fixture(scope="module")
def inpaint_unet():
    return build_unet(narrow_unet_config(WIDTH, in_channels=9), seed=5)


@pytest.fixture(scope="module")
def adapter():
    return build_adapter(sites_for(WIDTH))


@dataclass
class Row:
    """What one row of x_out must be: image index, its context, face (True) or no-face tokens."""

    image: int
    context: torch.Tensor
    face: bool


@dataclass
class Step:
    conds: list[list[torch.Tensor]]  # per image: its prompts' conds (several = AND)
    unconds: list[torch.Tensor]  # per image
    size: int = 8
    seed: int = 0
    step: int = 0
    s_min_uncond: float = 0.0
    sigma: float = 2.0
    image_cond: Optional[torch.Tensor] = None
    captured: list = field(default_factory=list)


class Harness:
    """The fake host with FaceChain registered, a model whose UNet is hooked for one generation `p`."""

    def __init__(self, fake_host, tmp: Path, unet, adapter, conditioning_key: str = "crossattn") -> None:
        from modules import processing, script_callbacks, shared

        from facechain_ext.webui import register

        fake_host.reset_host(tmp / "webui")
        self.shared = shared
        self.extension = register()
        script_callbacks.on_cfg_denoised(lambda params: self.outputs.append(params.x.clone()))
        self.outputs: list[torch.Tensor] = []
        self.sd_model = shared.sd_model = FakeLatentDiffusion(unet, conditioning_key)
        self.unet, self.adapter = unet, adapter
        self.p = processing.StableDiffusionProcessingTxt2Img(prompt="portrait", batch_size=2)
        runtime = self.extension.ctx.fact
        runtime.begin(self.p, FactJob(tmp, 0.5, FactFiles(tmp / "e", tmp / "a", "maj")))
        runtime.attach(unet, adapter, FaceTokens(F_TOK, N_TOK), 0.5)

    def run(self, step: Step) -> torch.Tensor:
        """One denoiser step; returns x_out (every UNet row) and sets `self.calls` (UNet calls in the step)."""
        from modules import prompt_parser as pp
        from modules.sd_samplers_kdiffusion import CFGDenoiserKDiffusion

        batch = len(step.conds)
        cond = pp.MulticondLearnedConditioning((batch,), [
            [pp.ComposableScheduledPromptConditioning([pp.ScheduledPromptConditioning(TOTAL_STEPS, c)], 1.0 / len(cs)) for c in cs]
            for cs in step.conds
        ])
        uncond = [[pp.ScheduledPromptConditioning(TOTAL_STEPS, u)] for u in step.unconds]
        x = torch.randn(batch, 4, step.size, step.size, generator=torch.Generator().manual_seed(step.seed))
        sigma = torch.full((batch,), step.sigma)
        image_cond = step.image_cond if step.image_cond is not None else torch.zeros(batch, 5, 1, 1)
        denoiser = CFGDenoiserKDiffusion(sampler=None)
        denoiser.p, denoiser.step, denoiser.total_steps = self.p, step.step, TOTAL_STEPS
        self.x, self.sigma = x, sigma
        self.outputs.clear()
        live = self.extension.ctx.fact.attachment
        before = live.calls
        with torch.no_grad():
            denoiser(x, sigma, uncond=uncond, cond=cond, cond_scale=7.0, s_min_uncond=step.s_min_uncond, image_cond=image_cond)
        self.calls = live.calls - before
        return self.outputs[-1]

    def alone(self, row: Row, step: Step, face: bool) -> torch.Tensor:
        """The row computed by itself with one token set (its own attachment, no routing: every row gets `face`)."""
        runtime = self.extension.ctx.fact
        live = runtime.attachment
        live.detach()
        chosen = F_TOK if face else N_TOK
        x = self.x[row.image:row.image + 1]
        sigma = self.sigma[row.image:row.image + 1]
        cond = {"c_crossattn": [row.context[None]]}
        if step.image_cond is not None:
            cond["c_concat"] = [step.image_cond[row.image:row.image + 1]]
        try:
            with attach(self.unet, pairs(self.adapter), FaceTokens(chosen, chosen), scale=0.5), torch.no_grad():
                eps = self.sd_model.apply_model(x / (sigma**2 + 1) ** 0.5, sigma, cond)
        finally:
            runtime.attach(self.unet, self.adapter, FaceTokens(F_TOK, N_TOK), 0.5)
        return (x - eps * sigma[:, None, None, None])[0]


def check(harness: Harness, step: Step, rows: list[Row]) -> None:
    x_out = harness.run(step)
    assert x_out.shape[0] == len(rows)
    for index, row in enumerate(rows):
        right, wrong = harness.alone(row, step, row.face), harness.alone(row, step, not row.face)
        assert (right - wrong).abs().max() > 1e-3, "the two token sets must lead to clearly different outputs"
        torch.testing.assert_close(x_out[index], right, rtol=1e-4, atol=2e-5, msg=f"row {index} ({'face' if row.face else 'no face'})")


def layout(step: Step) -> list[Row]:
    """The host's x_in order: every cond of image 0, of image 1, ...; then one uncond row per image."""
    rows = [Row(i, c, True) for i, cs in enumerate(step.conds) for c in cs]
    return rows + [Row(i, u, False) for i, u in enumerate(step.unconds)]


@pytest.fixture
def harness(fake_host, tmp_path, unet, adapter):
    h = Harness(fake_host, tmp_path, unet, adapter)
    yield h
    h.extension.on_script_unloaded()


C0, C1, C2, U0, U1 = (text_cond(s) for s in (20, 21, 22, 30, 31))


@pytest.mark.parametrize("batched", [True, False], ids=["batch_cond_uncond", "one_chunk_per_batch"])
def test_cond_and_uncond_rows_in_one_call_or_in_chunks(harness, batched):
    harness.shared.opts.batch_cond_uncond = batched
    step = Step([[C0], [C1]], [U0, U1])
    check(harness, step, layout(step))
    assert harness.calls == (1 if batched else 2)


@pytest.mark.parametrize("batched", [True, False], ids=["batch_cond_uncond", "chunks_mixing_cond_and_uncond"])
def test_and_prompts_give_several_cond_rows_per_image(harness, batched):
    harness.shared.opts.batch_cond_uncond = batched
    step = Step([[C0, C2], [C1]], [U0, U1])  # image 0: "a AND b"; chunks of 2 rows: [c00 c01] [c10 u0] [u1]
    check(harness, step, layout(step))
    assert harness.calls == (1 if batched else 3)


def test_negative_guidance_minimum_sigma_skips_the_uncond_rows(harness):
    step = Step([[C0], [C1]], [U0, U1], step=1, s_min_uncond=5.0, sigma=2.0)  # odd step, sigma below the minimum
    rows = [Row(0, C0, True), Row(1, C1, True), Row(0, C0, True), Row(1, C1, True)]  # + the host's fake uncond copies
    check(harness, step, rows)


def test_longer_prompt_without_padding_runs_cond_and_uncond_apart(harness):
    long0, long1 = text_cond(40, chunks=2), text_cond(41, chunks=2)  # 154 tokens vs the negatives' 77
    step = Step([[long0], [long1]], [U0, U1])
    check(harness, step, layout(step))
    assert harness.calls == 2  # cond rows (one chunk of 2·batch), then the uncond call


def test_longer_prompt_padded_with_empty_prompt_chunks(harness):
    harness.shared.opts.pad_cond_uncond = True
    long0, long1 = text_cond(40, chunks=2), text_cond(41, chunks=2)
    empty = harness.sd_model.cond_stage_model_empty_prompt[0]
    step = Step([[long0], [long1]], [U0, U1])
    rows = [Row(0, long0, True), Row(1, long1, True), Row(0, torch.cat([U0, empty]), False), Row(1, torch.cat([U1, empty]), False)]
    check(harness, step, rows)
    assert harness.calls == 1


@pytest.mark.parametrize("longer", ["prompt", "negative"])
def test_v0_padding_repeats_or_truncates_the_negative(harness, longer):
    harness.shared.opts.pad_cond_uncond_v0 = True
    long_c, long_u = text_cond(40, chunks=2), text_cond(50, chunks=2)
    if longer == "prompt":
        step = Step([[long_c]], [U0])
        rows = [Row(0, long_c, True), Row(0, torch.cat([U0, U0[-1:].repeat(77, 1)]), False)]
    else:
        step = Step([[C0]], [long_u])
        rows = [Row(0, C0, True), Row(0, long_u[:77], False)]
    check(harness, step, rows)


def test_prompt_equal_to_negative_falls_back_to_the_host_layout(harness):
    harness.shared.opts.batch_cond_uncond = False
    step = Step([[C0], [U1]], [C0, U1])  # each image's prompt is its negative: only the position tells them apart
    check(harness, step, layout(step))


def test_hires_second_pass_gets_its_own_conds_and_size(harness):
    first = Step([[C0], [C1]], [U0, U1], size=8)
    check(harness, first, layout(first))
    second = Step([[C2], [C1]], [U1, U0], size=16, seed=1, sigma=1.0)  # hr prompts, upscaled latents
    check(harness, second, layout(second))


def test_inpainting_model_with_image_conditioning(fake_host, tmp_path, inpaint_unet, adapter):
    harness = Harness(fake_host, tmp_path, inpaint_unet, adapter, conditioning_key="hybrid")
    try:
        image_cond = torch.randn(2, 5, 8, 8, generator=torch.Generator().manual_seed(9))  # masked image latents + mask
        for batched in (True, False):
            harness.shared.opts.batch_cond_uncond = batched
            step = Step([[C0], [C1]], [U0, U1], image_cond=image_cond)
            check(harness, step, layout(step))
    finally:
        harness.extension.on_script_unloaded()


def test_a_step_of_another_generation_ends_a_stale_hook(harness):
    from modules import processing

    stranger = processing.StableDiffusionProcessingTxt2Img(prompt="other")
    runtime = harness.extension.ctx.fact
    stale = runtime.attachment
    harness.p = stranger  # the denoiser now samples for a generation the hook does not serve
    harness.run(Step([[C0]], [U0]))
    assert runtime.attachment is None and runtime.job is None
    assert not stale.attached and not has_fact_hooks(harness.unet)


def test_an_extra_unet_call_by_another_extension_is_routed_by_content(harness):
    """E.g. self-attention guidance re-runs the UNet from `on_cfg_denoised`, after the host's calls of the step:
    counting positions would call its cond row unconditional; its content says conditional."""
    from modules import script_callbacks

    extra: list[torch.Tensor] = []

    def rerun_cond_row(params):
        x = harness.x[:1] / (harness.sigma[:1] ** 2 + 1) ** 0.5
        extra.append(harness.sd_model.apply_model(x, harness.sigma[:1], {"c_crossattn": [C0[None]]}))

    script_callbacks.on_cfg_denoised(rerun_cond_row)
    step = Step([[C0], [C1]], [U0, U1])
    harness.run(step)
    assert harness.calls == 2  # the host's call and the extension's
    sigma = harness.sigma[:1, None, None, None]
    rerun = harness.x[:1] - extra[0] * sigma
    right, wrong = harness.alone(Row(0, C0, True), step, True), harness.alone(Row(0, C0, True), step, False)
    torch.testing.assert_close(rerun[0], right, rtol=1e-4, atol=2e-5)
    assert (rerun[0] - wrong).abs().max() > 1e-3


def test_adapter_in_another_dtype_than_the_unet_activations(unet, adapter):
    """The hook feeds each block in its own dtype and hands x back in the UNet's (fp16 adapter under autocast on
    CUDA; here a bfloat16 adapter with a float32 UNet on the CPU)."""
    import copy

    half = copy.deepcopy(adapter).to(torch.bfloat16)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    t, context = torch.tensor([500.0, 500.0]), torch.stack([C0, U0])
    with torch.no_grad():
        plain = unet(x, t, context=context)
        with attach(unet, pairs(adapter), FaceTokens(F_TOK, N_TOK), scale=0.5):
            full = unet(x, t, context=context)
        with attach(unet, pairs(half), FaceTokens(F_TOK, N_TOK), scale=0.5):
            reduced = unet(x, t, context=context)
    assert reduced.dtype == torch.float32 and torch.isfinite(reduced).all()
    assert (reduced - full).abs().max() < 0.1 * (full - plain).abs().max()


def test_cross_attention_that_changes_the_token_count_is_refused(unet, adapter):
    """Token merging on cross-attention (ToMe's merge_crossattn) changes attn2's output length: FACT cannot add its δ."""
    site = sites_for(WIDTH)[0]
    shrink = unet.get_submodule(f"{site.compvis}.attn2").register_forward_hook(lambda m, a, out: out[:, ::2])
    try:
        with attach(unet, pairs(adapter), FaceTokens(F_TOK, N_TOK), scale=0.5), torch.no_grad():
            with pytest.raises(RuntimeError, match="token merging on cross-attention"):
                unet(torch.randn(1, 4, 8, 8), torch.tensor([500.0]), context=C0[None])
    finally:
        shrink.remove()
    assert not has_fact_hooks(unet)
