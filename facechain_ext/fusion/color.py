"""Colour and lighting transfer: make the reference face's skin tone and exposure match the target's.

Per-channel mean/std matching in CIELAB inside the face mask (Reinhard-style): L carries lighting, a/b carry tint.
Poisson blending later fixes the remaining low-frequency difference at the mask border.
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_STD = 1.0  # LAB units; the source's spread is divided by: a flat (e.g. overexposed) channel must not blow up
# Bounds on the std ratio per LAB channel. Gains are capped everywhere (red lipstick or heavy make-up on one face must
# not over-saturate the other). Lightness keeps at least 60 % of the reference's contrast, because that contrast is
# the facial detail being transferred; tint (a, b) may drop to zero, so a black-and-white target gets a gray face.
STD_RATIO_RANGES = ((0.6, 1.6), (0.0, 1.6), (0.0, 1.6))


def match_color_lab(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`source` (RGB uint8) recoloured so its LAB statistics inside `mask` equal `target`'s there. Same shape as input."""
    inside = mask > 0
    if not inside.any():
        return source.copy()
    src_lab = cv2.cvtColor(source.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    dst_lab = cv2.cvtColor(target.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    for channel in range(3):
        src_values = src_lab[..., channel][inside]
        dst_values = dst_lab[..., channel][inside]
        src_mean, src_std = float(src_values.mean()), max(float(src_values.std()), MIN_STD)
        dst_mean, dst_std = float(dst_values.mean()), float(dst_values.std())
        ratio = float(np.clip(dst_std / src_std, *STD_RATIO_RANGES[channel]))
        src_lab[..., channel] = (src_lab[..., channel] - src_mean) * ratio + dst_mean
    # Keep L, a, b in their valid ranges before converting back.
    np.clip(src_lab[..., 0], 0.0, 100.0, out=src_lab[..., 0])
    np.clip(src_lab[..., 1:], -127.0, 127.0, out=src_lab[..., 1:])
    rgb = cv2.cvtColor(src_lab, cv2.COLOR_LAB2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
