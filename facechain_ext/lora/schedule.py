"""Optimizer, learning-rate schedule and precision choice for the LoRA trainer."""

from __future__ import annotations

import math

import torch

from facechain_ext.lora.config import TrainConfig


def make_optimizer(params: list[torch.nn.Parameter], config: TrainConfig, total: int):
    """AdamW over the LoRA parameters with cosine decay to 0 (after optional linear warm-up), or constant."""
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, betas=config.adam_betas, eps=config.adam_eps,
                                  weight_decay=config.weight_decay)

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.lr_scheduler == "constant":
            return 1.0
        progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def precision_plan(model, config: TrainConfig) -> tuple[torch.dtype | None, torch.cuda.amp.GradScaler]:
    """(autocast dtype or None, grad scaler). Mixed precision only on CUDA; the scaler is active for fp16 math."""
    cuda = model.device.type == "cuda"
    dtype: torch.dtype | None = None
    if cuda and config.mixed_precision != "no":
        if config.mixed_precision == "bf16" or (config.mixed_precision == "auto" and torch.cuda.is_bf16_supported()):
            dtype = torch.bfloat16
        else:
            dtype = torch.float16
    fp16_math = cuda and (dtype == torch.float16 or model.dtype == torch.float16)
    # torch.cuda.amp.GradScaler: torch.amp.GradScaler does not exist in the host's torch 2.1.2; fp16_math is only
    # ever True on CUDA, and a disabled scaler passes losses and steps through unchanged on any device.
    return dtype, torch.cuda.amp.GradScaler(enabled=fp16_math)
