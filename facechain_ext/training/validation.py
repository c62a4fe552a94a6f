"""Best-checkpoint selection for a training job: the host-facing half of `lora.selection.select_best`.

`select_best` decides (best mean face similarity, or the average of the top k; the last snapshot when no validation
image has a face). This module supplies what it needs from a real run: rendering a snapshot means attaching its
LoRA weights to the live UNet in-process (no file, no `<lora:>` tag) and calling the caller's renderer with the same
prompts and seeds for every snapshot; scoring means comparing the largest face with the identity's reference
embedding. It also reports progress per snapshot and honours cancel between and right after renders.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..errors import FaceChainError

if TYPE_CHECKING:
    from PIL import Image

    from ..jobs import JobHandle

RenderFn = Callable[[Sequence[str], Sequence[int]], "list[Image.Image]"]


@dataclasses.dataclass
class ValidationOutcome:
    state_dict: dict
    validation: list[dict[str, Any]]  # per snapshot: step, score, image_scores, faces, chosen, images (paths, later)
    images: dict[int, list[Any]]  # step -> rendered PIL images (saved by the caller once the LoRA is published)
    best_image: Any
    notes: list[str]


def face_similarity(image: Image.Image, analyzer: Any, reference: np.ndarray) -> float | None:
    """Cosine similarity of the image's largest face to the reference embedding; None without a face."""
    faces = analyzer.detect(np.asarray(image.convert("RGB")), embed=True)
    if not faces or faces[0].embedding is None:
        return None
    from ..faces.similarity import cosine_similarity

    return cosine_similarity(faces[0].embedding, reference)


@contextmanager
def snapshot_attached(model: Any, config: Any, state_dict: dict) -> Iterator[None]:
    """The UNet with one snapshot's LoRA weights live in it; restored exactly afterwards (`lora.inject.lora_attached`)."""
    import torch

    from ..lora.inject import lora_attached

    with torch.no_grad(), lora_attached(model, config) as session:
        session.load_state_dict(state_dict)
        yield


def validate_snapshots(
    snapshots: Sequence[Any],
    model: Any,
    config: Any,
    prompts: Sequence[str],
    seeds: Sequence[int],
    render: RenderFn,
    score: Callable[[Any], float | None],
    handle: JobHandle,
    top_k: int = 1,
) -> ValidationOutcome:
    """Render every snapshot with the same prompts/seeds, score the faces and let `select_best` choose."""
    from ..lora.selection import select_best

    total, done = len(snapshots), [0]

    def render_snapshot(state_dict: dict) -> list:
        if handle.cancelled:
            raise FaceChainError("cancelled", "Training was cancelled during validation; nothing was written.")
        handle.progress(done[0], total, f"Validating snapshot {done[0] + 1}/{total}")
        with snapshot_attached(model, config, state_dict):
            images = list(render(prompts, seeds))
        if handle.cancelled:  # e.g. the host's Interrupt stopped the sampler half-way: these images mean nothing
            raise FaceChainError("cancelled", "Training was cancelled during validation; nothing was written.")
        done[0] += 1
        return images

    selection = select_best(snapshots, render_snapshot, score, top_k=top_k)
    handle.progress(total, total, "Validation done")
    chosen = set(selection.chosen_steps)
    validation = [
        {
            "step": s.step,
            "score": None if s.mean is None else round(float(s.mean), 4),
            "image_scores": [None if v is None else round(float(v), 4) for v in s.scores],
            "faces": sum(v is not None for v in s.scores),
            "chosen": s.step in chosen,
            "images": [],
        }
        for s in selection.scores
    ]
    notes = [selection.note] if selection.note else [_chosen_note(validation, selection.chosen_steps)]
    images = {s.step: list(s.images) for s in selection.scores}
    return ValidationOutcome(selection.state_dict, validation, images, selection.best_image, notes)


def _chosen_note(validation: list[dict], steps: list[int]) -> str:
    if len(steps) > 1:
        return f"Averaged the {len(steps)} best snapshots (steps {', '.join(map(str, sorted(steps)))})."
    best = next(v for v in validation if v["step"] == steps[0])
    return f"Kept snapshot step {best['step']} (mean face similarity {best['score']:.3f})."
