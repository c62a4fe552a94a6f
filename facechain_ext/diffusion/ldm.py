"""Adapter for the host's loaded ldm `LatentDiffusion` object (A1111 `shared.sd_model`).

Training runs on the very model the webui already holds: no second copy, nothing loaded from disk. Only the public
ldm methods the host itself uses for textual-inversion training are called (HOST_CONTRACT.md §5).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from facechain_ext.diffusion.base import prediction_type_from_ldm, require_trainable
from facechain_ext.diffusion.family import model_family


def _checkpoint_name(sd_model: Any) -> str:
    info = getattr(sd_model, "sd_checkpoint_info", None)
    return str(getattr(info, "title", None) or getattr(info, "name", None) or "the loaded checkpoint")


def _rng_devices(device: torch.device) -> list[torch.device]:
    return [device] if device.type == "cuda" else []


class LdmModel:
    """`DiffusionModel` over an ldm LatentDiffusion: UNet = `sd_model.model.diffusion_model`, compvis names."""

    naming = "compvis"

    def __init__(self, sd_model: Any) -> None:
        self.sd_model = sd_model
        self.checkpoint_name = _checkpoint_name(sd_model)
        self.unet: nn.Module = sd_model.model.diffusion_model
        self.family = model_family(sd_model)  # host flags, else the cross-attention width
        self.is_sd1 = self.family == "sd1"
        require_trainable(self.family, int(getattr(self.unet, "in_channels", 4)), self.checkpoint_name)
        self.prediction_type = prediction_type_from_ldm(getattr(sd_model, "parameterization", "eps"), self.checkpoint_name)
        first = next(self.unet.parameters())
        self.device: torch.device = first.device
        self.dtype: torch.dtype = first.dtype

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return self.sd_model.alphas_cumprod.detach().float()

    def _vae_dtype(self) -> torch.dtype:
        vae = getattr(self.sd_model, "first_stage_model", None)
        params = list(vae.parameters())[:1] if isinstance(vae, nn.Module) else []
        return params[0].dtype if params else self.dtype

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
        posterior = self.sd_model.encode_first_stage(pixels.to(self.device, self._vae_dtype()))
        # get_first_stage_encoding samples with the global RNG: fork it so training is reproducible and the
        # host's RNG state is left untouched.
        with torch.random.fork_rng(devices=_rng_devices(self.device)):
            torch.manual_seed(seed)
            latents = self.sd_model.get_first_stage_encoding(posterior)
        return latents.float()

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        cond = self.sd_model.get_learned_conditioning(list(prompts))
        return cond.detach()

    def predict(self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.sd_model.apply_model(noisy.to(self.dtype), timesteps, cond.to(self.dtype))
