"""The Forge stand-in (tests/fakeforge) behaves as Forge's source says it does (see tests/fakeforge/README.md)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from tiny_models import CONTEXT_DIM, tiny_forge_sd, tiny_ldm_unet

# The SD1 transformer blocks of the tiny UNet in execution order, as Forge tags them: (block, block_index).
TINY_SITES = [("input", 1), ("input", 2), ("middle", 0), ("output", 3), ("output", 4), ("output", 5)]


@pytest.fixture
def engine(fake_forge, tmp_path):
    return tiny_forge_sd(tmp_path)


def _inputs(batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 4, 8, 8, generator=g), torch.randn(batch, 77, CONTEXT_DIM, generator=g)


def test_forge_is_detected_only_inside_the_fixture(fake_forge):
    assert importlib.util.find_spec("modules_forge") is not None


def test_forge_is_not_detected_without_the_fixture():
    assert importlib.util.find_spec("modules_forge") is None and importlib.util.find_spec("backend") is None


def test_forge_unet_matches_the_ldm_unet_with_the_same_weights(engine):
    x, context = _inputs()
    t = torch.tensor([10.0, 700.0])
    unet = engine.forge_objects.unet.model.diffusion_model
    with torch.no_grad():
        forge_out = unet(x, t, context=context, transformer_options={})
        ldm_out = tiny_ldm_unet().eval()(x, t, context=context)
    assert forge_out.shape == (2, 4, 8, 8)
    assert torch.allclose(forge_out, ldm_out, atol=1e-5), (forge_out - ldm_out).abs().max()


def test_middle_patch_runs_between_attn1_and_attn2_on_a_clone_only(engine):
    original = engine.forge_objects.unet
    clone = original.clone()
    seen = []

    def middle(x, extra_options):
        seen.append((extra_options["block"], extra_options["block_index"], tuple(extra_options["cond_or_uncond"]),
                     extra_options["n_heads"], extra_options["dim_head"], tuple(x.shape)))
        return x * 0  # zero the residual stream after attn1: the output must change

    clone.set_model_patch(middle, "middle_patch")
    assert "patches" not in original.model_options["transformer_options"]  # deep-copied options
    from backend.sampling.sampling_function import sampling_function, sampling_prepare

    x, context = _inputs(batch=1)
    sigma = torch.tensor([3.0])
    uncond = torch.zeros_like(context)
    sampling_prepare(clone, x)
    with torch.inference_mode():
        base = sampling_function(original, x, sigma, context, uncond, 7.0)
        patched = sampling_function(clone, x, sigma, context, uncond, 7.0)
    assert [(block[0], block[1]) for block, *_ in seen] == TINY_SITES
    assert {s[1] for s in seen} == {0} and {s[2] for s in seen} == {(1, 0)}  # uncond rows first, then cond
    assert [s[3:5] for s in seen] == [(4, 8), (4, 8), (8, 8), (4, 8), (4, 8), (4, 8)]  # 32 / 64 channels, 8 per head
    assert all(s[5][0] == 2 for s in seen)  # both chunks in one batch
    assert not torch.allclose(base, patched)


def test_loader_builds_forge_linears_holding_inference_tensors_that_autograd_cannot_save(engine):
    unet = engine.forge_objects.unet.model.diffusion_model
    to_q = unet.get_submodule("input_blocks.1.1.transformer_blocks.0.attn1.to_q")
    assert not isinstance(to_q, torch.nn.Linear) and to_q.weight.shape == (32, 32) and not to_q.parameters_manual_cast
    assert not [m for m in unet.modules() if isinstance(m, torch.nn.Linear)]
    assert all(p.is_inference() for p in unet.parameters())
    x, context = _inputs(batch=1)
    x.requires_grad_(True)
    with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward"):
        unet(x, torch.tensor([5.0]), context=context, transformer_options={}).sum().backward()


def test_conditioning_and_latents_are_inference_tensors(engine):
    cond = engine.get_learned_conditioning(["a photo"])
    latents = engine.encode_first_stage(torch.zeros(1, 3, 64, 64))
    assert cond.shape == (1, 77, CONTEXT_DIM) and cond.is_inference()
    assert latents.shape == (1, 4, 8, 8) and latents.is_inference()
    assert engine.get_first_stage_encoding(latents) is latents


def test_lora_patches_merge_on_load_and_the_original_restores_them(engine):
    from backend import memory_management

    original = engine.forge_objects.unet
    key = "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"
    before = original.model.state_dict()[key].clone()
    up, down = torch.ones(before.shape[0], 2), torch.full((2, before.shape[1]), 0.5)
    lora = original.clone()
    loaded = lora.add_patches(filename="x.safetensors", patches={key: ("lora", (up, down, 4.0, None, None)),
                                                                 "diffusion_model.nope.weight": ("lora", (up, down, None, None, None))})
    assert loaded == {key}
    memory_management.load_models_gpu([lora])
    merged = original.model.state_dict()[key]
    assert torch.allclose(merged, before + 4.0 / 2 * (up @ down))  # strength 1, alpha / rank
    memory_management.load_models_gpu([original])  # unloads the clone, refreshes with no patches
    assert torch.equal(original.model.state_dict()[key], before)
    assert [m.model for m in memory_management.current_loaded_models] == [original]
    memory_management.unload_all_models()
    assert memory_management.current_loaded_models == []


def test_extra_torch_modules_are_loaded_with_the_unet(engine):
    from backend import memory_management
    from backend.sampling.sampling_function import sampling_prepare

    clone = engine.forge_objects.unet.clone()
    extra = torch.nn.Linear(3, 3).double()
    patcher = clone.add_extra_torch_module_during_sampling(extra)
    assert extra.weight.dtype == torch.float32  # cast to the UNet's dtype
    assert engine.forge_objects.unet.extra_model_patchers_during_sampling == []
    sampling_prepare(clone, torch.zeros(1, 4, 8, 8))
    assert {id(m.model) for m in memory_management.current_loaded_models} == {id(clone), id(patcher)}


def test_main_thread_runs_tasks_and_swallows_their_errors(fake_forge):
    import threading

    assert fake_forge.run_and_wait_result(lambda a, b: (a + b, threading.current_thread().name), 2, b=3) == (
        5, "forge-main-thread")

    def boom():
        raise ValueError("bad")

    assert fake_forge.run_and_wait_result(boom) is None
    assert isinstance(fake_forge.last_exception, ValueError)
