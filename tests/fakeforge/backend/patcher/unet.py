"""Forge `backend/patcher/unet.py`: `UnetPatcher`, the `forge_objects.unet` of every Forge engine.

Followed from Forge: `model` is the KModel (`model.diffusion_model` = the UNet module, `model.predictor`);
`clone()` also copies `extra_model_patchers_during_sampling` (a new list) and the ControlNet chain;
`add_extra_torch_module_during_sampling(m, cast_to_unet_dtype=True)` casts `m` to the UNet's dtype, wraps it in a
ModelPatcher with the UNet's load/offload devices and registers it, so sampling (`sampling_prepare`) loads it with the
UNet; `set_transformer_option`, `append_transformer_option`, `add_block_modifier`.
"""

from __future__ import annotations

import copy

import torch

from backend.patcher.base import ModelPatcher


class UnetPatcher(ModelPatcher):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.controlnet_linked_list = None
        self.extra_preserved_memory_during_sampling = 0
        self.extra_model_patchers_during_sampling: list = []
        self.extra_concat_condition = None

    def clone(self):
        n = UnetPatcher(self.model, self.load_device, self.offload_device, self.size, self.current_device)
        n.lora_patches = self.lora_patches.copy()
        n.object_patches = self.object_patches.copy()
        n.model_options = copy.deepcopy(self.model_options)
        n.controlnet_linked_list = self.controlnet_linked_list
        n.extra_preserved_memory_during_sampling = self.extra_preserved_memory_during_sampling
        n.extra_model_patchers_during_sampling = self.extra_model_patchers_during_sampling.copy()
        n.extra_concat_condition = self.extra_concat_condition
        return n

    def add_extra_preserved_memory_during_sampling(self, memory_in_bytes: int) -> None:
        self.extra_preserved_memory_during_sampling += memory_in_bytes

    def add_extra_model_patcher_during_sampling(self, model_patcher: ModelPatcher) -> None:
        self.extra_model_patchers_during_sampling.append(model_patcher)

    def add_extra_torch_module_during_sampling(self, m: torch.nn.Module, cast_to_unet_dtype: bool = True) -> ModelPatcher:
        if cast_to_unet_dtype:
            m.to(self.model.diffusion_model.dtype)
        patcher = ModelPatcher(model=m, load_device=self.load_device, offload_device=self.offload_device)
        self.add_extra_model_patcher_during_sampling(patcher)
        return patcher

    def append_transformer_option(self, k, v, ensure_uniqueness=False) -> None:
        to = self.model_options.setdefault("transformer_options", {})
        if ensure_uniqueness and v in to.get(k, []):
            return
        to.setdefault(k, []).append(v)

    def set_transformer_option(self, k, v) -> None:
        self.model_options.setdefault("transformer_options", {})[k] = v

    def add_block_modifier(self, modifier, ensure_uniqueness=False) -> None:
        self.append_transformer_option("block_modifiers", modifier, ensure_uniqueness)
