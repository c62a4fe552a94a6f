"""Knobs of training-photo preparation, with FaceChain's published values as defaults."""

from __future__ import annotations

from dataclasses import dataclass

from .headmask import HeadMasker


@dataclass(frozen=True)
class PrepOptions:
    resolution: int = 512  # side of the square training crop
    trigger: str = "fcsks"  # the token the LoRA learns; FaceChain used <fcsks>
    phrase: str | None = None  # user override of the class phrase ("a handsome man", ...)
    head_mask: bool = False  # paint everything but the head white (needs `head_masker`)
    head_masker: HeadMasker | None = None  # a face-parsing model; None means "background kept"
    # FaceChain's crop geometry: square of 3.29 x the face box's long side, face centre at (0.5, 0.435).
    crop_scale: float = 3.29
    face_center_y: float = 0.435
    multi_face_ratio: float = 4.0  # keep a multi-face photo only when the largest face is >= 4x the next
    min_face_size: int = 64  # face box long side in the photo's own pixels
    roll_tolerance: float = 2.0  # degrees of eye-line tilt below which we do not resample the photo
    check_identity: bool = True  # reject photos of someone other than the majority (`different_person`)
    # Near-duplicates need BOTH a near-identical identity embedding and a near-identical crop.
    duplicate_embedding_similarity: float = 0.92
    duplicate_image_similarity: float = 0.97  # whole-photo thumbnails: copies ~0.9999, distinct photos <= 0.82
    child_age: float = 13.0  # median age below this -> "a boy" / "a girl"
    mature_age: float = 50.0  # median age at or above this -> "a mature man" / "a mature woman"

    @property
    def face_side_in_crop(self) -> float:
        """Face box long side (px) in the final crop."""
        return self.resolution / self.crop_scale
