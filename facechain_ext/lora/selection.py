"""Best-checkpoint selection by face similarity (FaceChain's "ensemble" variant, EasyPhoto's validation).

The caller supplies how to render a snapshot (through the host, same seeds for every snapshot) and how to score an
image (similarity of its main face to the identity's reference embedding, None when there is no face). The
snapshot with the best mean score wins, or the average of the top-k. If no validation image has a face — e.g. an
untrained or test model — the last snapshot is kept and the result says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from facechain_ext.lora.snapshots import Snapshot, average_snapshots


@dataclass
class SnapshotScore:
    step: int
    scores: list[float | None]  # one per validation image; None = no face found
    images: list[Any] = field(default_factory=list, repr=False)

    @property
    def mean(self) -> float | None:
        found = [s for s in self.scores if s is not None]
        return sum(found) / len(found) if found else None

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "scores": list(self.scores), "mean": self.mean}


@dataclass
class Selection:
    state_dict: dict[str, torch.Tensor]
    chosen_steps: list[int]
    scores: list[SnapshotScore]
    note: str | None = None
    best_image: Any = None  # highest-scoring validation image of the chosen snapshot(s), for the preview

    def to_dict(self) -> dict[str, Any]:
        return {"chosen_steps": self.chosen_steps, "scores": [s.to_dict() for s in self.scores], "note": self.note}


def select_best(
    snapshots: Sequence[Snapshot],
    render_fn: Callable[[dict[str, torch.Tensor]], list[Any]],
    score_fn: Callable[[Any], float | None],
    top_k: int = 1,
) -> Selection:
    """Render and score every snapshot; keep the best one (top_k=1) or the delta-average of the top_k."""
    if not snapshots:
        raise ValueError("select_best needs at least one snapshot")
    scored = []
    for snap in snapshots:
        images = list(render_fn(snap.state_dict))
        scored.append(SnapshotScore(snap.step, [score_fn(image) for image in images], images))
    ranked = sorted((s for s in scored if s.mean is not None), key=lambda s: s.mean, reverse=True)
    if not ranked:
        last = snapshots[-1]
        note = (f"No validation image contained a face, so snapshots could not be compared; kept the last one "
                f"(step {last.step}).")
        return Selection({k: v.clone() for k, v in last.state_dict.items()}, [last.step], scored, note)
    chosen = ranked[: max(1, top_k)]
    by_step = {snap.step: snap for snap in snapshots}
    state = average_snapshots([by_step[s.step] for s in chosen])
    return Selection(state, [s.step for s in chosen], scored, None, _best_image(chosen))


def _best_image(chosen: list[SnapshotScore]) -> Any:
    pairs = [(score, image) for s in chosen for score, image in zip(s.scores, s.images, strict=True) if score is not None]
    return max(pairs, key=lambda pair: pair[0])[1] if pairs else None
