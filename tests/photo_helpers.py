"""Small helpers for tests that work on the real photos in ../shared/data."""

from __future__ import annotations

from PIL import Image

from facechain_ext.imaging import load_image


def downscaled(path: str, long_side: int = 512) -> Image.Image:
    """The photo with its long side at most `long_side` (512 px: the size FaceChain generates at)."""
    image = load_image(path)
    scale = long_side / max(image.size)
    if scale >= 1:
        return image
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
