"""Functional check that training learns the person: real face crops, tiny host-like model, fixed noise.

The tiny UNet first gets a short full fine-tune on *other* people's crops, standing in for what a real SD checkpoint
already knows (a generic face denoiser); otherwise the LoRA spends its steps on generic denoising that helps every
photo equally. Then a LoRA is trained with our trainer on 3 photos of one identity, and the denoising loss (fixed
noise and timesteps) must drop clearly on those crops and much less on photos of other people.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from tiny_models import TinyLatentDiffusion

from facechain_ext.diffusion.ldm import LdmModel
from facechain_ext.lora.augment import to_pixels
from facechain_ext.lora.config import TrainConfig
from facechain_ext.lora.inject import lora_attached
from facechain_ext.lora.trainer import diffusion_loss, train_lora

SIZE = 64
CAPTION = "a photo of fcsks person"
TARGET = "deepface_angelina"
OTHERS = ["obama", "deepface_p03", "deepface_p05"]  # evaluated, never trained on
GENERIC = ["deepface_p06", "deepface_p09", "biden", "tom_hanks", "kit_harington", "deepface_p10", "lin_manuel_miranda"]


def face_crop(path: str, detector: cv2.CascadeClassifier) -> Image.Image | None:
    """Largest frontal face -> square crop with FaceChain-like framing (face ≈ 0.45 of the side), SIZE px."""
    image = Image.open(path).convert("RGB")
    image.thumbnail((320, 320))
    gray = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2GRAY)
    faces = detector.detectMultiScale(gray, 1.1, 5, minSize=(24, 24))
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
    side, cx, cy = w / 0.45, x + w / 2, y + h / 2
    box = (cx - side / 2, cy - 0.42 * side, cx + side / 2, cy + 0.58 * side)
    return image.crop(tuple(int(round(v)) for v in box)).resize((SIZE, SIZE), Image.BICUBIC)


def crops_by_identity(faces_table: list[dict], names: set[str]) -> dict[str, list[Image.Image]]:
    detector = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"))
    crops = defaultdict(list)
    for row in faces_table:
        if row["identity"] in names:
            crop = face_crop(row["file"], detector)
            if crop is not None:
                crops[row["identity"]].append(crop)
    return crops


def pretrain_generic(model: LdmModel, images: list[Image.Image], steps: int = 150, batch: int = 8) -> None:
    """Full fine-tune of the tiny UNet on generic faces (the 'pretrained checkpoint')."""
    latents = model.encode_images(to_pixels(images), seed=0)
    cond = model.encode_prompts([CAPTION])
    optimizer = torch.optim.Adam(model.unet.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        idx = torch.randint(0, len(images), (batch,), generator=g)
        t = torch.randint(0, 1000, (batch,), generator=g)
        noise = torch.randn(latents[idx].shape, generator=g)
        diffusion_loss(model, latents[idx], cond.expand(batch, -1, -1), t, noise, model.alphas_cumprod).backward()
        optimizer.step()
        optimizer.zero_grad()
    model.unet.requires_grad_(False)


def denoising_loss(model: LdmModel, images: list[Image.Image], config: TrainConfig, lora: dict | None = None) -> float:
    latents = model.encode_images(to_pixels(images), seed=0)
    cond = model.encode_prompts([CAPTION]).expand(len(images), -1, -1)
    g = torch.Generator().manual_seed(0)  # same noise for every model and image set
    losses = []
    with (lora_attached(model, config) if lora else contextlib.nullcontext()) as session, torch.no_grad():
        if lora:
            session.load_state_dict(lora)
        for t in range(100, 1000, 100):
            noise = torch.randn(latents.shape, generator=g)
            timesteps = torch.full((len(images),), t)
            losses.append(diffusion_loss(model, latents, cond, timesteps, noise, model.alphas_cumprod).item())
    return float(np.mean(losses))


def test_lora_learns_the_identity_more_than_other_people(faces_table, tmp_path):
    crops = crops_by_identity(faces_table, {TARGET, *OTHERS, *GENERIC})
    target = crops[TARGET][:3]
    others = [c for name in OTHERS for c in crops[name][:2]]
    generic = [c for name in GENERIC for c in crops[name]]
    assert len(target) == 3 and len(others) == 6 and len(generic) >= 12, "face crops missing from ../shared/data"

    model = LdmModel(TinyLatentDiffusion(tmp_path))
    pretrain_generic(model, generic)
    # No augmentation: the evaluated crops are exactly the trained ones.
    config = TrainConfig(resolution=SIZE, steps=300, learning_rate=1e-2, rank=16, alpha=16.0, augment_variants=1,
                         flip=False, snapshot_every=0)
    result = train_lora(model, [(crop, CAPTION) for crop in target], config)

    base_target, base_others = denoising_loss(model, target, config), denoising_loss(model, others, config)
    lora_target = denoising_loss(model, target, config, result.final)
    lora_others = denoising_loss(model, others, config, result.final)
    gain_target = (base_target - lora_target) / base_target
    gain_others = (base_others - lora_others) / base_others
    print(f"relative loss drop: trained identity {gain_target:.1%}, other people {gain_others:.1%}")
    assert gain_target > 0.06, (base_target, lora_target)
    assert gain_target - gain_others > 0.05, (gain_target, gain_others)
