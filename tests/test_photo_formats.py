"""Every photo understood: high bit depths, HEIC/AVIF, size limits and non-regular files (issue 7 §2).

The format variants are made at test time from a real photo in ../shared/data, so each one has a known 8-bit
original to compare pixels and face boxes against.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from facechain_ext import imaging
from facechain_ext.errors import FaceChainError
from facechain_ext.faces.analyzer import FaceAnalyzer
from facechain_ext.faces.dlib_backend import DlibBackend
from facechain_ext.imaging import load_image, load_scale
from facechain_ext.photo_formats import sniff_format, to_uint8

PHOTO = "faces/obama/face_recognition_obama.jpg"


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer(DlibBackend())


@pytest.fixture(scope="module")
def original(data_dir: Path) -> np.ndarray:
    return np.asarray(load_image(data_dir / PHOTO))


@pytest.fixture(scope="module")
def original_box(original: np.ndarray, analyzer: FaceAnalyzer) -> np.ndarray:
    faces = analyzer.detect(original, embed=False)
    assert len(faces) == 1
    return np.array(faces[0].bbox)


def _pil_bytes(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt)
    return buffer.getvalue()


def _cv2_bytes(array_rgb: np.ndarray, ext: str, params: tuple[int, ...] = ()) -> bytes:
    ok, encoded = cv2.imencode(ext, array_rgb[:, :, ::-1], list(params))
    assert ok
    return encoded.tobytes()


def high_bit_variants(rgb: np.ndarray) -> dict[str, tuple[bytes, np.ndarray, int]]:
    """name -> (file bytes, the 8-bit pixels it should load as, allowed max abs difference)."""
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    gray3 = np.repeat(gray[:, :, None], 3, axis=2)
    rgb16 = rgb.astype(np.uint16) * 257
    rgb_float = rgb.astype(np.float32) / 255.0
    no_compression = (cv2.IMWRITE_TIFF_COMPRESSION, 1)
    return {
        "16-bit RGB PNG": (_cv2_bytes(rgb16, ".png"), rgb, 0),
        "16-bit RGB TIFF": (_cv2_bytes(rgb16, ".tiff"), rgb, 0),
        "float32 RGB TIFF": (_cv2_bytes(rgb_float, ".tiff", no_compression), rgb, 1),
        "float32 RGB TIFF, OpenCV's lossy default": (_cv2_bytes(rgb_float, ".tiff"), rgb, 8),
        "16-bit grayscale PNG (Pillow mode I)": (_pil_bytes(gray.astype(np.uint16) * 257, "PNG"), gray3, 0),
        "16-bit grayscale TIFF (mode I;16)": (_pil_bytes(gray.astype(np.uint16) * 257, "TIFF"), gray3, 0),
        "16-bit big-endian grayscale TIFF (I;16B)": (_pil_bytes((gray.astype(np.uint16) * 257).astype(">u2"), "TIFF"), gray3, 0),
        "32-bit int TIFF holding 16-bit data": (_pil_bytes(gray.astype(np.int32) * 257, "TIFF"), gray3, 0),
        "32-bit int TIFF holding 8-bit data": (_pil_bytes(gray.astype(np.int32), "TIFF"), gray3, 0),
        "float32 grayscale TIFF": (_pil_bytes(gray.astype(np.float32) / 255.0, "TIFF"), gray3, 1),
    }


def test_high_bit_depth_photos_load_like_the_8_bit_original_and_show_the_face(original, original_box, analyzer):
    for name, (data, expected, tolerance) in high_bit_variants(original).items():
        image = load_image(data, name)
        pixels = np.asarray(image).astype(int)
        assert image.mode == "RGB" and pixels.shape == expected.shape, name
        difference = np.abs(pixels - expected)
        assert difference.max() <= tolerance and difference.mean() < 1.0, (name, difference.max(), difference.mean())
        faces = analyzer.detect(image, embed=False)
        assert len(faces) == 1, name
        assert np.abs(np.array(faces[0].bbox) - original_box).max() <= 8, (name, faces[0].bbox, original_box)


def test_value_ranges():
    assert to_uint8(np.array([0, 32896, 65535], np.uint16)).tolist() == [0, 128, 255]
    assert to_uint8(np.array([0, 128, 255], np.int32)).tolist() == [0, 128, 255]  # 8-bit data in mode I
    assert to_uint8(np.array([0, 300, 65535], np.int32)).tolist() == [0, 1, 255]  # 16-bit data in mode I
    assert to_uint8(np.array([0, 128, 255], np.int32), bits=16).tolist() == [0, 0, 1]  # declared 16-bit: dark stays dark
    assert to_uint8(np.array([0.0, 0.5, 1.0], np.float32)).tolist() == [0, 128, 255]
    assert to_uint8(np.array([-0.01, 0.5, 1.02, np.nan], np.float32)).tolist() == [0, 128, 255, 0]  # clipped
    assert to_uint8(np.array([0.0, 128.0, 255.0], np.float32)).tolist() == [0, 128, 255]  # integer data as float
    assert to_uint8(np.array([-100, 0, 155], np.int32)).tolist() == [0, 100, 255]  # signed: its own range


# ---- HEIC / AVIF ---------------------------------------------------------------------------------------------------
def _heif_bytes(rgb: np.ndarray, fmt: str) -> bytes:
    import pillow_heif  # tests/requirements.txt: the decoder FaceChain installs, used here as the encoder

    buffer = io.BytesIO()
    pillow_heif.from_pillow(Image.fromarray(rgb)).save(buffer, format=fmt, quality=92)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt, suffix", [("HEIF", ".heic"), ("AVIF", ".avif")])
def test_phone_formats_decode_when_pillow_heif_is_installed(fmt, suffix, original, original_box, analyzer, tmp_path):
    data = _heif_bytes(original, fmt)
    assert sniff_format(data) == fmt
    path = tmp_path / f"IMG_0001{suffix}"
    path.write_bytes(data)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (original.shape[1], original.shape[0])
    assert np.abs(np.asarray(image).astype(int) - original).mean() < 3.0
    faces = analyzer.detect(image, embed=False)
    assert len(faces) == 1 and np.abs(np.array(faces[0].bbox) - original_box).max() <= 8


@pytest.mark.parametrize("fmt, label", [("HEIF", "HEIC/HEIF"), ("AVIF", "AVIF")])
def test_without_a_decoder_phone_formats_are_unsupported_not_unreadable(fmt, label, original, monkeypatch, data_dir):
    data = _heif_bytes(original, fmt)
    for module in ("pillow_heif", "pillow_avif"):
        monkeypatch.setitem(sys.modules, module, None)  # `import` of it now raises ImportError: "not installed"
    monkeypatch.setattr(Image, "OPEN", {k: v for k, v in Image.OPEN.items() if k not in ("HEIF", "AVIF")})
    monkeypatch.setattr(Image, "ID", [k for k in Image.ID if k not in ("HEIF", "AVIF")])
    with pytest.raises(FaceChainError) as info:
        load_image(data, "IMG_0001.HEIC")
    err = info.value
    assert err.code == "unsupported_format" and err.http_status == 415
    assert "IMG_0001.HEIC" in err.message and label in err.message and "pip install pillow-heif" in err.message
    assert err.context["format"] == label and err.context["package"] == "pillow-heif"
    with pytest.raises(FaceChainError) as text:  # a text file named .jpg is a different failure
        load_image(data_dir / "edge" / "corrupt_text_named_jpg.jpg")
    assert text.value.code == "unreadable_image"


def test_format_sniffing_by_ftyp_brand():
    def ftyp(major: bytes, *compatible: bytes) -> bytes:
        body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
        return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00" * 32

    assert sniff_format(ftyp(b"heic", b"mif1", b"heic")) == "HEIF"
    assert sniff_format(ftyp(b"mif1", b"heic")) == "HEIF"
    assert sniff_format(ftyp(b"heix", b"mif1")) == "HEIF"
    assert sniff_format(ftyp(b"avif", b"mif1", b"miaf")) == "AVIF"
    assert sniff_format(ftyp(b"mif1", b"avif")) == "AVIF"
    assert sniff_format(ftyp(b"isom", b"mp41")) is None  # an MP4 video: Pillow refuses it as unreadable
    assert sniff_format(b"\xff\xd8\xff\xe0" + b"\x00" * 20) is None
    with pytest.raises(FaceChainError) as info:
        load_image(b"\xff\x0a" + b"\x00" * 64, "photo.jxl")
    assert info.value.code == "unsupported_format" and "JPEG XL" in info.value.message


# ---- size limits ---------------------------------------------------------------------------------------------------
def test_decompression_bomb_error_states_size_and_limit(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(path)  # a tiny file of 400 megapixels
    with pytest.raises(FaceChainError) as info:
        load_image(path)
    assert info.value.code == "image_too_large" and info.value.http_status == 413
    assert "400,000,000 pixels" in info.value.message and f"{imaging.MAX_DECODE_PIXELS:,}" in info.value.message


def test_our_decode_limit_states_size_and_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(imaging, "MAX_DECODE_PIXELS", 100_000)
    path = tmp_path / "big.png"
    Image.new("RGB", (500, 400)).save(path)
    with pytest.raises(FaceChainError) as info:
        load_image(path)
    assert "500x400 (200,000 pixels)" in info.value.message and "100,000 pixels" in info.value.message
    assert info.value.context["limit_pixels"] == 100_000


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_photos_above_the_pixel_cap_are_downscaled_not_refused(fmt, original, monkeypatch, analyzer):
    monkeypatch.setattr(imaging, "MAX_PIXELS", 200_000)
    data = _pil_bytes(original, fmt)
    image = load_image(data, f"photo.{fmt.lower()}")
    assert image.width * image.height <= 200_000 and image.width * image.height > 150_000
    assert load_scale(image) == pytest.approx(image.width / original.shape[1])
    assert abs(image.width / image.height - original.shape[1] / original.shape[0]) < 0.01
    assert len(analyzer.detect(image, embed=False)) == 1


def test_a_file_over_the_byte_limit_is_refused_with_size_and_limit(tmp_path, monkeypatch, data_dir):
    monkeypatch.setattr(imaging, "MAX_FILE_BYTES", 50_000)
    with pytest.raises(FaceChainError) as info:
        load_image(data_dir / PHOTO)
    assert info.value.code == "image_too_large" and "MiB" in info.value.message
    assert info.value.context["limit"] == 50_000


# ---- not regular files ---------------------------------------------------------------------------------------------
@pytest.mark.timeout(20)
def test_a_fifo_is_refused_at_once_instead_of_hanging(tmp_path):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)  # nobody writes to it: reading would block forever
    with pytest.raises(FaceChainError) as info:
        load_image(fifo)
    assert info.value.code == "unreadable_image" and str(fifo) in info.value.message
    assert "FIFO" in info.value.message and info.value.context["reason"] == "not_a_regular_file"


@pytest.mark.timeout(20)
def test_a_device_is_refused_without_reading_it():
    if not os.path.exists("/dev/zero"):
        pytest.fail("/dev/zero is missing on this machine")
    with pytest.raises(FaceChainError) as info:
        load_image("/dev/zero")
    assert info.value.code == "unreadable_image" and "/dev/zero" in info.value.message
    assert "character device" in info.value.message


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(FaceChainError) as info:
        load_image(tmp_path)
    assert info.value.code == "unreadable_image" and "folder" in info.value.message
