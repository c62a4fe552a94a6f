"""Kohya-format LoRA keys: the only LoRA format the host's built-in Lora extension reads (HOST_CONTRACT.md §8).

A LoRA on the UNet module at path `a.b.0.c` is stored as three tensors:
`lora_unet_a_b_0_c.lora_down.weight` (rank, in), `.lora_up.weight` (out, rank) and `.alpha` (scalar), with the
delta W = up @ down * alpha / rank. The path is the UNet-relative module path of whichever naming the model has
("compvis" for the host's ldm UNet, "diffusers" for UNet2DConditionModel); the host accepts both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

UNET_PREFIX = "lora_unet_"
DOWN, UP, ALPHA = "lora_down.weight", "lora_up.weight", "alpha"


def kohya_name(module_path: str) -> str:
    """`input_blocks.1.1.transformer_blocks.0.attn1.to_out.0` -> `lora_unet_input_blocks_1_1_..._attn1_to_out_0`."""
    return UNET_PREFIX + module_path.replace(".", "_")


def split_key(key: str) -> tuple[str, str]:
    """`lora_unet_x.lora_down.weight` -> (`lora_unet_x`, `lora_down.weight`); the host splits at the first dot too."""
    name, _, part = key.partition(".")
    return name, part


@dataclass(frozen=True)
class LoraWeights:
    """One module's LoRA factors, as stored in a kohya file."""

    down: torch.Tensor  # (rank, in_features)
    up: torch.Tensor  # (out_features, rank)
    alpha: float | None

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    @property
    def scale(self) -> float:
        """alpha / rank, or 1.0 when the file has no alpha (the host's rule)."""
        return 1.0 if self.alpha is None else self.alpha / self.rank

    def delta(self) -> torch.Tensor:
        return (self.up.float() @ self.down.float()) * self.scale


def to_state_dict(weights: dict[str, LoraWeights]) -> dict[str, torch.Tensor]:
    """Module path -> factors  =>  flat kohya state dict (CPU, contiguous, float32)."""
    state: dict[str, torch.Tensor] = {}
    for path, w in weights.items():
        name = kohya_name(path)
        state[f"{name}.{DOWN}"] = w.down.detach().float().cpu().contiguous().clone()
        state[f"{name}.{UP}"] = w.up.detach().float().cpu().contiguous().clone()
        state[f"{name}.{ALPHA}"] = torch.tensor(float(w.alpha if w.alpha is not None else w.rank))
    return state


def group_state_dict(state: dict[str, torch.Tensor]) -> dict[str, LoraWeights]:
    """Flat kohya state dict => kohya module name -> factors. Raises ValueError on incomplete pairs."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        name, part = split_key(key)
        parts.setdefault(name, {})[part] = tensor
    grouped = {}
    for name, p in parts.items():
        if DOWN not in p or UP not in p:
            raise ValueError(f"LoRA module '{name}' lacks {DOWN} or {UP}")
        alpha = float(p[ALPHA].item()) if ALPHA in p else None
        grouped[name] = LoraWeights(p[DOWN], p[UP], alpha)
    return grouped


def module_table(unet: nn.Module) -> dict[str, str]:
    """kohya module name -> module path, for every Linear/Conv2d in the UNet (what a LoRA key can point at)."""
    table = {}
    for path, module in unet.named_modules():
        if path and isinstance(module, (nn.Linear, nn.Conv2d)):
            table[kohya_name(path)] = path
    return table


def unmatched_keys(state: dict[str, torch.Tensor], unet: nn.Module) -> list[str]:
    """Keys whose module name is not a Linear/Conv2d of `unet`, or whose shapes do not fit it.

    The host ignores unknown keys silently, so every saved file is checked against the model it was trained on.
    """
    table = module_table(unet)
    modules = dict(unet.named_modules())
    bad = []
    for name, w in group_state_dict(state).items():
        path = table.get(name)
        if path is None:
            bad.append(name)
            continue
        module = modules[path]
        if tuple(w.delta().shape) != tuple(module.weight.shape[:2]):
            bad.append(name)
    return sorted(bad)
