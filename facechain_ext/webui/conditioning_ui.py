"""The "likeness" controls shared by the txt2img/img2img accordion and the Generate view: conditioning (LoRA / FACT /
LoRA + FACT / auto), FACT scale and the photos that feed FACT, plus a line saying what "auto" does for the identity.

Values map 1:1 onto `FaceChainArgs.conditioning`, `fact_scale`, `fact_photo_count`, `fact_photos` (the ARG_NAMES
order). The photo list is the identity's accepted photos, best quality first (their quality scores come from the
identity's preparation report, facechain_ext/fact/faceinput.py `identity_photos`); leaving it empty means "the N
best by quality". The dropdown shows "name (quality 0.91)" labels as its values (gradio 3.41's Dropdown has no
(label, value) pairs); `photo_names` turns them back into the photo names the arguments carry.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..context import FaceChainContext
from ..errors import FaceChainError
from ..prompts import format_number

CONDITIONING_CHOICES = [("Auto", "auto"), ("LoRA", "lora"), ("FACT (train-free)", "fact"), ("LoRA + FACT", "lora+fact")]
DEFAULT_FACT_SCALE = 0.5  # FaceChain's txt2img value (FACECHAIN_FACTS.md §5)
MAX_FACT_PHOTOS = 4  # facechain_ext/fact/faceinput.py MAX_PHOTOS


@dataclass(frozen=True)
class ConditioningControls:
    """The controls in ARG_NAMES order (`values`) and the explanatory line (`note`)."""

    conditioning: Any
    fact_scale: Any
    fact_photo_count: Any
    fact_photos: Any
    note: Any

    @property
    def values(self) -> list[Any]:
        return [self.conditioning, self.fact_scale, self.fact_photo_count, self.fact_photos]


def fact_photo_choices(ctx: FaceChainContext, name: Optional[str]) -> list[tuple[str, str]]:
    """(label, photo name) of the identity's accepted photos, best quality first; [] when there are none."""
    if not name:
        return []
    try:
        from ..fact.faceinput import identity_photos

        photos = identity_photos(ctx.identities.path(str(name)))
    except (FaceChainError, OSError):
        return []
    return [(f"{photo.name} (quality {format_number(photo.score)})", photo.name) for photo in photos]


QUALITY_SUFFIX = re.compile(r" \(quality [^()]*\)$")


def photo_labels(ctx: FaceChainContext, name: Optional[str]) -> list[str]:
    """The dropdown's choices for identity `name`: "photo name (quality 0.91)", best quality first."""
    return [label for label, _ in fact_photo_choices(ctx, name)]


def photo_names(values: Any) -> list[str]:
    """Photo names from the dropdown's values (labels) or from names as such (API, pasted infotext)."""
    return [QUALITY_SUFFIX.sub("", str(value)) for value in (values or []) if str(value).strip()]


def labels_for(ctx: FaceChainContext, identity: Optional[str], names: Any) -> list[str]:
    """The dropdown values for these photo names of `identity` (a name it does not have stays as it is)."""
    by_name = {value: label for label, value in fact_photo_choices(ctx, identity)}
    return [by_name.get(name, name) for name in photo_names(names)]


def likeness_note(ctx: FaceChainContext, name: Optional[str]) -> str:
    """What "auto" uses for identity `name` (HTML): its LoRA, FACT, or neither and exactly what is missing."""
    if not name:
        return ""
    try:
        identity = ctx.identities.get(str(name))
    except FaceChainError as err:
        return f"<p class='facechain-note'>{html.escape(err.message)}</p>"
    from ..portraits import fact_problem

    problem = fact_problem(ctx)
    fact = "FACT is installed" if problem is None else "FACT is not installed"
    who = f"<b>{html.escape(identity.name)}</b>"
    if identity.loras:
        newest = max(identity.loras, key=lambda record: str(record.get("created", "")))
        text = (f"Auto uses the LoRA <code>{html.escape(str(newest.get('name', '')))}</code> of {who}. "
                f"{html.escape(fact)}.")
    elif problem is None:
        best = fact_photo_choices(ctx, identity.name)[:1]
        photo = f" with {html.escape(best[0][0])}" if best else ""
        text = f"{who} has no LoRA yet: Auto uses FACT (train-free){photo}."
    else:
        text = f"{who} has no LoRA yet and {html.escape(fact)}."
    if problem is not None:  # the file, its folder and how to get it: long, so behind a toggle
        text += (f"<details class='facechain-details'><summary>What FACT needs</summary>{html.escape(problem)}"
                 "</details>")
    return f"<p class='facechain-note'>{text}</p>"


def build_conditioning_controls(ctx: FaceChainContext, identity: Any, eid: Callable[[str], str]) -> ConditioningControls:
    """Create the controls in the current gradio context; `identity` is the identity dropdown they follow."""
    import gradio as gr

    conditioning = gr.Radio(label="Likeness from", choices=CONDITIONING_CHOICES, value="auto",
                            elem_id=eid("conditioning"))
    with gr.Accordion("FACT options", open=False, elem_id=eid("fact_options")):
        with gr.Row():
            fact_scale = gr.Slider(0.0, 1.5, value=DEFAULT_FACT_SCALE, step=0.05, label="FACT scale",
                                   elem_id=eid("fact_scale"))
            count = gr.Slider(1, MAX_FACT_PHOTOS, value=1, step=1, label="FACT photos",
                              info="the best by quality", elem_id=eid("fact_photo_count"))
        photos = gr.Dropdown(label=f"Or choose FACT photos (up to {MAX_FACT_PHOTOS})", choices=[], value=[],
                             multiselect=True, max_choices=MAX_FACT_PHOTOS, elem_id=eid("fact_photos"))
    note = gr.HTML("", elem_id=eid("likeness_note"))

    def follow_identity(name: Any, chosen: Any) -> tuple[Any, str]:
        labels = photo_labels(ctx, name)
        kept = [label for label in labels_for(ctx, name, chosen) if label in labels]  # a pasted choice survives
        return gr.update(choices=labels, value=kept), likeness_note(ctx, name)

    identity.change(fn=follow_identity, inputs=[identity, photos], outputs=[photos, note])
    return ConditioningControls(conditioning, fact_scale, count, photos, note)


def conditioning_infotext_fields(controls: ConditioningControls, reader: Callable[[Callable], Any],
                                 ctx: Optional[FaceChainContext] = None) -> list[tuple]:
    """infotext_fields entries restoring the controls; `reader(fn)` wraps fn(FaceChainArgs) -> value (script_ui)."""
    import gradio as gr

    def photos(args: Any) -> Any:
        names = list(args.fact_photos or [])
        return gr.update(value=labels_for(ctx, args.identity, names) if ctx is not None else names)

    return [
        (controls.conditioning, reader(lambda a: a.conditioning)),
        (controls.fact_scale, reader(lambda a: a.fact_scale)),
        (controls.fact_photo_count, reader(lambda a: a.fact_photo_count)),
        (controls.fact_photos, reader(photos)),
    ]
