"""FACT through the host glue: the accordion script's hooks in the host's order, the callbacks register() wires,
the real FACT loader on synthetic release files (tests/fact_helpers.py), an identity prepared from real photos, and
the real ldm UNetModel at SD1.5 shapes behind an ldm-like LatentDiffusion.

Asserted: a generation asking for FACT hooks the UNet in process_before_every_sampling (the hires pass keeps the
hook), its conditional row gets the identity's face tokens and its unconditional row the no-face tokens, postprocess
takes the hook off (UNet bit-identical again) and parks the model; a generation that raised loses its hook at the
next `process`; a model switch takes the hook off and the next step re-hooks an SD1 model or stops FACT with a
comment; non-SD1 checkpoints and missing files give a visible comment and no FACT; on Forge each sampling gets FACT
as a middle patch of its UNet clone (webui/forge_fact.py) with the same tokens; `--lowvram` moves each
adapter block to the compute device for its call and back; unloading drops everything.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from fact_hook_helpers import FakeLatentDiffusion, bits, pairs, snapshot, text_cond
from training_helpers import IDENTITY

from facechain_ext.fact.attach import FaceTokens, attach, has_fact_hooks
from facechain_ext.fact.files import find_fact_files
from facechain_ext.fact.model import load_fact_model
from facechain_ext.generation_state import get_state

ARGS = {"identity": IDENTITY, "conditioning": "fact", "fusion": {"enabled": False}, "ranking": {"enabled": False}}
COND, UNCOND = text_cond(60), text_cond(61)


@pytest.fixture(scope="module")
def fact_model(fact_release):
    """The synthetic release loaded once through the real loader (the runtime reuses it for the same files)."""
    return load_fact_model(find_fact_files(fact_release.models_dir))


class Host:
    """The fake host with FaceChain registered, the FACT files and an identity in its models folder."""

    def __init__(self, fake_host, tmp: Path, prepared: Path, release, fact_model, sd_model, argv=()) -> None:
        from modules import processing, shared

        from facechain_ext.webui import register
        from facechain_ext.webui.script import script_class_for

        fake_host.reset_host(tmp / "webui", ["--no-half", *argv])  # a CPU webui computes only with --no-half
        models = Path(shared.cmd_opts.facechain_models_dir or Path(tmp / "webui" / "models" / "facechain"))
        (models / "fact").mkdir(parents=True)
        for path in (release.encoder, release.adapter):
            (models / "fact" / path.name).symlink_to(path)
        shutil.copytree(prepared, models / "identities")
        self.shared, self.processing = shared, processing
        self.extension = register()
        from modules import script_callbacks

        script_callbacks.ui_settings_callback()  # the host registers every extension's options at start-up
        self.ctx = self.extension.ctx
        assert self.ctx.settings.models_dir == models
        self.ctx.fact.model = fact_model  # loaded once per module (the runtime reuses a model of the same files)
        self.script = script_class_for(self.ctx)()
        shared.sd_model = sd_model

    def new_p(self):
        return self.processing.StableDiffusionProcessingTxt2Img(prompt="portrait photo", negative_prompt="blurry")

    def start(self, p, args=ARGS):
        self.script.process(p, args)
        self.script.process_before_every_sampling(p, args, x=None, noise=None, c=None, uc=None)

    def step(self, p, cond=COND, uncond=UNCOND):
        """What the host's CFG denoiser reports before its UNet calls (on_cfg_denoiser)."""
        from modules.script_callbacks import CFGDenoiserParams, cfg_denoiser_callback

        denoiser = type("Denoiser", (), {"p": p})()
        cfg_denoiser_callback(CFGDenoiserParams(None, None, None, 0, 20, cond[None], uncond[None], denoiser))


@pytest.fixture
def sd15_model(sd15_unet):
    return FakeLatentDiffusion(sd15_unet)


@pytest.fixture
def host(fake_host, tmp_path, prepared, fact_release, fact_model, sd15_model):
    h = Host(fake_host, tmp_path, prepared, fact_release, fact_model, sd15_model)
    yield h
    h.extension.on_script_unloaded()


def unet_call(unet, context):
    x = torch.randn(context.shape[0], 4, 8, 8, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        return unet(x, torch.full((context.shape[0],), 600.0), context=context)


def test_a_fact_generation_hooks_routes_and_restores(host, sd15_unet, fact_model):
    from modules import devices

    before = snapshot(sd15_unet)
    both = torch.stack([COND, UNCOND])
    plain = unet_call(sd15_unet, both)
    p = host.new_p()
    host.start(p)
    state = get_state(p)
    assert state.fact is not None and state.lora_name is None and state.plan.face_lora is None
    runtime = host.ctx.fact
    assert runtime.attached_to(sd15_unet) and runtime.model is fact_model
    assert fact_model.device == devices.device and fact_model.dtype == devices.dtype_unet
    assert state.fact.used_photos and state.fact.tokens.face.shape == (1, 16, 768)
    attachment = runtime.attachment
    host.script.process_before_every_sampling(p, ARGS, x=None, noise=None, c=None, uc=None)  # the hires pass
    assert runtime.attachment is attachment and attachment.attached

    host.step(p)
    routed = unet_call(sd15_unet, both)
    tokens = state.fact.tokens
    runtime.detach()
    for row, chosen in ((0, tokens.face), (1, tokens.no_face)):
        with attach(sd15_unet, pairs(fact_model.adapter), FaceTokens(chosen, chosen), scale=0.5):
            alone = unet_call(sd15_unet, both)
        assert torch.equal(routed[row], alone[row])
    assert (routed - plain).abs().max() > 1e-3

    processed = host.processing.Processed(p, [])
    host.script.postprocess(p, processed, ARGS)
    assert runtime.attachment is None and runtime.job is None
    assert snapshot(sd15_unet) == before and not has_fact_hooks(sd15_unet)
    assert torch.equal(bits(unet_call(sd15_unet, both)), bits(plain))


def test_the_model_is_parked_after_a_generation_unless_settings_keep_it(host, fact_model, monkeypatch):
    moves: list = []
    monkeypatch.setattr(fact_model, "to", lambda device=None, dtype=None: moves.append((device, dtype)) or fact_model)
    for keep in (False, True):
        assert host.shared.opts.set("facechain_fact_keep_on_gpu", keep) or host.shared.opts.facechain_fact_keep_on_gpu == keep
        moves.clear()
        p = host.new_p()
        host.start(p)
        host.script.postprocess(p, host.processing.Processed(p, []), ARGS)
        assert moves == ([] if keep else [(torch.device("cpu"), None)])
    assert host.ctx.fact.model is fact_model  # loaded once, reused by every generation


def test_a_generation_that_raised_loses_its_hook_at_the_next_process(host, sd15_unet):
    first = host.new_p()
    host.start(first)
    assert has_fact_hooks(sd15_unet)
    # the sampler raised: the host never calls postprocess; the next generation (FaceChain off) starts
    host.script.process(host.new_p(), {"enabled": False})
    assert not has_fact_hooks(sd15_unet) and host.ctx.fact.job is None


def test_a_model_switch_mid_generation_rehooks_an_sd1_model_or_stops_with_a_comment(host, sd15_unet, sd15_model):
    from modules import script_callbacks

    p = host.new_p()
    host.start(p)
    script_callbacks.model_loaded_callback(sd15_model)  # e.g. an SD1 refiner loaded into the same model object
    assert not has_fact_hooks(sd15_unet)
    host.step(p)  # the generation's next step: hooked again, with the same tokens
    assert host.ctx.fact.attached_to(sd15_unet)
    xl = FakeLatentDiffusion(sd15_unet, is_sd1=False, title="sdxl-refiner")
    xl.is_sdxl = True
    host.shared.sd_model = xl
    script_callbacks.model_loaded_callback(xl)
    host.step(p)
    assert not has_fact_hooks(sd15_unet)
    assert any("Stable Diffusion 1.x checkpoints only; sdxl-refiner is SDXL" in text for text in p.comments)
    host.step(p)  # later steps stay quiet and unhooked
    assert not has_fact_hooks(sd15_unet) and sum("checkpoints only" in text for text in p.comments) == 1


def test_non_sd1_checkpoint_and_missing_files_get_a_comment_and_no_fact(host, sd15_unet):
    xl = FakeLatentDiffusion(sd15_unet, is_sd1=False, title="sd_xl_base")
    xl.is_sdxl = True
    host.shared.sd_model = xl
    p = host.new_p()
    host.start(p)
    assert not has_fact_hooks(sd15_unet)
    assert any("FACT works with Stable Diffusion 1.x checkpoints only" in text for text in p.comments)

    for path in (host.ctx.settings.models_dir / "fact").iterdir():
        path.unlink()
    p = host.new_p()
    host.start(p)
    assert get_state(p).fact is None
    assert any("FACT is off for this generation" in t and "ms1mv2_model_TransFace_S.pt" in t for t in p.comments)


def test_lowvram_moves_each_adapter_block_for_its_call(fake_host, tmp_path, prepared, fact_release, fact_model, sd15_model):
    host = Host(fake_host, tmp_path, prepared, fact_release, fact_model, sd15_model, argv=["--lowvram"])
    try:
        p = host.new_p()
        host.start(p)
        attachment = host.ctx.fact.attachment
        assert attachment.offload_device == torch.device("cpu")
        block = fact_model.adapter.blocks[0]
        moves: list = []
        original = block.to
        block.to = lambda *a, **k: moves.append((a, k)) or original(*a, **k)
        try:
            host.step(p)
            unet_call(sd15_model.model.diffusion_model, torch.stack([COND, UNCOND]))
        finally:
            del block.to
        assert moves == [((torch.device("cpu"),), {})]  # back to the CPU right after its call (it computed on x's device)
    finally:
        host.extension.on_script_unloaded()


def test_unloading_scripts_drops_the_hook_and_the_model(host, sd15_unet):
    p = host.new_p()
    host.start(p)
    from modules import script_callbacks

    script_callbacks.script_unloaded_callback()
    assert not has_fact_hooks(sd15_unet) and host.ctx.fact.model is None


def test_a_replacement_unet_that_bypasses_the_blocks_is_reported(host, sd15_unet):
    """The host's SD UNet option (e.g. TensorRT, modules/sd_unet.py) runs its own network instead of the blocks."""
    p = host.new_p()
    host.start(p)
    sd15_unet.forward = lambda x, timesteps=None, context=None, **kwargs: torch.zeros_like(x)
    try:
        host.step(p)
        unet_call(sd15_unet, torch.stack([COND, UNCOND]))
    finally:
        del sd15_unet.forward
    host.script.postprocess(p, host.processing.Processed(p, []), ARGS)
    assert any("FACT had no effect" in text for text in p.comments)
    assert not has_fact_hooks(sd15_unet)


def test_on_forge_each_sampling_gets_fact_as_a_middle_patch(fake_forge, fake_host, tmp_path, prepared, fact_release,
                                                             fact_model, monkeypatch):
    """Forge resets UNet patches before every sampling: install_forge_fact runs for the first and the hires pass with
    the generation's tokens; no A1111 hook, no row routing, nothing to take off."""
    from tiny_models import tiny_forge_sd

    import facechain_ext.webui.forge_fact as forge_fact

    engine = tiny_forge_sd(tmp_path / "engine")
    host = Host(fake_host, tmp_path, prepared, fact_release, fact_model, engine)
    try:
        installs: list = []
        monkeypatch.setattr(forge_fact, "install_forge_fact", lambda *a: installs.append(a))
        p = host.new_p()
        host.start(p)
        host.script.process_before_every_sampling(p, ARGS, x=None, noise=None, c=None, uc=None)  # hires pass
        tokens = get_state(p).fact.tokens
        assert [call[:2] for call in installs] == [(engine, fact_model.adapter)] * 2
        assert all(c[2] is tokens.face and c[3] is tokens.no_face and c[4] == 0.5 for c in installs)
        runtime = host.ctx.fact
        assert runtime.job is None and runtime.attachment is None
        host.step(p)  # Forge's denoiser callback: nothing to route
        assert runtime.attachment is None and not any("FACT" in text and "off" in text for text in p.comments)
        host.script.postprocess(p, host.processing.Processed(p, []), ARGS)
        monkeypatch.undo()
        p = host.new_p()  # the real install: this tiny engine's blocks are not SD1.5-wide
        host.start(p)
        assert any("FACT is off for this generation" in t and "320-wide transformer block" in t for t in p.comments)
    finally:
        host.extension.on_script_unloaded()


def test_an_unexpected_failure_costs_fact_not_the_generation(host, sd15_unet, monkeypatch):
    from facechain_ext.fact_runtime import FactRuntime

    def out_of_memory(self, *args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 512.00 MiB")

    monkeypatch.setattr(FactRuntime, "load", out_of_memory)
    p = host.new_p()
    host.start(p)  # the host would report an exception escaping a script hook; none escapes
    host.step(p)
    host.step(p)  # no retry on every step
    assert not has_fact_hooks(sd15_unet)
    failures = [t for t in p.comments if "FACT is off for this generation: RuntimeError: CUDA out of memory" in t]
    assert len(failures) == 1
