"""The LoRA training loop: cache once, then only UNet forward/backward per step.

Latents of `augment_variants` augmented copies of every photo and the embeddings of every distinct caption are
computed before the first step, so neither the VAE nor the text encoder runs inside the loop (the main cost of a
naive loop besides the UNet, see benchmarks/train.py). Each step draws a cached latent, a uniform timestep and
Gaussian noise from a seeded generator, and regresses the UNet prediction onto ε or v.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from PIL import Image

from facechain_ext.diffusion.family import require_family
from facechain_ext.errors import FaceChainError
from facechain_ext.lora.augment import augmented_variants, to_pixels
from facechain_ext.lora.config import TrainConfig
from facechain_ext.lora.inject import LoraSession, lora_attached
from facechain_ext.lora.schedule import make_optimizer, precision_plan
from facechain_ext.lora.snapshots import Snapshot, StepInfo, TrainResult

# Images per VAE call while caching. One at a time on CPU keeps the peak no higher than a plain loop's; a few at
# once on a GPU use it better at little memory cost.
CPU_ENCODE_CHUNK, GPU_ENCODE_CHUNK = 1, 4


@dataclass
class TrainingData:
    """Cached inputs: latents (photos, variants, C, h, w) and one conditioning tensor per photo."""

    latents: torch.Tensor
    conds: list[torch.Tensor] = field(default_factory=list)

    @property
    def photo_count(self) -> int:
        return int(self.latents.shape[0])


def _check_items(items: Sequence[tuple[Image.Image, str]]) -> None:
    if not items:
        raise FaceChainError("no_usable_photos", "There are no training photos: prepare the identity first.")
    for index, item in enumerate(items):
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], Image.Image) and isinstance(item[1], str)):
            raise FaceChainError("invalid_request", f"Training item {index} must be an (image, caption) pair.", index=index)


def prepare_data(model, items: Sequence[tuple[Image.Image, str]], config: TrainConfig) -> TrainingData:
    """Encode every augmented variant and every distinct caption once (no gradients, chunked)."""
    rng = random.Random(config.seed)
    images = [variant for image, _ in items for variant in augmented_variants(image, config, rng)]
    chunks = []
    chunk = GPU_ENCODE_CHUNK if model.device.type == "cuda" else CPU_ENCODE_CHUNK
    for start in range(0, len(images), chunk):
        pixels = to_pixels(images[start:start + chunk])
        chunks.append(model.encode_images(pixels, seed=config.seed + start).to(model.device))
    latents = torch.cat(chunks).reshape(len(items), config.augment_variants, *chunks[0].shape[1:])
    captions = sorted({caption for _, caption in items})
    embedded = dict(zip(captions, model.encode_prompts(captions).split(1), strict=True))
    return TrainingData(latents=latents, conds=[embedded[caption].to(model.device) for _, caption in items])


class _Sampler:
    """Seeded draws of (photo, variant, timestep, noise); photos are visited in shuffled epochs."""

    def __init__(self, data: TrainingData, config: TrainConfig, timesteps: int) -> None:
        self.data, self.config, self.timesteps = data, config, timesteps
        self.rng = random.Random(config.seed + 1)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.order: list[int] = []

    def _next_photo(self) -> int:
        if not self.order:
            self.order = list(range(self.data.photo_count))
            self.rng.shuffle(self.order)
        return self.order.pop()

    def draw(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        photos = [self._next_photo() for _ in range(self.config.batch_size)]
        variants = [self.rng.randrange(self.config.augment_variants) for _ in photos]
        latents = torch.stack([self.data.latents[p, v] for p, v in zip(photos, variants, strict=True)])
        cond = torch.cat([self.data.conds[p] for p in photos])
        t = torch.randint(0, self.timesteps, (len(photos),), generator=self.generator)
        noise = torch.randn(latents.shape, generator=self.generator)
        return latents, cond, t.to(latents.device), noise.to(latents.device)


def diffusion_loss(model, latents, cond, t, noise, alphas_cumprod) -> torch.Tensor:
    """MSE between the model's prediction and its target (ε, or v = √ᾱ·ε − √(1−ᾱ)·x0) at timesteps t."""
    abar = alphas_cumprod[t].view(-1, 1, 1, 1)
    noisy = abar.sqrt() * latents + (1 - abar).sqrt() * noise
    target = noise if model.prediction_type == "epsilon" else abar.sqrt() * noise - (1 - abar).sqrt() * latents
    prediction = model.predict(noisy, t, cond)
    return torch.nn.functional.mse_loss(prediction.float(), target.float())


def _step_info(step: int, total: int, loss: float, lr: float, started: float) -> StepInfo:
    elapsed = time.monotonic() - started
    return StepInfo(step=step, total=total, loss=loss, lr=lr, elapsed=elapsed, eta=elapsed / step * (total - step))


def _run_loop(model, session: LoraSession, data: TrainingData, config: TrainConfig, total: int,
              on_step: Callable[[StepInfo], None] | None, should_stop: Callable[[], bool] | None) -> TrainResult:
    params = session.parameters()
    optimizer, scheduler = make_optimizer(params, config, total)
    autocast_dtype, scaler = precision_plan(model, config)
    alphas = model.alphas_cumprod.to(model.device)
    sampler = _Sampler(data, config, int(alphas.shape[0]))
    result = TrainResult(naming=model.naming, targets=list(session.targets), steps=total)
    started = time.monotonic()
    for step in range(1, total + 1):
        if should_stop is not None and should_stop():
            raise FaceChainError("cancelled", f"Training was cancelled at step {step - 1} of {total}.", step=step - 1, total=total)
        latents, cond, t, noise = sampler.draw()
        autocast = torch.autocast(model.device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
        with torch.enable_grad(), autocast:
            loss = diffusion_loss(model, latents, cond, t, noise, alphas)
        if not torch.isfinite(loss):
            raise FaceChainError("training_failed", f"The loss became {loss.item()} at step {step}; lower the learning "
                                 "rate or turn mixed precision off.", step=step)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        result.losses.append(float(loss.item()))
        if step == total or (config.snapshot_every and step % config.snapshot_every == 0):
            result.snapshots.append(Snapshot(step=step, state_dict=session.state_dict()))
        if on_step is not None:
            on_step(_step_info(step, total, result.losses[-1], lr, started))
    result.elapsed = time.monotonic() - started
    return result


def train_lora(
    model,
    items: Sequence[tuple[Image.Image, str]],
    config: TrainConfig | None = None,
    *,
    on_step: Callable[[StepInfo], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train a UNet LoRA on (photo, caption) pairs; the model is restored exactly afterwards, also on errors.

    Returns kohya-named snapshots (CPU) every `config.snapshot_every` steps plus the final step, and the loss per
    step. `should_stop()` is polled before every step; when it returns True the model is restored and
    FaceChainError("cancelled") is raised. Nothing is written to disk here (see io.save_lora).
    """
    config = (config or TrainConfig()).validate()
    _check_items(items)
    require_family(model, ("sd1",), purpose="FaceChain face LoRAs")
    total = config.total_steps(len(items))
    data = prepare_data(model, items, config)
    if should_stop is not None and should_stop():
        raise FaceChainError("cancelled", f"Training was cancelled before step 1 of {total}.", step=0, total=total)
    with lora_attached(model, config) as session:
        return _run_loop(model, session, data, config, total, on_step, should_stop)
