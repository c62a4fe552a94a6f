"""Training recipe: one frozen dataclass plus the "fast" and "quality" presets.

Grounded in the published FaceChain train-based recipe (FACECHAIN_FACTS.md §2): SD1.5, 512 px, flip + face-crop
jitter, batch 1, AdamW (wd 1e-2), lr 1.5e-4 cosine without warm-up, grad-clip 1.0, ε-MSE with uniform timesteps,
rank-4 LoRA on to_q/to_k/to_v/to_out.0 of attn1+attn2, 200 steps per photo, snapshot every 100 steps. "quality"
moves toward EasyPhoto (higher rank, alpha = rank/2, more augmented variants); "fast" halves the steps.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from facechain_ext.errors import FaceChainError

MixedPrecision = Literal["auto", "no", "fp16", "bf16"]

# Bounds of every option a user may set (API schema, tab, CLI), checked when a training is submitted. Wide enough
# for every published recipe (FaceChain: rank 4, lr 1.5e-4, 200 steps/photo capped at 3000; EasyPhoto: rank 128,
# alpha 64, lr 1e-4), narrow enough that nonsense (rank 1000 on 320-wide projections, lr 5) fails at once.
STEPS_RANGE = (1, 10_000)
RANK_RANGE = (1, 128)
ALPHA_MAX = 256.0  # alpha > 0; the LoRA scale is alpha / rank
LEARNING_RATE_RANGE = (1e-6, 1e-2)
RESOLUTION_RANGE = (64, 1024)  # and a multiple of 8 (the VAE's downsampling factor)
SEED_RANGE = (0, 2**32 - 1)  # the host's seeds are 32-bit too (processing.get_fixed_seed)
SNAPSHOT_EVERY_RANGE = (0, 10_000)


@dataclass(frozen=True)
class TrainConfig:
    rank: int = 4
    alpha: float = 4.0  # kohya/peft scale = alpha / rank
    learning_rate: float = 1.5e-4
    lr_scheduler: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int = 0
    weight_decay: float = 1e-2
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    steps_per_photo: int = 200
    steps: int | None = None  # explicit total overrides steps_per_photo
    min_steps: int = 50
    max_steps: int = 3000
    batch_size: int = 1
    resolution: int = 512
    flip: bool = True
    crop_jitter: bool = True
    face_ratio: tuple[float, float] = (0.35, 0.45)  # FaceChain crop ratios the jitter stays within
    face_center_y: tuple[float, float] = (0.35, 0.50)
    augment_variants: int = 4  # augmented copies per photo, encoded once up front
    seed: int = 42
    snapshot_every: int = 100  # 0 = only the final weights
    mixed_precision: MixedPrecision = "auto"  # auto: bf16/fp16 autocast on CUDA, fp32 on CPU
    gradient_checkpointing: bool = False
    target_modules: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")
    attention_layers: tuple[str, ...] = ("attn1", "attn2")
    # Text-encoder LoRA is not implemented (captions are embedded once and cached, and the host's hijacked text
    # encoder is shared with generation); True is refused by validate() rather than silently ignored.
    train_text_encoder: bool = False

    def total_steps(self, photo_count: int) -> int:
        if self.steps is not None:
            return self.steps
        return max(self.min_steps, min(self.max_steps, self.steps_per_photo * max(photo_count, 1)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> TrainConfig:
        _in_range("rank", self.rank, *RANK_RANGE)
        _check(_finite(self.alpha) and 0 < self.alpha <= ALPHA_MAX, "alpha", self.alpha,
               f"must be a number above 0 and at most {ALPHA_MAX:g}")
        _in_range("learning_rate", self.learning_rate, *LEARNING_RATE_RANGE)
        if self.steps is not None:
            _in_range("steps", self.steps, *STEPS_RANGE)
        _in_range("resolution", self.resolution, *RESOLUTION_RANGE)
        _check(self.resolution % 8 == 0, "resolution", self.resolution, "must be a multiple of 8")
        # seed, seed + 1 and seed + photo index feed random.Random and torch.Generator (uint64); the host draws its
        # own seeds below 2**32 (modules/processing.py get_fixed_seed)
        _check(isinstance(self.seed, int), "seed", self.seed, "must be a whole number")
        _in_range("seed", self.seed, *SEED_RANGE)
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "must be at least 1")
        _check(self.augment_variants >= 1, "augment_variants", self.augment_variants, "must be at least 1")
        _in_range("snapshot_every", self.snapshot_every, *SNAPSHOT_EVERY_RANGE)
        _check(self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm, "must be positive")
        _check(bool(self.target_modules) and bool(self.attention_layers), "target_modules", self.target_modules,
               "needs at least one projection and one attention layer")
        _check(self.mixed_precision in ("auto", "no", "fp16", "bf16"), "mixed_precision", self.mixed_precision,
               "must be auto, no, fp16 or bf16")
        _check(not self.train_text_encoder, "train_text_encoder", self.train_text_encoder,
               "is not supported yet: FaceChain trains UNet LoRA only (as the original recipe does)")
        return self


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _in_range(field: str, value: Any, low: float, high: float) -> None:
    _check(_finite(value) and low <= value <= high, field, value, f"must be between {low} and {high}")


def _check(ok: bool, field: str, value: Any, reason: str) -> None:
    if not ok:
        raise FaceChainError("invalid_request", f"Training option '{field}'={value!r} {reason}.", field=field, value=value)


PRESETS: dict[str, TrainConfig] = {
    "fast": TrainConfig(steps_per_photo=100, max_steps=1000, learning_rate=2e-4, augment_variants=4, snapshot_every=100),
    "quality": TrainConfig(rank=16, alpha=8.0, steps_per_photo=200, max_steps=3000, augment_variants=8, snapshot_every=100),
}


def make_config(preset: str = "fast", **overrides: Any) -> TrainConfig:
    """Preset + user overrides (None values are ignored, so API/UI fields can pass through), validated."""
    if preset not in PRESETS:
        raise FaceChainError("invalid_request", f"Unknown training preset '{preset}'; choose one of {sorted(PRESETS)}.",
                             field="preset", value=preset)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise FaceChainError("invalid_request", f"Unknown training option(s): {', '.join(unknown)}.", fields=unknown)
    values = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(PRESETS[preset], **values).validate()
