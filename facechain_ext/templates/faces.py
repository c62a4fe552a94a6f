"""The faces of a template photo: found once, numbered left to right, drawn as numbered boxes for the view.

A template is any photo with one or more faces. Faces are numbered by the x of their box centre (ties: by y), the
order people read a group photo in; `index` is 0-based (the view prints index + 1 on each box).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

from PIL import Image

from ..errors import FaceChainError
from ..faces.types import Face

if TYPE_CHECKING:
    from ..faces.analyzer import FaceAnalyzer

# Below this the face passes have too little context to work with, above it every pass would crop a tiny part
# of a huge photo (and the host's inpaint crop is resampled to the working size anyway).
MIN_TEMPLATE_SIDE = 256  # px, the short side
MAX_TEMPLATE_SIDE = 4096  # px, the long side
MIN_FACE_SIDE = 32  # px: a smaller face cannot be regenerated meaningfully at any working resolution


@dataclass(frozen=True)
class TemplateFace:
    index: int  # 0-based, left to right
    face: Face  # in template pixels

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        return self.face.bbox

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, **self.face.to_dict(), "long_side": round(float(self.face.long_side), 1)}


def check_template_size(image: Image.Image, name: str = "template") -> None:
    """FaceChainError template_too_small / template_too_large (both 422) naming the size and the limit."""
    width, height = image.size
    if min(width, height) < MIN_TEMPLATE_SIDE:
        raise FaceChainError(
            "template_too_small",
            f"{name}: {width}x{height} is too small; the short side must be at least {MIN_TEMPLATE_SIDE} px.",
            input=name, width=width, height=height, min_side=MIN_TEMPLATE_SIDE,
        )
    if max(width, height) > MAX_TEMPLATE_SIDE:
        raise FaceChainError(
            "template_too_large",
            f"{name}: {width}x{height} is too large; the long side may be at most {MAX_TEMPLATE_SIDE} px. "
            "Downscale it first.",
            input=name, width=width, height=height, max_side=MAX_TEMPLATE_SIDE,
        )


def order_left_to_right(faces: Sequence[Face]) -> list[TemplateFace]:
    ordered = sorted(faces, key=lambda f: (f.center[0], f.center[1]))
    return [TemplateFace(index=i, face=face) for i, face in enumerate(ordered)]


def list_template_faces(image: Image.Image, analyzer: FaceAnalyzer, name: str = "template") -> list[TemplateFace]:
    """Every face of the template, left to right; FaceChainError no_face (422) when there is none."""
    return find_template_faces(image, analyzer, name)[0]


def find_template_faces(image: Image.Image, analyzer: FaceAnalyzer, name: str = "template") -> tuple[list[TemplateFace], int]:
    """The faces (left to right, in the template's own pixels) and the turn that made them upright (degrees; 0 for
    an upright template), found with the orientation policy of every surface (`FaceAnalyzer.find_faces`)."""
    check_template_size(image, name)
    found = analyzer.find_faces(image, embed=False)
    faces = found.faces
    if not faces:
        raise FaceChainError(
            "no_face",
            f"{name}: no face found in the template, so there is nothing to replace. Use a photo with clearly "
            "visible, roughly frontal faces.",
            input=name, backend=analyzer.name,
        )
    return order_left_to_right(faces), int(found.rotation)


def match_face(template_face: TemplateFace, found: Sequence[Face], min_iou: float = 0.3) -> Optional[Face]:
    """The face in `found` at the template face's place (largest box overlap, at least `min_iou`), or None.

    A regenerated face stays where the template's was (the pass only repaints inside its mask), so overlap is the
    identity test here, not appearance.
    """
    best, best_iou = None, min_iou
    for face in found:
        value = iou(template_face.bbox, face.bbox)
        if value >= best_iou:
            best, best_iou = face, value
    return best


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def numbered_overlay(image: Image.Image, faces: Sequence[TemplateFace], chosen: Sequence[int] = ()) -> Image.Image:
    """A copy of `image` with each face's box and number (index + 1); chosen faces drawn in a second colour."""
    from PIL import ImageDraw, ImageFont

    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    width = max(2, round(min(out.size) / 250))
    for item in faces:
        x1, y1, x2, y2 = (round(v) for v in item.bbox)
        colour = (255, 196, 0) if item.index in chosen else (0, 200, 255)
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        size = max(14, round((y2 - y1) * 0.35))
        font = _font(ImageFont, size)
        label = str(item.index + 1)
        box = draw.textbbox((0, 0), label, font=font)
        tw, th = box[2] - box[0] + 2 * width, box[3] - box[1] + 2 * width
        top = max(0, y1 - th - width)
        draw.rectangle((x1, top, x1 + tw, top + th), fill=colour)
        draw.text((x1 + width - box[0], top + width - box[1]), label, fill=(0, 0, 0), font=font)
    return out


def _font(image_font: Any, size: int) -> Any:
    try:
        return image_font.truetype("DejaVuSans-Bold.ttf", size)
    except OSError:  # no TrueType font on this system: Pillow's bitmap font still shows the number
        return image_font.load_default()
