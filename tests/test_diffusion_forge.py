"""ForgeModel: the trainer's model interface on Forge's engine (tests/fakeforge), against the A1111 LdmModel path.

The tiny Forge engine holds exactly the A1111 tiny model's weights (UNet, VAE, text encoder), so every quantity can
be compared with what the trainer computes on A1111.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import (
    TinyLatentDiffusion,
    assert_unet_restored,
    sd_alphas_cumprod,
    tiny_forge_sd,
    unet_fingerprint,
    unet_values,
)

from facechain_ext.diffusion.forge import ForgeModel
from facechain_ext.diffusion.ldm import LdmModel
from facechain_ext.errors import FaceChainError
from facechain_ext.lora import kohya
from facechain_ext.lora.config import TrainConfig
from facechain_ext.lora.inject import lora_attached
from facechain_ext.lora.trainer import train_lora

CFG = TrainConfig(resolution=64, steps=4, snapshot_every=2, learning_rate=1e-3, augment_variants=2)


def photos(n: int = 2, size: int = 80) -> list[tuple[Image.Image, str]]:
    return [(Image.fromarray(np.random.RandomState(i).randint(0, 255, (size, size, 3), dtype=np.uint8)),
             "a photo of fcsks man") for i in range(n)]


@pytest.fixture
def engine(fake_forge, tmp_path):
    return tiny_forge_sd(tmp_path / "forge")


@pytest.fixture
def a1111(tmp_path):
    return LdmModel(TinyLatentDiffusion(tmp_path / "a1111"))


def test_model_facts_come_from_forge_objects(engine):
    model = ForgeModel(engine)
    assert model.naming == "compvis" and model.is_sd1 and model.prediction_type == "epsilon"
    assert model.unet is engine.forge_objects_original.unet.model.diffusion_model
    assert model.device == torch.device("cpu") and model.dtype == torch.float32
    torch.testing.assert_close(model.alphas_cumprod, sd_alphas_cumprod())


def test_latents_conditioning_and_prediction_equal_the_a1111_path(engine, a1111):
    model = ForgeModel(engine)
    pixels = torch.rand(2, 3, 64, 64) * 2 - 1
    latents = model.encode_images(pixels, seed=5)
    assert not latents.is_inference() and latents.shape == (2, 4, 8, 8)
    torch.testing.assert_close(latents, model.encode_images(pixels, seed=5), atol=0, rtol=0)  # seeded
    torch.testing.assert_close(latents, a1111.encode_images(pixels, seed=5), atol=1e-5, rtol=0)
    cond = model.encode_prompts(["a photo of fcsks man", "x"])
    assert not cond.is_inference()
    torch.testing.assert_close(cond, a1111.encode_prompts(["a photo of fcsks man", "x"]), atol=1e-6, rtol=0)
    t = torch.tensor([10, 900])
    with torch.no_grad():
        torch.testing.assert_close(model.predict(latents, t, cond), a1111.predict(latents, t, cond), atol=1e-5, rtol=0)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_training_on_forge_matches_a1111_and_restores_the_unet_exactly(engine, a1111, checkpointing):
    """Forge's UNet (inference-tensor weights, in-place residuals) trains like A1111's and is left bit-identical."""
    config = TrainConfig(**{**CFG.to_dict(), "gradient_checkpointing": checkpointing})
    model = ForgeModel(engine)
    before_fp, before_values = unet_fingerprint(model.unet), unet_values(model.unet)
    assert all(p.is_inference() for p in model.unet.parameters())
    forge = train_lora(model, photos(), config)
    assert_unet_restored(model.unet, before_fp, before_values)
    assert all(p.is_inference() for p in model.unet.parameters())  # the host's own parameter objects are back
    reference = train_lora(a1111, photos(), config)
    assert forge.targets == reference.targets and len(forge.targets) == 48
    np.testing.assert_allclose(forge.losses, reference.losses, rtol=1e-4)
    for key, tensor in reference.final.items():
        torch.testing.assert_close(forge.final[key], tensor, atol=1e-5, rtol=1e-4)
    assert kohya.unmatched_keys(forge.final, a1111.unet) == []  # ldm's module names and shapes


def test_training_loads_the_original_unet_and_sees_no_prompt_lora(engine):
    """After a generation with `<lora:…>` Forge's weights are merged; training loads the original patcher (Forge's
    memory management restores them) and trains on the checkpoint's own weights."""
    from backend import memory_management

    key = "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
    unet = engine.forge_objects.unet.model.diffusion_model
    own = unet.state_dict()[key].clone()
    prompt_lora = engine.forge_objects.unet.clone()
    up, down = torch.ones(own.shape[0], 1), torch.ones(1, own.shape[1])
    prompt_lora.add_patches(filename="user.safetensors", patches={"diffusion_model." + key: ("lora", (up, down, None, None, None))})
    memory_management.load_models_gpu([prompt_lora])
    assert not torch.equal(unet.state_dict()[key], own)
    calls, seen = [], []

    def load_models(models):
        calls.append(models)
        memory_management.load_models_gpu(models)

    model = ForgeModel(engine, load_models=load_models)
    train_lora(model, photos(1), CFG, on_step=lambda info: seen.append(unet.get_submodule(key[:-7]).base_layer.weight.clone()))
    assert calls == [[engine.forge_objects_original.unet]] * 2  # at construction and when LoRA is attached
    assert all(torch.equal(w, own) for w in seen) and len(seen) == CFG.steps
    assert torch.equal(unet.state_dict()[key], own)


def test_forge_forward_with_its_patches_runs_when_no_gradients_are_recorded(engine):
    """Inside a training attach, renders (no autograd) still go through Forge's block forward and its patches."""
    from backend.sampling.sampling_function import sampling_function

    model = ForgeModel(engine)
    clone = engine.forge_objects.unet.clone()
    calls = []
    clone.set_model_patch(lambda x, extra: calls.append(extra["block"]) or x, "middle_patch")
    x, cond = torch.randn(1, 4, 8, 8), torch.randn(1, 77, 32)
    with lora_attached(model, CFG), torch.inference_mode():
        sampling_function(clone, x, torch.tensor([2.0]), cond, torch.zeros_like(cond), 5.0)
    assert len(calls) == 6


def test_non_sd1_and_unsupported_predictions_are_refused(engine):
    engine.is_sd1 = False
    with pytest.raises(FaceChainError) as err:
        ForgeModel(engine)
    assert err.value.code == "unsupported_model"
    engine.is_sd1 = True
    engine.forge_objects_original.unet.model.predictor.prediction_type = "edm"
    with pytest.raises(FaceChainError, match="'edm'"):
        ForgeModel(engine)


def test_an_engine_without_a_unet_is_refused(fake_forge):
    class Flux:
        forge_objects_original = None

    with pytest.raises(FaceChainError) as err:
        ForgeModel(Flux())
    assert err.value.code == "unsupported_model"
