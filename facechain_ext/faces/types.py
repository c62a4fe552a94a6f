"""The backend-independent record of one detected face."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

# Keypoint order used everywhere (insightface's): the eye on the image's left, the eye on the image's right,
# nose tip, left mouth corner, right mouth corner (left/right as seen in the image).
KEYPOINT_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass
class Face:
    """One detected face.

    Coordinate convention: pixels of the analysed image, x to the right, y down. `bbox` as reported by
    `FaceAnalyzer.detect` is clipped to the image (0 <= x1 <= x2 <= width, 0 <= y1 <= y2 <= height), so for a face
    cut by the border it covers the visible part only (detectors extend boxes past the edge, e.g. [-26, -26, 190, 190]
    in a 224 x 224 image). `kps` and `landmarks` are NOT clipped: they are where the eyes, nose and mouth are, and
    may lie outside the image; alignment, fusion masks and crops work from them and pad or clip their own output.
    Faces mapped into another frame (a prepared crop, a levelled region) follow that frame and may extend past it.
    """

    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2, clipped to the analysed image (see above)
    score: float  # detection confidence in [0, 1] (dlib HOG scores are squashed into this range)
    kps: np.ndarray  # (5, 2) float32, order KEYPOINT_NAMES
    backend: str
    embedding: Optional[np.ndarray] = None  # L2-normalised identity embedding, float32
    landmarks: Optional[np.ndarray] = None  # dense landmarks (N, 2) when the backend gives them
    gender: Optional[str] = None  # "male" | "female"
    age: Optional[float] = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> float:
        return self.bbox[2] - self.bbox[0]

    @property
    def height(self) -> float:
        return self.bbox[3] - self.bbox[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def long_side(self) -> float:
        return max(self.width, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.bbox[0] + self.bbox[2]) / 2.0, (self.bbox[1] + self.bbox[3]) / 2.0)

    def is_upright(self) -> bool:
        """Eyes above the mouth: the photo is not upside down or sideways for this face."""
        eyes_y = float(self.kps[:2, 1].mean())
        mouth_y = float(self.kps[3:, 1].mean())
        eye_dx = abs(float(self.kps[1, 0] - self.kps[0, 0]))
        return mouth_y - eyes_y > 0.5 * eye_dx

    def to_dict(self, scale: float = 1.0) -> dict[str, Any]:
        """JSON-ready summary used by the API and the CLI; coordinates divided by `scale` (analysed pixels per
        pixel of the photo as sent, see `imaging.load_scale`)."""
        return {
            "bbox": [round(float(v) / scale, 2) for v in self.bbox],
            "score": round(float(self.score), 4),
            "kps": [[round(float(x) / scale, 2), round(float(y) / scale, 2)] for x, y in self.kps],
            "gender": self.gender,
            "age": None if self.age is None else round(float(self.age), 1),
        }
