"""Adapter for diffusers components (UNet2DConditionModel, AutoencoderKL, CLIP text encoder, noise scheduler).

Used by the CLI and tests; module paths are diffusers names, so saved LoRA keys are kohya keys with diffusers paths
(which the host converts to its compvis names on load).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from facechain_ext.diffusion.base import require_trainable
from facechain_ext.diffusion.family import model_family
from facechain_ext.errors import FaceChainError


class DiffusersModel:
    """`DiffusionModel` over diffusers components; the family comes from the UNet's cross-attention width unless
    `is_sd1` says it (tests with tiny UNets)."""

    naming = "diffusers"

    def __init__(
        self,
        unet: nn.Module,
        vae: nn.Module,
        text_encoder: nn.Module,
        tokenizer: Any,
        noise_scheduler: Any,
        *,
        checkpoint_name: str = "diffusers model",
        is_sd1: bool | None = None,
    ) -> None:
        self.unet, self.vae, self.text_encoder, self.tokenizer = unet, vae, text_encoder, tokenizer
        self.noise_scheduler = noise_scheduler
        self.checkpoint_name = checkpoint_name
        config = unet.config
        if is_sd1 is None:
            self.family = model_family(unet)
        else:
            self.family = "sd1" if is_sd1 else "unknown"
        self.is_sd1 = self.family == "sd1"
        require_trainable(self.family, int(config.in_channels), checkpoint_name)
        prediction = noise_scheduler.config.prediction_type
        if prediction not in ("epsilon", "v_prediction"):
            raise FaceChainError(
                "unsupported_model",
                f"Model '{checkpoint_name}' predicts '{prediction}'; only epsilon and v_prediction can be trained.",
                checkpoint=checkpoint_name,
            )
        self.prediction_type = prediction
        first = next(unet.parameters())
        self.device: torch.device = first.device
        self.dtype: torch.dtype = first.dtype

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return self.noise_scheduler.alphas_cumprod.detach().float()

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
        vae_param = next(self.vae.parameters())
        posterior = self.vae.encode(pixels.to(vae_param.device, vae_param.dtype)).latent_dist
        generator = torch.Generator(device=vae_param.device).manual_seed(seed)
        latents = posterior.sample(generator=generator) * self.vae.config.scaling_factor
        return latents.float()

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(
            list(prompts),
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        device = next(self.text_encoder.parameters()).device
        return self.text_encoder(tokens.input_ids.to(device))[0].detach()

    def predict(self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.unet(noisy.to(self.dtype), timesteps, encoder_hidden_states=cond.to(self.dtype)).sample
