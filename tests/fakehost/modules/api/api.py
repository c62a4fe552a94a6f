"""Stand-in for the image helpers of modules/api/api.py (base64 in and out of the API)."""

from __future__ import annotations

import base64
import io

from fastapi.exceptions import HTTPException
from PIL import Image, PngImagePlugin

from modules.shared import opts


def decode_base64_to_image(encoding: str) -> Image.Image:
    if encoding.startswith("http://") or encoding.startswith("https://"):
        raise HTTPException(status_code=500, detail="Requests not allowed")  # the fake host has no network
    if encoding.startswith("data:image/"):
        encoding = encoding.split(";")[1].split(",")[1]
    try:
        return Image.open(io.BytesIO(base64.b64decode(encoding)))
    except Exception as e:  # noqa: BLE001 - same as the host
        raise HTTPException(status_code=500, detail="Invalid encoded image") from e


def encode_pil_to_base64(image) -> bytes:
    """Returns bytes, like the host (the API models declare str and pydantic v1 coerces)."""
    if isinstance(image, str):
        return image  # type: ignore[return-value]
    with io.BytesIO() as output_bytes:
        fmt = opts.samples_format.lower()
        if fmt == "png":
            metadata = PngImagePlugin.PngInfo()
            use_metadata = False
            for key, value in image.info.items():
                if isinstance(key, str) and isinstance(value, str):
                    metadata.add_text(key, value)
                    use_metadata = True
            image.save(output_bytes, format="PNG", pnginfo=metadata if use_metadata else None, quality=opts.jpeg_quality)
        elif fmt in ("jpg", "jpeg", "webp"):
            rgb = image.convert("RGB") if image.mode == "RGBA" else image
            rgb.save(output_bytes, format="JPEG" if fmt != "webp" else "WEBP", quality=opts.jpeg_quality)
        else:
            raise HTTPException(status_code=500, detail="Invalid image format")
        return base64.b64encode(output_bytes.getvalue())
