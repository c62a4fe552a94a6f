"""Forge `backend/memory_management.py`, CPU only (`--always-cpu`): the loaded-model list and its rules.

Followed from Forge: `load_models_gpu(models, memory_required, hard_memory_preservation)` wraps each ModelPatcher in a
`LoadedModel` (equal when the patcher is the same object); an already-loaded patcher only moves to the front, a new one
first unloads its clones (`unload_model_clones`: same `.model`), then `model_load` = `forge_patch_model(load_device)`
(object patches applied, module moved) and `refresh_loras()` (LoRA weights merged or restored). `unload_all_models()`
= `free_memory(1e30, device, free_all=True)`: every model is unloaded (`forge_unpatch_model(offload_device)`).
Not mimicked: VRAM accounting, partial (low-VRAM) loading, pinned memory.
"""

from __future__ import annotations

import torch

current_loaded_models: list = []  # Forge keeps this module-level list too


def get_torch_device() -> torch.device:
    return torch.device("cpu")


def module_size(module: torch.nn.Module) -> int:
    return sum(t.nelement() * t.element_size() for t in module.state_dict().values())


class LoadedModel:
    def __init__(self, model) -> None:
        self.model = model
        self.device = model.load_device
        self.real_model = None

    def model_load(self):
        self.model.model_patches_to(self.device)
        self.real_model = self.model.forge_patch_model(self.device)
        self.model.current_device = self.model.load_device
        self.model.refresh_loras()
        return self.real_model

    def model_unload(self, avoid_model_moving: bool = False) -> None:
        if avoid_model_moving:
            self.model.forge_unpatch_model()
        else:
            self.model.forge_unpatch_model(self.model.offload_device)
            self.model.model_patches_to(self.model.offload_device)

    def __eq__(self, other) -> bool:
        return self.model is other.model


def unload_model_clones(model) -> None:
    for index in reversed([i for i, loaded in enumerate(current_loaded_models) if model.is_clone(loaded.model)]):
        current_loaded_models.pop(index).model_unload(avoid_model_moving=True)


def free_memory(memory_required, device, keep_loaded=(), free_all: bool = False) -> None:
    for index in range(len(current_loaded_models) - 1, -1, -1):
        loaded = current_loaded_models[index]
        if loaded.device == device and loaded not in keep_loaded and (free_all or memory_required > 0):
            current_loaded_models.pop(index).model_unload()


def load_models_gpu(models, memory_required=0, hard_memory_preservation=0) -> None:
    to_load = []
    for model in models:
        loaded = LoadedModel(model)
        if loaded in current_loaded_models:
            current_loaded_models.insert(0, current_loaded_models.pop(current_loaded_models.index(loaded)))
        else:
            to_load.append(loaded)
    for loaded in to_load:
        unload_model_clones(loaded.model)
    for loaded in to_load:
        loaded.model_load()
        current_loaded_models.insert(0, loaded)


def load_model_gpu(model) -> None:
    load_models_gpu([model])


def unload_all_models() -> None:
    free_memory(1e30, get_torch_device(), free_all=True)
