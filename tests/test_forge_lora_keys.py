"""Forge's LoRA loader reads the kohya files FaceChain's trainer writes.

Forge resolves a LoRA file with `model_lora_keys_unet(forge_objects.unet.model)` + `load_lora(file, key_map)` and adds
the patches to a clone of the UNet patcher (extensions-builtin/sd_forge_lora/networks.py `load_lora_for_models`;
backend/patcher/lora.py → packages_3rdparty/comfyui_lora_collection/lora.py); keys left unmatched are ignored (more
than 12: "LoRA version mismatch", nothing applied). Both are re-implemented in tests/fakeforge/backend/patcher/lora.py.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import TinyLatentDiffusion, tiny_forge_sd

from facechain_ext.diffusion.ldm import LdmModel
from facechain_ext.lora import kohya
from facechain_ext.lora.config import TrainConfig
from facechain_ext.lora.inject import find_targets, lora_attached
from facechain_ext.lora.io import save_lora
from facechain_ext.lora.trainer import diffusion_loss

# ldm's SD1.5 UNet arguments (configs/stable-diffusion/v1-inference.yaml).
SD15_UNET = dict(image_size=32, in_channels=4, out_channels=4, model_channels=320, attention_resolutions=[4, 2, 1],
                 num_res_blocks=2, channel_mult=[1, 2, 4, 4], num_heads=8, use_spatial_transformer=True,
                 transformer_depth=1, context_dim=768, legacy=False)


def forge_lora_patches(unet_patcher, lora: dict, strength: float = 1.0):
    """What sd_forge_lora's `load_lora_for_models` does for the UNet: key map, file → patches, clone + add_patches.
    Returns (patched clone, patches, file keys left unmatched, patch keys the clone accepted)."""
    from backend.patcher.lora import load_lora, model_lora_keys_unet

    patches, unmatched = load_lora(lora, model_lora_keys_unet(unet_patcher.model, {}))
    clone = unet_patcher.clone()
    accepted = clone.add_patches(filename="face.safetensors", patches=patches, strength_patch=strength)
    return clone, patches, unmatched, accepted


def test_every_key_of_a_full_sd15_face_lora_maps_to_an_ldm_unet_weight(fake_forge, tmp_path):
    """All 128 attention projections FaceChain trains on SD1.5 (16 blocks × attn1/attn2 × q/k/v/out): every file key
    is consumed by Forge's loader and lands on the parameter of the same-shaped module of ldm's UNet."""
    from backend.loader import build_unet
    from backend.modules.k_model import KModel
    from backend.modules.k_prediction import Prediction
    from backend.patcher.unet import UnetPatcher
    from ldm.modules.diffusionmodules.openaimodel import UNetModel

    with torch.device("meta"):  # real SD1.5 geometry without allocating 3.4 GB
        ldm_unet = UNetModel(**SD15_UNET, use_checkpoint=True)
    forge_unet = build_unet({**SD15_UNET, "use_checkpoint": False}, ldm_unet.state_dict(), device=torch.device("meta"),
                            dtype=torch.float32)
    ldm_modules = dict(ldm_unet.named_modules())
    targets = find_targets(ldm_unet, TrainConfig())
    assert len(targets) == 128
    g = torch.Generator().manual_seed(0)
    weights = {path: kohya.LoraWeights(torch.randn(4, ldm_modules[path].in_features, generator=g),
                                       torch.randn(ldm_modules[path].out_features, 4, generator=g), 4.0) for path in targets}
    path = save_lora(tmp_path / "face.safetensors", kohya.to_state_dict(weights), {"ss_output_name": "face"},
                     dtype=torch.float16)
    lora = load_file(str(path))
    assert len(lora) == 3 * 128
    patcher = UnetPatcher(KModel(forge_unet, Prediction()), load_device=torch.device("cpu"),
                          offload_device=torch.device("cpu"))
    _, patches, unmatched, accepted = forge_lora_patches(patcher, lora)
    assert unmatched == {}
    assert len(patches) == 128 and set(accepted) == set(patches)
    params = dict(patcher.model.named_parameters())
    for key, (kind, (up, down, alpha, mid, dora)) in patches.items():
        module_path = key.removeprefix("diffusion_model.").removesuffix(".weight")
        assert kind == "lora" and alpha == 4.0 and mid is None and dora is None
        assert module_path in weights  # the very module the trainer adapted
        assert tuple((up.float() @ down.float()).shape) == tuple(ldm_modules[module_path].weight.shape)
        assert tuple(params[key].shape) == tuple(ldm_modules[module_path].weight.shape)


def _batch():
    g = torch.Generator().manual_seed(7)
    return torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 77, 32, generator=g), torch.tensor([20, 800])


@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_forge_applies_a_trained_file_like_the_trainer_saw_it(fake_forge, tmp_path, strength):
    """Train on the A1111 ldm model, save the kohya file, merge it with Forge's loader into a Forge UNet holding the
    same base weights: Forge's prediction equals the trainer's (LoRA scaled by the prompt weight, alpha / rank)."""
    model = LdmModel(TinyLatentDiffusion(tmp_path / "a1111"))
    config = TrainConfig(rank=4, alpha=2.0)
    latents, cond, t = _batch()
    with torch.no_grad():
        base = model.predict(latents, t, cond)
    with lora_attached(model, config) as session:
        optimizer = torch.optim.AdamW(session.parameters(), lr=2e-2)
        for step in range(3):
            noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(step))
            diffusion_loss(model, latents, cond, t, noise, model.alphas_cumprod).backward()
            optimizer.step()
            optimizer.zero_grad()
        state = session.state_dict()
    path = save_lora(tmp_path / "face.safetensors", state, {"ss_output_name": "face"})
    expected = dict(kohya.group_state_dict(state))
    engine = tiny_forge_sd(tmp_path / "forge")
    clone, patches, unmatched, accepted = forge_lora_patches(engine.forge_objects.unet, load_file(str(path)), strength)
    assert unmatched == {} and len(accepted) == len(expected) == 48
    from backend import memory_management

    memory_management.load_models_gpu([clone])  # Forge merges on load (LoraLoader.refresh)
    unet = engine.forge_objects.unet.model.diffusion_model
    ldm_unet = model.unet
    for name, w in expected.items():
        path_ = kohya.module_table(ldm_unet)[name]
        merged = unet.get_submodule(path_).weight
        torch.testing.assert_close(merged, ldm_unet.get_submodule(path_).weight + strength * w.delta(), atol=1e-6, rtol=0)
    with torch.no_grad():
        forge_pred = unet(latents, t.float(), context=cond, transformer_options={})
    if strength == 1.0:
        with lora_attached(model, config) as session, torch.no_grad():
            session.load_state_dict(state)
            trained = model.predict(latents, t, cond)
        assert (trained - base).abs().max() > 1e-2  # the LoRA really changes the output
        torch.testing.assert_close(forge_pred, trained, atol=1e-4, rtol=0)
