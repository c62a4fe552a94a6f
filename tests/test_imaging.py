"""Image loading: every awkward input from ../shared/data/edge opens as upright RGB or fails with a named reason."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from facechain_ext.errors import FaceChainError
from facechain_ext.imaging import decode_base64_image, encode_png_base64, load_image


def test_corrupt_files_fail_with_unreadable_image(edge_table):
    corrupt = [row for row in edge_table if row["kind"] == "corrupt"]
    assert len(corrupt) == 4
    for row in corrupt:
        with pytest.raises(FaceChainError) as info:
            load_image(row["file"])
        assert info.value.code == "unreadable_image"
        assert Path(row["file"]).name in info.value.message or row["file"] in info.value.message


@pytest.mark.parametrize("kind", ["grayscale", "cmyk_jpeg", "png_alpha", "palette_png"])
def test_unusual_modes_become_rgb(edge_table, kind):
    rows = [row for row in edge_table if row["kind"] == kind]
    assert rows
    for row in rows:
        image = load_image(row["file"])
        assert image.mode == "RGB"
        assert image.size == (int(row["w"]), int(row["h"]))


def test_transparent_pixels_become_white(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (10, 20, 30, 0))
    rgba.putpixel((0, 0), (10, 20, 30, 255))
    path = tmp_path / "alpha.png"
    rgba.save(path)
    image = load_image(path)
    assert image.getpixel((5, 5)) == (255, 255, 255)
    assert image.getpixel((0, 0)) == (10, 20, 30)


def test_exif_orientation_is_applied(edge_table):
    row = next(r for r in edge_table if r["kind"] == "exif_orientation")
    raw = Image.open(row["file"])
    assert raw.getexif().get(0x0112) == 6
    image = load_image(row["file"])
    assert image.size == (raw.height, raw.width)  # orientation 6 = rotated 90 degrees: width and height swap


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(path)  # tiny file, 400 megapixels
    with pytest.raises(FaceChainError) as info:
        load_image(path)
    assert info.value.code == "image_too_large"
    assert info.value.http_status == 413


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FaceChainError) as info:
        load_image(tmp_path / "nope.jpg")
    assert info.value.code == "unreadable_image"
    assert "nope.jpg" in info.value.message


def test_base64_round_trip_and_data_url():
    image = Image.new("RGB", (5, 3), (1, 2, 3))
    encoded = encode_png_base64(image)
    assert load_image(base64.b64decode(encoded)).getpixel((4, 2)) == (1, 2, 3)
    assert decode_base64_image("data:image/png;base64," + encoded).size == (5, 3)
    with pytest.raises(FaceChainError) as info:
        decode_base64_image("not an image at all", name="images[0]")
    assert info.value.code == "unreadable_image"
    assert "images[0]" in info.value.message


def test_bytes_that_are_text_are_refused():
    with pytest.raises(FaceChainError) as info:
        load_image(io.BytesIO(b"hello").getvalue(), name="upload.jpg")
    assert info.value.code == "unreadable_image"
    assert "upload.jpg" in info.value.message
