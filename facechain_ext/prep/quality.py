"""Per-photo quality: how good a training photo (and fusion reference) this is, from four measurable cues.

- detection: the detector's confidence (0..1),
- sharpness: variance of the Laplacian over the face in the 512 crop (blurred or upscaled faces score low),
- size: the face's size in the original photo relative to what the crop needs (no upsampling = 1),
- frontalness: left/right symmetry of the five keypoints (a profile face scores low).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from ..faces.types import Face

# Laplacian variance at which sharpness counts as "half good"; sharp 512 crops of the test photos measure 2000-10000,
# a 2 px Gaussian blur brings them to ~800, 4 px to ~180.
SHARPNESS_HALF = 800.0
WEIGHTS = {"detection": 0.2, "sharpness": 0.3, "size": 0.2, "frontalness": 0.3}


@dataclass(frozen=True)
class Quality:
    score: float  # weighted mean of the four cue scores, 0..1
    detection: float
    sharpness: float  # raw Laplacian variance
    sharpness_score: float
    face_size: float  # face box long side in the original photo, px
    size_score: float
    frontalness: float

    def to_dict(self) -> dict[str, float]:
        return {key: round(float(value), 4) for key, value in asdict(self).items()}


def laplacian_variance(image: Image.Image, box: tuple[float, float, float, float]) -> float:
    """Variance of the Laplacian of the grey image inside `box` (x1, y1, x2, y2)."""
    import cv2  # lazy: heavy import

    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1 = max(x1, 0), max(y1, 0)
    x2, y2 = min(x2, image.width), min(y2, image.height)
    if x2 - x1 < 3 or y2 - y1 < 3:
        return 0.0
    grey = np.asarray(image.convert("L"), dtype=np.float32)[y1:y2, x1:x2]
    return float(cv2.Laplacian(grey, cv2.CV_32F, ksize=3).var())


def frontalness(kps: np.ndarray) -> float:
    """1.0 for a symmetric frontal face, falling towards 0 as the head turns (yaw) away from the camera."""
    kps = np.asarray(kps, dtype=np.float64)
    nose = kps[2]

    def balance(a: np.ndarray, b: np.ndarray) -> float:
        da, db = float(np.linalg.norm(a - nose)), float(np.linalg.norm(b - nose))
        return min(da, db) / max(da, db) if max(da, db) > 0 else 0.0

    return 0.5 * balance(kps[0], kps[1]) + 0.5 * balance(kps[3], kps[4])


def assess(face_in_crop: Face, crop: Image.Image, face_size: float, needed_size: float) -> Quality:
    """Quality of one prepared photo; `face_in_crop` is the face mapped into `crop`'s pixels."""
    sharp = laplacian_variance(crop, face_in_crop.bbox)
    cues = {
        "detection": float(np.clip(face_in_crop.score, 0.0, 1.0)),
        "sharpness": sharp / (sharp + SHARPNESS_HALF),
        "size": float(min(1.0, face_size / needed_size)) if needed_size > 0 else 1.0,
        "frontalness": frontalness(face_in_crop.kps),
    }
    score = sum(WEIGHTS[key] * value for key, value in cues.items())
    return Quality(
        score=score if math.isfinite(score) else 0.0,
        detection=cues["detection"],
        sharpness=sharp,
        sharpness_score=cues["sharpness"],
        face_size=face_size,
        size_score=cues["size"],
        frontalness=cues["frontalness"],
    )
