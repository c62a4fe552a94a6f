"""What a fusion call hands back: the image, whether anything changed, and why not when it didn't."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ..faces.types import Face

# Reasons a fusion left the image as it was (stable strings: infotext, API and UI show them).
NO_FACE = "no_face"
ZERO_STRENGTH = "zero_strength"


@dataclass
class FusionResult:
    image: Image.Image
    applied: bool
    reason: str | None = None  # set whenever applied is False (never a silent no-op)
    backend: str | None = None  # "blend" | "inswapper"
    faces_fused: int = 0
    # Pixels that may differ from the input (True) — everything else is bit-identical. None when nothing was applied.
    mask: np.ndarray | None = None
    region: tuple[int, int, int, int] | None = None  # x1, y1, x2, y2 (exclusive) bounding box of `mask`
    # The target's faces as detected (largest first; None when no detection ran). Fusion keeps faces where they
    # were, so ranking can reuse these instead of detecting again (`ranking.score_images(..., faces=...)`).
    target_faces: list[Face] | None = None
    restored: bool = False  # the restorer ran on every fused face
    restore_error: str | None = None  # why restoration was abandoned (the fused image is kept as it was before it)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the image itself is encoded by the caller)."""
        return {
            "applied": self.applied,
            "reason": self.reason,
            "backend": self.backend,
            "faces_fused": self.faces_fused,
            "region": None if self.region is None else list(self.region),
            "restored": self.restored,
            "restore_error": self.restore_error,
        }
