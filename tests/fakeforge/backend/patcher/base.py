"""Forge `backend/patcher/base.py`: `ModelPatcher`, the wrapper every Forge model object is handled through.

Followed from Forge: one `lora_loader` per wrapped model (`model.lora_loader`, shared by all clones); `clone()` shares
the model, copies `lora_patches`/`object_patches` and deep-copies `model_options` (so patches set on a clone never
reach the original); `set_model_patch(patch, name)` appends to `model_options["transformer_options"]["patches"][name]`;
`add_object_patch(name, obj)` / `get_model_object(name)`; `add_patches(filename=, patches=, strength_patch=,
strength_model=, online_mode=)` keeps only keys that are parameters of the model and returns them; `refresh_loras()`;
`forge_patch_model(device)` applies object patches (keeping the originals) and moves the model; `forge_unpatch_model`
puts the originals back. Not mimicked: ComfyUI-style `patches_replace` helpers beyond storing them, quantised weights.
"""

from __future__ import annotations

import copy

from backend import memory_management, utils
from backend.patcher.lora import LoraLoader


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, current_device=None, **kwargs) -> None:
        self.size = size or memory_management.module_size(model)
        self.model = model
        self.lora_patches: dict = {}
        self.object_patches: dict = {}
        self.object_patches_backup: dict = {}
        self.model_options: dict = {"transformer_options": {}}
        self.load_device = load_device
        self.offload_device = offload_device
        if not hasattr(model, "lora_loader"):
            model.lora_loader = LoraLoader(model)
        self.lora_loader = model.lora_loader
        self.current_device = offload_device if current_device is None else current_device

    def clone(self):
        n = ModelPatcher(self.model, self.load_device, self.offload_device, self.size, self.current_device)
        n.lora_patches = self.lora_patches.copy()
        n.object_patches = self.object_patches.copy()
        n.model_options = copy.deepcopy(self.model_options)
        return n

    def is_clone(self, other) -> bool:
        return hasattr(other, "model") and self.model is other.model

    def add_patches(self, *, filename, patches, strength_patch=1.0, strength_model=1.0, online_mode=False):
        model_keys = {k for k, _ in self.model.named_parameters()}
        this_patches: dict = {}
        loaded = set()
        for k in patches:
            key, offset = (k, None) if isinstance(k, str) else (k[0], k[1])
            if key in model_keys:
                loaded.add(k)
                this_patches.setdefault(key, []).append([strength_patch, patches[k], strength_model, offset, None])
        self.lora_patches[(filename, strength_patch, strength_model, online_mode)] = this_patches
        return loaded

    def refresh_loras(self) -> None:
        self.lora_loader.refresh(lora_patches=self.lora_patches, offload_device=self.offload_device)

    def set_model_patch(self, patch, name: str) -> None:
        to = self.model_options["transformer_options"]
        to.setdefault("patches", {})
        to["patches"][name] = to["patches"].get(name, []) + [patch]

    def set_model_attn1_patch(self, patch) -> None:
        self.set_model_patch(patch, "attn1_patch")

    def set_model_attn2_patch(self, patch) -> None:
        self.set_model_patch(patch, "attn2_patch")

    def set_model_attn1_output_patch(self, patch) -> None:
        self.set_model_patch(patch, "attn1_output_patch")

    def set_model_attn2_output_patch(self, patch) -> None:
        self.set_model_patch(patch, "attn2_output_patch")

    def set_model_input_block_patch(self, patch) -> None:
        self.set_model_patch(patch, "input_block_patch")

    def set_model_output_block_patch(self, patch) -> None:
        self.set_model_patch(patch, "output_block_patch")

    def add_object_patch(self, name: str, obj) -> None:
        self.object_patches[name] = obj

    def get_model_object(self, name: str):
        if name in self.object_patches:
            return self.object_patches[name]
        if name in self.object_patches_backup:
            return self.object_patches_backup[name]
        return utils.get_attr(self.model, name)

    def model_patches_to(self, device) -> None:
        patches = self.model_options["transformer_options"].get("patches", {})
        for patch_list in patches.values():
            for i, patch in enumerate(patch_list):
                if hasattr(patch, "to"):
                    patch_list[i] = patch.to(device)

    def model_dtype(self):
        return self.model.get_dtype() if hasattr(self.model, "get_dtype") else None

    def forge_patch_model(self, target_device=None):
        for key, item in self.object_patches.items():
            self.object_patches_backup.setdefault(key, utils.get_attr(self.model, key))
            utils.set_attr_raw(self.model, key, item)
        if target_device is not None:
            self.model.to(target_device)
            self.current_device = target_device
        return self.model

    def forge_unpatch_model(self, target_device=None) -> None:
        if target_device is not None:
            self.model.to(target_device)
            self.current_device = target_device
        for key, value in self.object_patches_backup.items():
            utils.set_attr_raw(self.model, key, value)
        self.object_patches_backup = {}
