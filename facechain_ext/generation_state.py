"""Per-generation state: what one FaceChain generation (one host `process_images` call) resolved and learned.

`GenerationState` holds the arguments, the prompt plan, the resolved LoRA/style, per-image records (fused?, score)
and the final order after ranking. The host glue keeps it on the processing object `p` (`attach_state`), never on
the Script instance, so nothing leaks between generations or between the UI and the API. ("Job" is reserved for the
background queue in jobs.py; the host's own unit of work is a "host task", see webui/host_task.py.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from .prompts import PromptPlan
from .schemas import FaceChainArgs

if TYPE_CHECKING:
    from .fact_runtime import FactJob

STATE_ATTR = "_facechain_generation"  # attribute name on the host's processing object


@dataclass
class ImageRecord:
    """What FaceChain did to one generated image."""

    position: int  # index in generation order within the generation
    seed: Optional[int]
    subseed: Optional[int]
    fused: bool = False
    fusion_note: Optional[str] = None  # why fusion was not applied
    restored: bool = False  # the host's face restoration was applied after fusion
    score: Optional[float] = None  # similarity to the identity; None when no usable face was found
    face_count: Optional[int] = None
    score_note: Optional[str] = None  # why there is no score


@dataclass
class GenerationState:
    """Everything one generation needs and learns; lives on `p` (see attach_state)."""

    args: FaceChainArgs
    plan: PromptPlan
    lora_name: Optional[str] = None
    style_id: Optional[str] = None
    reference_photo: Optional[str] = None  # path of the identity's best photo (fusion source)
    comments: list[str] = field(default_factory=list)
    prompted_batches: set[int] = field(default_factory=set)
    records: list[ImageRecord] = field(default_factory=list)
    ranked: bool = False
    order: Optional[list[int]] = None  # positions of the returned images after ranking (None: not ranked)
    wants_fact: bool = False  # the arguments ask for FACT (fact_runtime.resolve_conditioning)
    fact: Optional[FactJob] = None  # FACT's part of the generation (tokens, scale), when FACT can run

    def add_record(self, seed: Optional[int], subseed: Optional[int]) -> ImageRecord:
        record = ImageRecord(position=len(self.records), seed=seed, subseed=subseed)
        self.records.append(record)
        return record

    def find_record(self, seed: Any, subseed: Any) -> Optional[ImageRecord]:
        """The newest record for this seed pair (seeds identify images in the host's infotext calls)."""
        for record in reversed(self.records):
            if record.seed == seed and (subseed is None or record.subseed == subseed):
                return record
        return None

    def comment(self, text: str) -> None:
        if text not in self.comments:
            self.comments.append(text)


def attach_state(p: Any, state: GenerationState) -> None:
    setattr(p, STATE_ATTR, state)


def get_state(p: Any) -> Optional[GenerationState]:
    state = getattr(p, STATE_ATTR, None)
    return state if isinstance(state, GenerationState) else None


def detach_state(p: Any) -> Optional[GenerationState]:
    state = get_state(p)
    if hasattr(p, STATE_ATTR):
        delattr(p, STATE_ATTR)
    return state
