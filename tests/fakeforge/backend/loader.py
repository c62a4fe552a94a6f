"""Forge `backend/loader.py` `forge_loader`, for SD1 parts handed over as objects (no checkpoint file parsing).

What matters from Forge: the whole loader runs under `@torch.inference_mode()`, so the UNet it builds and fills holds
**inference tensors** (no autograd through them outside inference mode); the UNet gets `storage_dtype` and
`computation_dtype`; `UnetPatcher.from_model` wraps it in a KModel with the scheduler's predictor, on the UNet's
load/offload devices; the engine (`StableDiffusion`) gets `CLIP({'clip_l': …})` and `VAE(first stage)`.
"""

from __future__ import annotations

import torch

from backend import memory_management
from backend.diffusion_engine.sd15 import StableDiffusion
from backend.modules.k_model import KModel
from backend.modules.k_prediction import k_prediction_from_diffusers_scheduler
from backend.nn.unet import IntegratedUNet2DConditionModel
from backend.nn.vae import IntegratedAutoencoderKL
from backend.operations import using_forge_operations
from backend.patcher.clip import CLIP
from backend.patcher.unet import UnetPatcher
from backend.patcher.vae import VAE


@torch.inference_mode()
def forge_loader(unet_config: dict, unet_state_dict: dict, autoencoder: torch.nn.Module, text_encoder: torch.nn.Module,
                 tokenizer, scheduler_config: dict, *, dtype: torch.dtype = torch.float32) -> StableDiffusion:
    device = memory_management.get_torch_device()
    # Forge reads the checkpoint file inside this function, so its tensors are inference tensors too.
    unet_state_dict = {k: v.clone() for k, v in unet_state_dict.items()}
    unet = build_unet(unet_config, unet_state_dict, device=device, dtype=dtype)
    kmodel = KModel(unet, k_prediction_from_diffusers_scheduler(scheduler_config))
    patcher = UnetPatcher(kmodel, load_device=device, offload_device=device)
    clip = CLIP(model_dict={"clip_l": text_encoder}, tokenizer_dict={"clip_l": tokenizer})
    vae = VAE(IntegratedAutoencoderKL(autoencoder))
    return StableDiffusion(unet=patcher, clip=clip, vae=vae)


def build_unet(unet_config: dict, state_dict: dict, *, device, dtype: torch.dtype) -> IntegratedUNet2DConditionModel:
    """Forge's `load_huggingface_component` for the UNet: construct with Forge's layers, then load the weights."""
    with using_forge_operations(device=device, dtype=dtype):
        unet = IntegratedUNet2DConditionModel(**unet_config).to(device=device, dtype=dtype)
    missing, unexpected = unet.load_state_dict(state_dict, strict=False)
    if unexpected or [k for k in missing if not k.endswith("dummy")]:
        raise ValueError(f"UNet state dict mismatch: missing {missing[:3]}, unexpected {unexpected[:3]}")
    unet.storage_dtype = unet.computation_dtype = dtype
    return unet
