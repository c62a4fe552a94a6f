"""Forge `backend/patcher/vae.py` `VAE`: `forge_objects.vae`.

Followed from Forge: `first_stage_model`, `patcher` (a ModelPatcher), `latent_channels`; `encode(pixels)` takes
(B, H, W, 3) in [0, 1], loads the VAE with `load_models_gpu([patcher])`, encodes `2·p − 1` channel-first and returns
float latents (not yet scaled: the engine's `encode_first_stage` applies `process_in`); `decode(z)` → (B, H, W, 3) in [0, 1].
"""

from __future__ import annotations

import torch

from backend import memory_management
from backend.patcher.base import ModelPatcher


class VAE:
    def __init__(self, model: torch.nn.Module) -> None:
        self.first_stage_model = model.eval()
        self.latent_channels = int(model.config.latent_channels)
        device = memory_management.get_torch_device()
        self.patcher = ModelPatcher(self.first_stage_model, load_device=device, offload_device=device)

    def encode(self, pixel_samples: torch.Tensor) -> torch.Tensor:
        memory_management.load_models_gpu([self.patcher])
        pixels = (2.0 * pixel_samples.movedim(-1, 1) - 1.0).to(next(self.first_stage_model.parameters()).dtype)
        return self.first_stage_model.encode(pixels).float()

    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        memory_management.load_models_gpu([self.patcher])
        pixels = self.first_stage_model.decode(samples.to(next(self.first_stage_model.parameters()).dtype)).float()
        return torch.clamp((pixels + 1.0) / 2.0, 0.0, 1.0).movedim(1, -1)
