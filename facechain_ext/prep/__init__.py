"""Training-photo preparation: photos of one person in, 512x512 training crops with captions and a report out.

`prepare_photos(photos, analyzer, options)` is the entry point; see `pipeline.py` for the steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .headmask import HeadMasker, apply_head_mask
from .options import PrepOptions
from .parsing import head_masker_for
from .pipeline import prepare_photos
from .report import PhotoResult, PreparationReport

if TYPE_CHECKING:
    from ..config import Settings


def options_for(
    settings: Settings, *, phrase: str | None = None, head_mask: bool | None = None, trigger: str | None = None
) -> PrepOptions:
    """PrepOptions as every surface uses them (tab, API, CLI through `identity_creation`).

    `head_mask=None` masks when the parsing model is installed; True asks for it (a note says when it is missing);
    False never masks. `trigger=None` keeps FaceChain's trigger word.
    """
    masker = head_masker_for(settings) if head_mask is not False else None
    extra = {"trigger": trigger} if trigger else {}
    return PrepOptions(phrase=phrase or None, head_mask=masker is not None or bool(head_mask), head_masker=masker, **extra)

__all__ = [
    "HeadMasker",
    "PhotoResult",
    "PrepOptions",
    "PreparationReport",
    "apply_head_mask",
    "head_masker_for",
    "options_for",
    "prepare_photos",
]
