"""Records the trainer hands back: per-step progress, weight snapshots, and snapshot averaging."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class StepInfo:
    step: int  # 1-based, finished steps
    total: int
    loss: float
    lr: float  # learning rate used for this step
    elapsed: float  # seconds since the first step started (caching excluded)
    eta: float  # seconds left at the current pace


@dataclass(frozen=True)
class Snapshot:
    step: int
    state_dict: dict[str, torch.Tensor]  # kohya keys, CPU float32


@dataclass
class TrainResult:
    naming: str  # "compvis" or "diffusers": the module names inside the kohya keys
    targets: list[str]
    steps: int
    snapshots: list[Snapshot] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def final(self) -> dict[str, torch.Tensor]:
        return self.snapshots[-1].state_dict


def average_snapshots(snapshots: Sequence[Snapshot | dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Average the *effective* LoRA deltas of several snapshots, returned as a kohya state dict.

    Averaging up and down factors separately would not average the weight updates (the product of means is not the
    mean of products). Instead the factors are concatenated along the rank axis, each up factor divided by the
    snapshot count: up_cat @ down_cat = mean(up_i @ down_i). The rank grows to n·r and alpha grows with it, so the
    alpha/rank scale of every snapshot is kept.
    """
    dicts = [s.state_dict if isinstance(s, Snapshot) else s for s in snapshots]
    if not dicts:
        raise ValueError("average_snapshots needs at least one snapshot")
    if len(dicts) == 1:
        return {k: v.clone() for k, v in dicts[0].items()}
    keys = set(dicts[0])
    if any(set(d) != keys for d in dicts):
        raise ValueError("snapshots have different LoRA keys; they must come from the same training run")
    count = len(dicts)
    averaged: dict[str, torch.Tensor] = {}
    for name in sorted({k.partition(".")[0] for k in keys}):
        downs = [d[f"{name}.lora_down.weight"].float() for d in dicts]
        ups = [d[f"{name}.lora_up.weight"].float() for d in dicts]
        scales = [float(d[f"{name}.alpha"]) / d[f"{name}.lora_down.weight"].shape[0] for d in dicts]
        rank = sum(down.shape[0] for down in downs)
        # Bake each snapshot's scale into its up factor, then store alpha = rank so the file's scale is 1.
        averaged[f"{name}.lora_down.weight"] = torch.cat(downs, 0).contiguous()
        averaged[f"{name}.lora_up.weight"] = torch.cat([u * s / count for u, s in zip(ups, scales, strict=True)], 1).contiguous()
        averaged[f"{name}.alpha"] = torch.tensor(float(rank))
    return averaged
