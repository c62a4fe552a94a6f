"""Pose and edge guidance for template passes, the host-independent part: FaceChain's recipe as data.

FaceChain's fixed-template mode ran two ControlNets on every face pass (modelscope/facechain v3.0.0
`facechain/inference_inpaint.py`): openpose of the template (hands on, face off) at conditioning scale 1.0, and
canny edges of the template (thresholds 100/200) with the repainted face region blanked, at 0.2, so the edges hold
the composition and clothes without pinning the old face. The host glue (`webui/controlnet.py`) turns this into
the host ControlNet's units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

POSE_WEIGHT = 1.0
CANNY_WEIGHT = 0.2
CANNY_LOW, CANNY_HIGH = 100, 200


@dataclass(frozen=True)
class GuidanceRequest:
    pose: bool
    canny: bool

    @property
    def any(self) -> bool:
        return self.pose or self.canny


def canny_map(template: Image.Image, blank: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) canny edges of `template`, zero where `blank` (uint8/bool (H, W)) is non-zero.

    FaceChain blanked the face mask in its canny image (`canny_image * (1.0 - mask)`); we blank every chosen face's
    mask, so no pass is pulled back toward a face it is replacing.
    """
    import cv2

    gray = cv2.cvtColor(np.asarray(template.convert("RGB")), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, CANNY_LOW, CANNY_HIGH)
    edges[np.asarray(blank) > 0] = 0
    return np.repeat(edges[:, :, None], 3, axis=2)


SKELETON_DARK_FRACTION = 0.6  # openpose renders are coloured limbs on black: most pixels are (near) black
SKELETON_DARK_LEVEL = 24  # max channel value counted as black (JPEG-saved renders are not exactly 0)


def is_pose_skeleton(image: Image.Image) -> bool:
    """True for an openpose skeleton render (used as the control image as is), False for a photo (which needs
    ControlNet's openpose preprocessor). Photos are rarely more than 60 % near-black; renders are mostly black."""
    small = image.convert("RGB")
    small.thumbnail((256, 256))
    pixels = np.asarray(small)
    return float((pixels.max(axis=2) < SKELETON_DARK_LEVEL).mean()) > SKELETON_DARK_FRACTION
