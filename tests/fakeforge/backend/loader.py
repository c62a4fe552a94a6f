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
from backend.patcher.clip import CLIP
from backend.patcher.unet import UnetPatcher
from backend.patcher.vae import VAE


@torch.inference_mode()
def forge_loader(unet_config: dict, unet_state_dict: dict, autoencoder: torch.nn.Module, text_encoder: torch.nn.Module,
                 tokenizer, scheduler_config: dict, *, dtype: torch.dtype = torch.float32) -> StableDiffusion:
    unet = IntegratedUNet2DConditionModel(**unet_config)
    unet.load_state_dict(unet_state_dict)
    unet.to(dtype)
    unet.storage_dtype = unet.computation_dtype = dtype
    device = memory_management.get_torch_device()
    kmodel = KModel(unet, k_prediction_from_diffusers_scheduler(scheduler_config))
    patcher = UnetPatcher(kmodel, load_device=device, offload_device=device)
    clip = CLIP(model_dict={"clip_l": text_encoder}, tokenizer_dict={"clip_l": tokenizer})
    vae = VAE(IntegratedAutoencoderKL(autoencoder))
    return StableDiffusion(unet=patcher, clip=clip, vae=vae)
