"""The inpainting mask of each template face: FaceChain's grown face region, feathered, as the host's img2img mask.

FaceChain's fixed-template mode repainted the *face* (not hair, not neck) grown a little: its human-parsing face region
dilated by 0.06·√area everywhere and by 0.10·√area below the eye line, so the jaw and chin blend into the neck
(modelscope/facechain v3.0.0 `facechain/inference_inpaint.py`, `segment(..., ksize=0.1, ksize1=0.06, eyeh=...)`).
We build the same region from the face-parsing model when it is installed (BiSeNet, `prep.parsing`), else from the
face outline the 5 keypoints give (`fusion.mask.face_outline`), then feather it so the seam is invisible.

The mask the host receives is `alpha8` (uint8 0..255, full template size). Its zero pixels are the ones the face pass
never changes: the host composites with it (`apply_overlay`, modules/processing.py) and `compose` enforces it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
from PIL import Image

from .faces import TemplateFace

if TYPE_CHECKING:
    from ..faces.types import Face

GROW_ALL = 0.06  # × √(face region area): FaceChain's ksize1
GROW_BELOW_EYES = 0.10  # × √(face region area) below the eye line: FaceChain's ksize
FEATHER = 0.035  # Gaussian sigma × √(face region area): a soft seam a few pixels wide at any face size
# CelebAMask-HQ labels of the face itself (skin, brows, eyes, glasses, nose, mouth, lips): FaceChain kept hair,
# ears and neck from the template, so do we.
FACE_LABELS = np.array([1, 2, 3, 4, 5, 6, 10, 11, 12, 13])
PARSED_MIN_FRACTION = 0.3  # a parsed face smaller than this share of the keypoint outline is a parsing failure


@dataclass
class FaceRegionMask:
    """One face's mask: `alpha8` inside `box` of the template (outside the box it is 0)."""

    index: int  # the template face
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive) in template pixels
    alpha8: np.ndarray  # uint8 (y2-y1, x2-x1): 255 inside the grown face, feathered edge, 0 outside
    core: np.ndarray  # bool, same shape: the grown face region before feathering
    size: tuple[int, int]  # template (width, height)
    source: str  # "parsing" or "outline"

    def full(self) -> np.ndarray:
        """uint8 (H, W) mask over the whole template."""
        out = np.zeros((self.size[1], self.size[0]), np.uint8)
        x1, y1, x2, y2 = self.box
        out[y1:y2, x1:x2] = self.alpha8
        return out

    def image(self) -> Image.Image:
        """The mask as the host's img2img `mask` (mode L, white = repaint)."""
        return Image.fromarray(self.full(), mode="L")

    @property
    def area(self) -> int:
        return int((self.alpha8 > 0).sum())


def build_face_mask(image_size: tuple[int, int], item: TemplateFace, *, parser: Any = None,
                    template: Optional[Image.Image] = None) -> FaceRegionMask:
    """The mask of one template face in an image of `image_size` (width, height).

    `parser` (optional) is a face-parsing model with `labels(square RGB image) -> (H, W) CelebAMask-HQ classes`
    (`prep.parsing.BiSeNetHeadMasker`); it needs `template`. Without it, or when it finds no plausible face, the
    keypoint outline is used.
    """
    import cv2

    from ..fusion.mask import face_outline

    width, height = image_size
    outline = face_outline(item.face)
    scale = float(np.sqrt(max(cv2.contourArea(outline.astype(np.float32)), 1.0)))
    reach = int(np.ceil((GROW_BELOW_EYES + 4.0 * FEATHER) * scale)) + 2
    x1, y1 = np.floor(outline.min(axis=0)).astype(int) - reach
    x2, y2 = np.ceil(outline.max(axis=0)).astype(int) + reach + 1
    box = (max(int(x1), 0), max(int(y1), 0), min(int(x2), width), min(int(y2), height))
    shape = (box[3] - box[1], box[2] - box[0])
    region = np.zeros(shape, np.uint8)
    cv2.fillPoly(region, [np.round(outline - np.array(box[:2], np.float32)).astype(np.int32)], 1)
    source = "outline"
    if parser is not None and template is not None:
        parsed = parsed_face_region(parser, template, item.face, box)
        if parsed is not None and parsed.sum() >= PARSED_MIN_FRACTION * region.sum():
            region, source = parsed, "parsing"
    eye_line = float(np.mean(item.face.kps[:2, 1])) - box[1]
    core = grow_region(region, scale, eye_line)
    alpha8 = feather(core, FEATHER * scale)
    return FaceRegionMask(item.index, box, alpha8, core, (width, height), source)


def grow_region(region: np.ndarray, scale: float, eye_line: float) -> np.ndarray:
    """FaceChain's growth: dilate by GROW_ALL·scale everywhere and by GROW_BELOW_EYES·scale below `eye_line` (row)."""
    import cv2

    def dilate(radius: float) -> np.ndarray:
        r = max(int(round(radius)), 1)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        return cv2.dilate(region.astype(np.uint8), kernel)

    grown = dilate(GROW_ALL * scale)
    below = dilate(GROW_BELOW_EYES * scale)
    row = int(np.clip(round(eye_line), 0, region.shape[0]))
    grown[row:] = np.maximum(grown[row:], below[row:])
    return grown.astype(bool)


def feather(core: np.ndarray, sigma: float) -> np.ndarray:
    """uint8 alpha: 255 on the core (grown by 1.5σ first), a Gaussian fall-off outside, exactly 0 beyond ≈4.5σ."""
    import cv2

    sigma = max(float(sigma), 1.0)
    r = int(round(1.5 * sigma))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    padded = cv2.dilate(core.astype(np.uint8), kernel).astype(np.float32)
    k = 2 * int(np.ceil(3.0 * sigma)) + 1
    alpha = cv2.GaussianBlur(padded, (k, k), sigma, borderType=cv2.BORDER_CONSTANT)
    alpha = np.maximum(alpha, core.astype(np.float32))  # the grown face itself is always fully repainted
    return np.round(alpha * 255.0).astype(np.uint8)


def parsed_face_region(parser: Any, template: Image.Image, face: Face, box: tuple[int, int, int, int]) -> Optional[np.ndarray]:
    """uint8 0/1 face region (FACE_LABELS) inside `box`, from the parser run on a square around the face."""
    import cv2

    from ..prep import geometry as geo
    from ..prep.headmask import clean_mask
    from ..prep.parsing import HEAD_BOX_LIFT, HEAD_BOX_SCALE, INPUT_SIDE

    side = HEAD_BOX_SCALE * face.long_side
    cx, cy = face.center
    cy -= HEAD_BOX_LIFT * face.long_side
    to_square = geo.translate_scale(side / 2.0 - cx, side / 2.0 - cy, INPUT_SIDE / side)
    labels = parser.labels(geo.warp(template, to_square, INPUT_SIDE))
    # back into the mask box: template -> square is to_square, so box pixel (u, v) is template (u + x1, v + y1)
    to_box = geo.compose(to_square, geo.translate_scale(box[0], box[1]))
    back = cv2.warpAffine(np.isin(labels, FACE_LABELS).astype(np.uint8), geo.invert(to_box),
                          (box[2] - box[0], box[3] - box[1]), flags=cv2.INTER_NEAREST, borderValue=0)
    cleaned = clean_mask(back, dilate_px=0)
    return cleaned.astype(np.uint8) if cleaned.any() else None


def separate(masks: Sequence[FaceRegionMask], items: Sequence[TemplateFace]) -> list[FaceRegionMask]:
    """Masks of neighbouring faces may overlap: each overlapping pixel goes to the nearer face centre, so a later
    face pass never repaints a face an earlier pass made. Masks that overlap nothing are returned unchanged."""
    centers = {item.index: np.asarray(item.face.center, np.float64) for item in items}
    out = []
    for mask in masks:
        others = [m for m in masks if m is not mask and _boxes_meet(m.box, mask.box)]
        if not others:
            out.append(mask)
            continue
        x1, y1, x2, y2 = mask.box
        xs, ys = np.meshgrid(np.arange(x1, x2) + 0.5, np.arange(y1, y2) + 0.5)
        mine = (xs - centers[mask.index][0]) ** 2 + (ys - centers[mask.index][1]) ** 2
        keep = np.ones(mine.shape, bool)
        for other in others:
            c = centers[other.index]
            theirs = (xs - c[0]) ** 2 + (ys - c[1]) ** 2
            keep &= (mine < theirs) | ((mine == theirs) & (mask.index < other.index))  # a tie goes to the left face
        out.append(FaceRegionMask(mask.index, mask.box, np.where(keep, mask.alpha8, 0).astype(np.uint8),
                                  mask.core & keep, mask.size, mask.source))
    return out


def union(masks: Sequence[FaceRegionMask]) -> np.ndarray:
    """uint8 (H, W): the largest alpha of any mask (0 where no face pass may write)."""
    if not masks:
        raise ValueError("union of no masks")
    out = np.zeros((masks[0].size[1], masks[0].size[0]), np.uint8)
    for mask in masks:
        x1, y1, x2, y2 = mask.box
        np.maximum(out[y1:y2, x1:x2], mask.alpha8, out=out[y1:y2, x1:x2])
    return out


def _boxes_meet(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
