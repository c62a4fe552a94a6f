"""Training-time augmentation of the prepared face crops: face-crop jitter and horizontal flip.

The prep step already centres the face the FaceChain way (face side ≈ 0.35–0.45 of the crop, face centre at
0.35–0.50 of the height). Jitter re-crops a random sub-square whose zoom spans exactly that ratio range
(hi/lo ≈ 1.29), so a crop at the low ratio can become one at the high ratio, and whose position moves the face
within the margin this zoom leaves; then it is resized back to the training resolution.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from PIL import Image, ImageOps

from facechain_ext.lora.config import TrainConfig


def square_resize(image: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square and resize to `size` (prep crops are square already; this guards other input)."""
    image = image.convert("RGB")
    if image.size != (size, size):
        image = ImageOps.fit(image, (size, size), method=Image.BICUBIC, centering=(0.5, 0.5))
    return image


def jitter_crop(image: Image.Image, rng: random.Random, face_ratio: tuple[float, float]) -> Image.Image:
    """Random sub-square with zoom in [1, hi/lo] at a random position, resized back to the input size."""
    size = image.size[0]
    lo, hi = face_ratio
    zoom = rng.uniform(1.0, hi / lo)
    side = size / zoom
    left = rng.uniform(0.0, size - side)
    top = rng.uniform(0.0, size - side)
    return image.resize((size, size), Image.BICUBIC, box=(left, top, left + side, top + side))


def augmented_variants(image: Image.Image, config: TrainConfig, rng: random.Random) -> list[Image.Image]:
    """`config.augment_variants` versions of one photo; the first is always the plain crop."""
    base = square_resize(image, config.resolution)
    variants = [base]
    for _ in range(config.augment_variants - 1):
        variant = jitter_crop(base, rng, config.face_ratio) if config.crop_jitter else base
        if config.flip and rng.random() < 0.5:
            variant = ImageOps.mirror(variant)
        variants.append(variant)
    return variants


def to_pixels(images: list[Image.Image]) -> torch.Tensor:
    """PIL RGB images -> float tensor (B, 3, H, W) in [-1, 1], the VAE's input range."""
    array = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) for im in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2).div(127.5).sub(1.0)
