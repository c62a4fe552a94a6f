"""Reading user images safely: any common format in, an upright RGB `PIL.Image` out, or a clear error.

Handles EXIF orientation, grayscale/CMYK/palette/alpha (alpha is composited on white, FaceChain's background),
refuses corrupt files, non-images and decompression bombs with `unreadable_image` / `image_too_large`.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from pathlib import Path
from typing import Union

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import FaceChainError

ImageSource = Union[str, Path, bytes, Image.Image]

MAX_PIXELS = 64_000_000  # ~8000x8000; larger inputs are almost certainly bombs or mistakes
MAX_SIDE = 16_384
SUPPORTED_FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "TIFF", "MPO", "GIF"}


def _open(source: ImageSource, name: str) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as exc:
        raise FaceChainError("unreadable_image", f"{name}: cannot read the file ({exc.strerror or exc}).", path=name) from exc
    if not data:
        raise FaceChainError("unreadable_image", f"{name}: the file is empty.", path=name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_size(image, name)
            image.load()
    except FaceChainError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise FaceChainError("image_too_large", f"{name}: the image is too large to process safely.", path=name) from exc
    except UnidentifiedImageError as exc:
        raise FaceChainError("unreadable_image", f"{name}: not an image file PIL can read.", path=name) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise FaceChainError("unreadable_image", f"{name}: the image data is corrupt ({exc}).", path=name) from exc
    if image.format and image.format not in SUPPORTED_FORMATS:
        raise FaceChainError("unreadable_image", f"{name}: unsupported image format {image.format}.", path=name)
    return image


def _check_size(image: Image.Image, name: str) -> None:
    width, height = image.size
    if width < 1 or height < 1 or width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise FaceChainError(
            "image_too_large",
            f"{name}: {width}x{height} is outside the supported size (at most {MAX_SIDE} px a side, {MAX_PIXELS} pixels).",
            path=name,
            width=width,
            height=height,
        )


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to RGB; transparent pixels become white (FaceChain's background colour)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode == "CMYK":
        # PIL's CMYK->RGB ignores ICC profiles; good enough for face analysis.
        return image.convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return ImageOps.autocontrast(image.convert("L")).convert("RGB")
    return image.convert("RGB")


def load_image(source: ImageSource, name: str | None = None) -> Image.Image:
    """Open `source` (path, bytes or PIL image) as upright RGB, or raise `FaceChainError` naming `name`."""
    label = name or (str(source) if isinstance(source, (str, Path)) else "image")
    image = _open(source, label)
    _check_size(image, label)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - broken EXIF must not make a readable photo unusable
        pass
    return to_rgb(image)


def decode_base64_image(data: str, name: str = "image") -> Image.Image:
    """Decode a base64 image (optionally a data URL, as browsers and the host's API send them)."""
    if not isinstance(data, str) or not data:
        raise FaceChainError("unreadable_image", f"{name}: expected a base64-encoded image string.", path=name)
    if data.startswith("data:") and "," in data:
        data = data.split(",", 1)[1]
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise FaceChainError("unreadable_image", f"{name}: not valid base64.", path=name) from exc
    return load_image(raw, name)


def encode_png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
