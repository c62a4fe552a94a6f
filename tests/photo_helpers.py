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


def face_in_large_canvas(
    face_photo: str, background: str, face_px: float, analyzer, size: tuple[int, int] = (6000, 4000),
    at: tuple[int, int] = (4100, 2500),
) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """A `size` photo whose only face is the one of `face_photo`, shrunk so its box is `face_px` across.

    The canvas is `background` (a real photo without a face) enlarged to `size`; the face photo is pasted with its
    top-left corner at `at`. Returns the canvas and where the face box should be found (photo pixels).
    """
    source = load_image(face_photo)
    face = analyzer.detect(source, embed=False)[0]
    scale = face_px / face.long_side
    small = source.resize((round(source.width * scale), round(source.height * scale)), Image.LANCZOS)
    canvas = load_image(background).resize(size, Image.BICUBIC)
    canvas.paste(small, at)
    x1, y1, x2, y2 = face.bbox
    expected = (at[0] + x1 * scale, at[1] + y1 * scale, at[0] + x2 * scale, at[1] + y2 * scale)
    return canvas, expected
