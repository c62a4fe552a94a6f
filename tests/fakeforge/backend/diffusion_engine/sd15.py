"""Forge `backend/diffusion_engine/sd15.py` `StableDiffusion` (the `shared.sd_model` of an SD1.5 checkpoint).

Followed from Forge: `forge_objects` / `forge_objects_original` / `forge_objects_after_applying_lora` (shallow copies);
`is_sd1 = True`; `get_learned_conditioning(prompts)` loads the CLIP patcher and returns (B, 77·k, 768) under
`torch.inference_mode()`; `encode_first_stage(x)` takes (B, 3, H, W) in [-1, 1], encodes through `forge_objects.vae`
and returns the *scaled* latent (`process_in`) under `torch.inference_mode()`; `decode_first_stage` the inverse.
The stand-in's text engine is one 77-token chunk with the final layer norm (SD1: `final_layer_norm=True`, clip skip 1);
Forge's emphasis parsing and 75-token chunking are not mimicked.
"""

from __future__ import annotations

import torch

from backend import memory_management
from backend.diffusion_engine.base import ForgeDiffusionEngine, ForgeObjects


class StableDiffusion(ForgeDiffusionEngine):
    def __init__(self, unet, clip, vae, estimated_config=None) -> None:
        super().__init__(estimated_config)
        self.forge_objects = ForgeObjects(unet=unet, clip=clip, vae=vae, clipvision=None)
        self.forge_objects_original = self.forge_objects.shallow_copy()
        self.forge_objects_after_applying_lora = self.forge_objects.shallow_copy()
        self.is_sd1 = True

    @torch.inference_mode()
    def get_learned_conditioning(self, prompt: list[str]):
        clip = self.forge_objects.clip
        memory_management.load_model_gpu(clip.patcher)
        tokens = clip.tokenizer["clip_l"](list(prompt), padding="max_length", max_length=77, truncation=True,
                                          return_tensors="pt")
        encoder = clip.cond_stage_model["clip_l"]
        return encoder(tokens.input_ids.to(next(encoder.parameters()).device))[0]

    @torch.inference_mode()
    def encode_first_stage(self, x):
        sample = self.forge_objects.vae.encode(x.movedim(1, -1) * 0.5 + 0.5)
        return self.forge_objects.vae.first_stage_model.process_in(sample).to(x)

    @torch.inference_mode()
    def decode_first_stage(self, x):
        sample = self.forge_objects.vae.first_stage_model.process_out(x)
        return (self.forge_objects.vae.decode(sample).movedim(-1, 1) * 2.0 - 1.0).to(x)
