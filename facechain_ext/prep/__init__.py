"""Training-photo preparation: photos of one person in, 512x512 training crops with captions and a report out.

`prepare_photos(photos, analyzer, options)` is the entry point; see `pipeline.py` for the steps.
"""

from __future__ import annotations

from .headmask import HeadMasker, apply_head_mask
from .options import PrepOptions
from .parsing import head_masker_for
from .pipeline import prepare_photos
from .report import PhotoResult, PreparationReport

__all__ = [
    "HeadMasker",
    "PhotoResult",
    "PrepOptions",
    "PreparationReport",
    "apply_head_mask",
    "head_masker_for",
    "prepare_photos",
]
