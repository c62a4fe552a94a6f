"""Reading user images safely: any common format in, an upright 8-bit RGB `PIL.Image` out, or a clear error.

Accepted: JPEG, PNG, WebP, BMP, TIFF, GIF, MPO, and HEIC/HEIF/AVIF when `pillow-heif` is installed; any bit depth
(16-bit, 32-bit integer and float pixels are mapped by their real range, see `photo_formats.to_uint8`); EXIF
orientation applied; grayscale/CMYK/palette/alpha to RGB (alpha composited on white, FaceChain's background).

Limits (each error states the size and the limit):
- only regular files, read with a bound of `MAX_FILE_BYTES` (a FIFO or a device such as /dev/zero is refused
  before any read, so it cannot hang or exhaust memory) -> `unreadable_image` / `image_too_large`;
- at most `MAX_DECODE_PIXELS` pixels and `MAX_SIDE` px a side, checked from the header before decoding
  (decompression bombs) -> `image_too_large`;
- photos above `MAX_PIXELS` are downscaled on load to that many pixels (JPEGs already while decoding), not refused;
  `load_scale(image)` tells the factor, so coordinates can be given back in the original's pixels.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
import re
import stat
import warnings
from pathlib import Path
from typing import Union

from PIL import Image, ImageOps, UnidentifiedImageError

from . import photo_formats as formats
from .errors import FaceChainError

ImageSource = Union[str, Path, bytes, Image.Image]

MAX_FILE_BYTES = 320 * 1024 * 1024  # a 24 MP float32 RGB TIFF (288 MB) still fits; phone photos are 2-15 MB
MAX_DECODE_PIXELS = 178_956_970  # decompression-bomb limit: Pillow's own default error threshold (2 x 89,478,485)
MAX_SIDE = 65_500  # JPEG's largest side; beyond it a header is lying or the image is a bomb
MAX_PIXELS = 64_000_000  # larger photos are downscaled to this on load (~9200 x 6900)
SUPPORTED_FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "TIFF", "MPO", "GIF", "HEIF", "AVIF"}
LOAD_SCALE_KEY = "facechain_load_scale"  # image.info key: loaded pixels per original pixel (< 1 when downscaled)


def read_photo_bytes(path: str | Path, name: str) -> bytes:
    """The bytes of a regular file, at most MAX_FILE_BYTES; FIFOs, devices, sockets and folders are refused.

    The file is opened non-blocking (opening a FIFO would otherwise wait for a writer forever) and checked with
    fstat on the open descriptor, so a path swapped after the check cannot slip through.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise FaceChainError("unreadable_image", f"{name}: cannot read the file ({exc.strerror or exc}).",
                             path=name) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _file_kind(info.st_mode)
            raise FaceChainError("unreadable_image", f"{name}: not a regular file but {kind}; give a photo file.",
                                 path=name, reason="not_a_regular_file", kind=kind)
        if info.st_size > MAX_FILE_BYTES:
            raise FaceChainError("image_too_large", _too_big_file(name, info.st_size), path=name, bytes=info.st_size,
                                 limit=MAX_FILE_BYTES)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(MAX_FILE_BYTES + 1)  # the file may grow after fstat: the bound holds regardless
    except OSError as exc:
        raise FaceChainError("unreadable_image", f"{name}: cannot read the file ({exc.strerror or exc}).",
                             path=name) from exc
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise FaceChainError("image_too_large", _too_big_file(name, len(data)), path=name, limit=MAX_FILE_BYTES)
    return data


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((label for test, label in kinds if test(mode)), "not a regular file")


def _too_big_file(name: str, size: int) -> str:
    return f"{name}: the file is {size / 2**20:.1f} MiB; photos of at most {MAX_FILE_BYTES / 2**20:.0f} MiB are accepted."


def _open(source: ImageSource, name: str) -> Image.Image:
    if isinstance(source, Image.Image):
        _check_size(source.size, name)
        return source
    data = source if isinstance(source, bytes) else read_photo_bytes(source, name)
    if not data:
        raise FaceChainError("unreadable_image", f"{name}: the file is empty.", path=name)
    if len(data) > MAX_FILE_BYTES:
        raise FaceChainError("image_too_large", _too_big_file(name, len(data)), path=name, limit=MAX_FILE_BYTES)
    sniffed = formats.sniff_format(data)
    if sniffed is not None:
        formats.ensure_decoder(sniffed, name)
    try:
        return _decode(data, name)
    except FaceChainError:
        raise
    except Image.DecompressionBombError as exc:  # beyond Pillow's own limit, which a host may have lowered
        raise FaceChainError("image_too_large", _bomb_message(name, str(exc)), path=name,
                             limit=MAX_DECODE_PIXELS) from exc
    except UnidentifiedImageError as exc:
        if formats.is_tiff(data):  # e.g. float32 RGB: a valid TIFF Pillow has no mode for
            size = formats.tiff_size(data)
            if size is None:
                raise FaceChainError("unreadable_image", f"{name}: the TIFF header is corrupt.", path=name) from exc
            _check_size(size, name)
            return formats.decode_with_opencv(data, name)
        raise FaceChainError("unreadable_image", f"{name}: not an image file FaceChain can read.", path=name) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise FaceChainError("unreadable_image", f"{name}: the image data is corrupt ({exc}).", path=name) from exc


def _decode(data: bytes, name: str) -> Image.Image:
    """Header, size check, (reduced) decode, high-bit conversion, downscale to MAX_PIXELS."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limits below replace Pillow's warning
        image = Image.open(io.BytesIO(data))
        if image.format and image.format not in SUPPORTED_FORMATS:
            raise FaceChainError("unsupported_format", f"{name}: a {image.format} image; FaceChain accepts "
                                 f"{', '.join(sorted(SUPPORTED_FORMATS))}. Convert it to JPEG or PNG.",
                                 path=name, format=image.format)
        original = image.size
        _check_size(original, name)
        bits = formats.source_bits(image)
        if image.format == "JPEG" and original[0] * original[1] > MAX_PIXELS:
            image.draft(image.mode, _fit(original, MAX_PIXELS))  # decode at 1/2, 1/4 or 1/8 scale: less memory
        image.load()
    if image.mode in formats.HIGH_BIT_MODES:
        image = _keep_info(formats.high_bit_to_rgb(image, bits), image)
    if image.width * image.height > MAX_PIXELS:
        image = _keep_info(image.resize(_fit(image.size, MAX_PIXELS), Image.LANCZOS, reducing_gap=3.0), image)
    image.info[LOAD_SCALE_KEY] = image.width / original[0]
    return image


def _keep_info(new: Image.Image, old: Image.Image) -> Image.Image:
    """`new` with `old`'s metadata (EXIF orientation must survive conversions) and format name."""
    new.info.update(old.info)
    if "exif" not in new.info:
        exif = old.getexif()
        if exif:
            new.info["exif"] = exif.tobytes()
    new.format = old.format  # type: ignore[misc]
    return new


def _fit(size: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    """`size` scaled down (aspect kept) to at most `max_pixels` pixels."""
    scale = math.sqrt(max_pixels / float(size[0] * size[1]))
    return max(1, math.floor(size[0] * scale)), max(1, math.floor(size[1] * scale))


def _check_size(size: tuple[int, int], name: str) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise FaceChainError("unreadable_image", f"{name}: the image has no pixels ({width}x{height}).", path=name)
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_DECODE_PIXELS:
        raise FaceChainError(
            "image_too_large",
            f"{name}: {width}x{height} ({width * height:,} pixels) is too large to decode safely; the limit is "
            f"{MAX_DECODE_PIXELS:,} pixels and {MAX_SIDE:,} px a side (photos above {MAX_PIXELS:,} pixels are "
            "downscaled automatically).",
            path=name, width=width, height=height, limit_pixels=MAX_DECODE_PIXELS, limit_side=MAX_SIDE,
        )


def _bomb_message(name: str, pillow_message: str) -> str:
    found = re.search(r"\((\d+) pixels\)[^\d]*(\d+) pixels", pillow_message)
    size = f"{int(found.group(1)):,} pixels, over Pillow's limit of {int(found.group(2)):,}" if found else pillow_message
    return f"{name}: the image is too large to decode safely ({size})."


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB; transparent pixels become white (FaceChain's background colour)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode == "CMYK":
        # PIL's CMYK->RGB ignores ICC profiles; good enough for face analysis.
        return image.convert("RGB")
    if image.mode in formats.HIGH_BIT_MODES:  # not through convert("L"): it clips at 255 (16-bit photos came out white)
        return formats.high_bit_to_rgb(image, None)
    return image.convert("RGB")


def load_image(source: ImageSource, name: str | None = None) -> Image.Image:
    """Open `source` (path, bytes or PIL image) as upright 8-bit RGB, or raise `FaceChainError` naming `name`."""
    label = name or (str(source) if isinstance(source, (str, Path)) else "image")
    image = _open(source, label)
    scale = image.info.get(LOAD_SCALE_KEY, 1.0)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - broken EXIF must not make a readable photo unusable
        pass
    rgb = to_rgb(image)
    rgb.info[LOAD_SCALE_KEY] = scale
    return rgb


def load_scale(image: Image.Image) -> float:
    """Loaded pixels per original pixel: 1.0, or < 1 when `load_image` downscaled a photo above MAX_PIXELS."""
    return float(image.info.get(LOAD_SCALE_KEY, 1.0))


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
