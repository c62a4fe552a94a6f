"""Forge `backend/diffusion_engine/base.py`: `ForgeObjects(unet, clip, vae, clipvision)` with `shallow_copy()`, and the
engine base with the webui-legacy flags (`is_sd1`...), `current_lora_hash = str([])`, `get_first_stage_encoding(x) = x`."""

from __future__ import annotations


class ForgeObjects:
    def __init__(self, unet, clip, vae, clipvision) -> None:
        self.unet, self.clip, self.vae, self.clipvision = unet, clip, vae, clipvision

    def shallow_copy(self) -> ForgeObjects:
        return ForgeObjects(self.unet, self.clip, self.vae, self.clipvision)


class ForgeDiffusionEngine:
    def __init__(self, estimated_config=None) -> None:
        self.model_config = estimated_config
        self.forge_objects = None
        self.forge_objects_original = None
        self.forge_objects_after_applying_lora = None
        self.current_lora_hash = str([])
        self.tiling_enabled = False
        self.first_stage_model = None
        self.cond_stage_model = None
        self.is_sd1 = self.is_sd2 = self.is_sdxl = self.is_sd3 = False

    def get_first_stage_encoding(self, x):
        return x  # Forge: "legacy code, do not change"
