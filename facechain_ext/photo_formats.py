"""What kind of photo a file is (from its first bytes), the optional decoders some formats need, and pixels of any
bit depth brought to 8 bits by their real value range.

- HEIC/HEIF (the iPhone default) and AVIF are ISO base-media files: bytes 4-8 are `ftyp`, followed by a major brand
  and compatible brands (ISO/IEC 14496-12 §4.3; brands from ISO/IEC 23008-12 and the AV1 Image File Format spec).
  Pillow 9.5 (the host's) cannot read them; `pillow-heif` can (its `register_*_opener` adds a Pillow plugin), so it is
  registered on the first such photo, never at import time.
- 16-bit, 32-bit and float pixels: Pillow keeps single-channel ones as modes I;16*, I and F and cannot hold
  multi-channel float TIFFs at all (those are decoded by OpenCV here). `to_uint8` maps them by the range their
  format stands for, not by clipping at 255 (which made 16-bit photos white).
"""

from __future__ import annotations

import importlib
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import FaceChainError

# ftyp brands (ISO/IEC 23008-12 Annex B; AV1 Image File Format §6): HEVC-coded HEIF, AV1-coded AVIF, generic HEIF.
HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
AVIF_BRANDS = frozenset({b"avif", b"avis"})
GENERIC_HEIF_BRANDS = frozenset({b"mif1", b"msf1", b"mif2", b"miaf"})
FTYP_SCAN_BYTES = 64  # the ftyp box of a photo is short; its brand list is read no further than this


@dataclass(frozen=True)
class Plugin:
    """An optional package that teaches Pillow a format once its registration function runs (or on import)."""

    module: str  # Python module to import
    register: str | None  # its function that registers the Pillow plugin; None: importing registers it
    package: str  # what to pip-install


@dataclass(frozen=True)
class Decoder:
    pil_format: str  # the name in Pillow's registry (Image.OPEN) once a plugin is registered
    label: str  # what users call the format
    plugins: tuple[Plugin, ...]  # tried in order

    def install_hint(self) -> str:
        first = self.plugins[0].package
        others = " or ".join(p.package for p in self.plugins[1:])
        alternative = f" (or {others})" if others else ""
        return (f"install '{first}'{alternative} into the webui's Python (FaceChain's install.py installs {first} at "
                f"launch unless --skip-install is set; by hand: pip install {first}), or convert the photo to JPEG/PNG")


PILLOW_HEIF = "pillow_heif"
DECODERS = {
    "HEIF": Decoder("HEIF", "HEIC/HEIF", (Plugin(PILLOW_HEIF, "register_heif_opener", "pillow-heif"),)),
    # pillow-heif dropped AVIF in its 1.x line; pillow-avif-plugin registers itself on import.
    "AVIF": Decoder("AVIF", "AVIF", (Plugin(PILLOW_HEIF, "register_avif_opener", "pillow-heif"),
                                     Plugin("pillow_avif", None, "pillow-avif-plugin"))),
}


def sniff_format(data: bytes) -> str | None:
    """'HEIF' or 'AVIF' for an ISO base-media image file, 'JXL' for JPEG XL, else None (Pillow decides).

    The brand decides: AVIF when the major or a compatible brand is avif/avis, HEIF for HEVC brands or a generic
    `mif1`/`msf1` file without an AV1 brand.
    """
    if data[:2] == b"\xff\x0a" or data[:12] == b"\x00\x00\x00\x0cJXL \x0d\x0a\x87\x0a":
        return "JXL"
    if len(data) < 16 or data[4:8] != b"ftyp":
        return None
    box_size = int.from_bytes(data[0:4], "big")
    end = min(max(box_size, 16), FTYP_SCAN_BYTES, len(data))
    brands = {data[8:12]} | {data[i:i + 4] for i in range(16, end - 3, 4)}
    if brands & AVIF_BRANDS:
        return "AVIF"
    if brands & (HEIC_BRANDS | GENERIC_HEIF_BRANDS):
        return "HEIF"
    return None


def ensure_decoder(fmt: str, name: str) -> None:
    """Make sure Pillow can open `fmt` photos, registering an optional plugin on first use (never at import time).

    Raises FaceChainError('unsupported_format') naming the photo, the format and the package that fixes it.
    """
    if fmt == "JXL":
        raise FaceChainError(
            "unsupported_format",
            f"{name}: a JPEG XL image; FaceChain cannot decode JPEG XL. Convert the photo to JPEG or PNG.",
            path=name, format="JPEG XL",
        )
    decoder = DECODERS[fmt]
    problems = []
    for plugin in decoder.plugins:
        if decoder.pil_format in Image.OPEN:  # registered (by us, another extension, or a Pillow with it built in)
            return
        try:
            module = importlib.import_module(plugin.module)
            if plugin.register is not None:
                getattr(module, plugin.register)()
        except (ImportError, AttributeError, OSError) as exc:
            problems.append(f"{plugin.package}: {exc}")
    if decoder.pil_format in Image.OPEN:
        return
    raise FaceChainError(
        "unsupported_format",
        f"{name}: a {decoder.label} photo, but no {decoder.label} decoder is available ({'; '.join(problems)}). "
        f"To use it, {decoder.install_hint()}.",
        path=name, format=decoder.label, package=decoder.plugins[0].package,
    )


# ---- bit depth ---------------------------------------------------------------------------------------------------
HIGH_BIT_MODES = frozenset({"I", "F", "I;16", "I;16B", "I;16L", "I;16N", "I;16S", "I;32", "I;32B", "I;32L"})


def source_bits(image: Image.Image) -> int | None:
    """Bits per sample the file declares, read from Pillow's raw decoder mode before `load()` (e.g. 'I;16B' -> 16).

    Needed because Pillow opens a 16-bit grayscale PNG as 32-bit mode I: only the raw mode tells its range.
    """
    if not image.tile:
        return None
    rawmode = image.tile[0][3]
    rawmode = rawmode[0] if isinstance(rawmode, tuple) and rawmode else rawmode
    if not isinstance(rawmode, str):
        return None
    for bits in (16, 32):
        if f";{bits}" in rawmode:
            return bits
    return None


def to_uint8(values: np.ndarray, bits: int | None = None) -> np.ndarray:
    """Pixels of any depth -> uint8 by the range their type stands for (same shape).

    - uint8: unchanged. uint16, or any integer data declared 16-bit: 0..65535.
    - other non-negative integers (32-bit mode I): the smallest of 0..255, 0..65535, 0..2^32-1 that holds them
      (Pillow stores 8- and 16-bit data in mode I; nothing in the pixels says which).
    - float: 0..1, the convention of float images (values a little outside it, e.g. from lossy float TIFF coding or
      HDR highlights up to 2.0, are clipped), else the smallest of 0..255 and 0..65535 that holds the data (integer
      data saved as float); NaN and infinities become 0.
    - integers with negative values, or float beyond 65535: the data's own min..max (nothing nominal to go by).
    """
    array = np.asarray(values)
    if array.dtype == np.uint8:
        return array
    data = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    if array.dtype.kind == "f":
        low = max(low, 0.0)  # negative float values are clipped, not a reason to stretch the range
        candidates: tuple[float, ...] = (2.0, 255.0, 65535.0)
    elif array.dtype == np.uint16 or bits == 16:
        candidates = (65535.0,)
    else:
        candidates = (255.0, 65535.0, 4294967295.0)
    top = next((c for c in candidates if low >= 0.0 and high <= c), None)
    top = 1.0 if top == 2.0 else top
    if top is None:
        top, data = max(high - low, 1e-12), data - low
    return np.clip(np.rint(data * (255.0 / top)), 0, 255).astype(np.uint8)


def high_bit_to_rgb(image: Image.Image, bits: int | None) -> Image.Image:
    """A single-channel high-bit-depth image (modes I;16*, I, F) as 8-bit RGB, mapped by `to_uint8`."""
    gray = to_uint8(np.asarray(image), bits)
    return Image.fromarray(gray, "L").convert("RGB")


# ---- TIFFs Pillow cannot hold (multi-channel float, 32-bit RGB) ----------------------------------------------------
def is_tiff(data: bytes) -> bool:
    return data[:4] in (b"II*\x00", b"MM\x00*")


def tiff_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a TIFF's first image directory (tags 256/257), without decoding pixels."""
    from PIL import TiffImagePlugin

    try:
        ifd = TiffImagePlugin.ImageFileDirectory_v2(data[:8])
        stream = io.BytesIO(data)
        stream.seek(ifd.next)
        ifd.load(stream)
        width, height = ifd.get(256), ifd.get(257)
    except Exception:  # noqa: BLE001 - a malformed header only means "size unknown"
        return None
    return (int(width), int(height)) if width and height else None


def decode_with_opencv(data: bytes, name: str) -> Image.Image:
    """A TIFF that Pillow cannot represent (e.g. float32 RGB) through OpenCV, mapped to 8-bit RGB(A) by `to_uint8`."""
    import cv2  # lazy: heavy import

    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.ndim not in (2, 3) or array.size == 0:
        raise FaceChainError("unreadable_image", f"{name}: a TIFF file FaceChain cannot decode; save it as JPEG or PNG.", path=name)
    pixels = to_uint8(array)
    if pixels.ndim == 2:
        return Image.fromarray(pixels, "L").convert("RGB")
    channels = pixels.shape[2]
    if channels == 1:
        return Image.fromarray(pixels[:, :, 0], "L").convert("RGB")
    order = cv2.COLOR_BGRA2RGBA if channels == 4 else cv2.COLOR_BGR2RGB
    converted = cv2.cvtColor(pixels[:, :, :4] if channels >= 4 else pixels[:, :, :3], order)
    return Image.fromarray(converted, "RGBA" if channels >= 4 else "RGB")
