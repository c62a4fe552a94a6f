"""What preparation tells the user: one `PhotoResult` per input photo and a `PreparationReport` over all."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from ..faces.types import Face

ACCEPTED = "accepted"
REJECTED = "rejected"


@dataclass
class PhotoResult:
    path: str  # the name the caller gave the photo (file path or upload name)
    status: str = REJECTED  # "accepted" | "rejected"
    code: str | None = None  # None when accepted; a FaceChainError-style code when rejected
    message: str = ""
    quality: dict[str, float] | None = None
    crop: Image.Image | None = None  # resolution x resolution RGB training crop
    caption: str | None = None
    face: Face | None = None  # the kept face, in the crop's pixel coordinates (with its embedding)
    rotation: float = 0.0  # degrees counter-clockwise (-180..180) that made the face upright (orientation + roll)

    @property
    def accepted(self) -> bool:
        return self.status == ACCEPTED

    @property
    def score(self) -> float:
        return float(self.quality["score"]) if self.quality else 0.0

    def reject(self, code: str, message: str) -> None:
        self.status, self.code, self.message, self.caption = REJECTED, code, message, None

    def to_dict(self, crop_path: str | None = None) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "crop": crop_path,
            "caption": self.caption,
            "quality": self.quality,
            "rotation": round(float(self.rotation), 2),
            "face": None if self.face is None else self.face.to_dict(),
        }


@dataclass
class PreparationReport:
    photos: list[PhotoResult]
    trigger: str
    phrase: str
    phrase_source: str  # "user" | "attributes" | "neutral"
    best_photo: str | None
    backend: str
    background: str  # "kept" | "masked"
    resolution: int
    notes: list[str] = field(default_factory=list)

    @property
    def caption(self) -> str:
        return f"{self.trigger}, {self.phrase}" if self.trigger else self.phrase

    @property
    def accepted(self) -> list[PhotoResult]:
        return [p for p in self.photos if p.accepted]

    @property
    def rejected(self) -> list[PhotoResult]:
        return [p for p in self.photos if not p.accepted]

    @property
    def best(self) -> PhotoResult | None:
        return next((p for p in self.photos if p.accepted and p.path == self.best_photo), None)

    def counts(self) -> dict[str, int]:
        codes = Counter(p.code for p in self.rejected)
        return {
            "total": len(self.photos),
            "accepted": len(self.accepted),
            "rejected": len(self.rejected),
            **dict(sorted(codes.items())),
        }

    def to_dict(self, crop_paths: Mapping[int, str] | None = None) -> dict[str, Any]:
        """JSON-ready report; `crop_paths` maps a photo's index to where its crop was written."""
        paths = crop_paths or {}
        return {
            "caption": self.caption,
            "trigger": self.trigger,
            "phrase": self.phrase,
            "phrase_source": self.phrase_source,
            "best_photo": self.best_photo,
            "backend": self.backend,
            "background": self.background,
            "resolution": self.resolution,
            "counts": self.counts(),
            "notes": list(self.notes),
            "photos": [p.to_dict(paths.get(i)) for i, p in enumerate(self.photos)],
        }
