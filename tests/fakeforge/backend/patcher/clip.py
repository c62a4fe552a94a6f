"""Forge `backend/patcher/clip.py` `CLIP`: `forge_objects.clip` = `cond_stage_model` (a ModuleDict of text encoders,
`clip_l` for SD1), `tokenizer` (dict-like), `patcher` (a ModelPatcher over `cond_stage_model`)."""

from __future__ import annotations

import torch

from backend import memory_management
from backend.patcher.base import ModelPatcher


class CLIP:
    def __init__(self, model_dict: dict, tokenizer_dict: dict) -> None:
        self.cond_stage_model = torch.nn.ModuleDict(model_dict)
        self.tokenizer = dict(tokenizer_dict)
        device = memory_management.get_torch_device()
        self.patcher = ModelPatcher(self.cond_stage_model, load_device=device, offload_device=device)
