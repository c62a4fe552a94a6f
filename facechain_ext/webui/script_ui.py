"""The controls of the FaceChain accordion under txt2img/img2img (valid on gradio 3.41 and 4: gr.update only).

Returned in `schemas.ARG_NAMES` order. The on/off switch is the accordion's own header checkbox, as for Hires. fix,
Refiner and ADetailer: the host's `modules.ui_components.InputAccordion` (A1111 >= 1.7, Forge), whose value is
"enabled"; a host without it gets a plain accordion with an "Enable FaceChain" checkbox inside. `infotext_fields` maps
our infotext keys back onto the controls, so "Send to txt2img" / pasting parameters restores FaceChain settings;
`paste_field_names` lists the keys the host's send-to buttons carry along. Slider limits are FaceChainArgs' (the
API's) own. The identity and style lists are read again on every page load, when FaceChain is switched on, and by 🔄.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

from ..context import FaceChainContext
from ..infotext import ARG_INFOTEXT_KEYS, KEY_IDENTITY, args_from_infotext
from ..modelcompat import copy_model, field_bounds
from ..schemas import NO_STYLE, RESTORE_CHOICES, FaceChainArgs, FusionArgs, RankingArgs, restore_choice
from .conditioning_ui import build_conditioning_controls, conditioning_infotext_fields, photo_names
from .settings import ui_default


def identity_choices(ctx: FaceChainContext) -> list[str]:
    try:
        return [identity.name for identity in ctx.identities.list()]
    except Exception:  # noqa: BLE001 - an unreadable store must not break the txt2img page; the tab shows why
        return []


def style_labels(ctx: FaceChainContext) -> dict[str, str]:
    """style id -> what the dropdown shows: the style's display name ("Name (id)" where two styles share a name).

    The dropdown's values are these labels (gradio 3.41's Dropdown has no (label, value) pairs); the hooks turn a
    label back into the id (`args_with_ids`), so the API, the infotext and pasting keep using ids."""
    try:
        styles = ctx.styles.list()
    except Exception:  # noqa: BLE001 - an unreadable styles folder must not break the txt2img page
        return {}
    names = [style.name for style in styles]
    return {style.id: style.name if names.count(style.name) == 1 else f"{style.name} ({style.id})" for style in styles}


def style_choices(ctx: FaceChainContext) -> list[str]:
    return [NO_STYLE] + list(style_labels(ctx).values())


def style_label(ctx: FaceChainContext, style_id: Any) -> str:
    """The dropdown value for a style id (a pasted infotext's), or the value itself when it is no known id."""
    if not style_id:
        return NO_STYLE
    return style_labels(ctx).get(str(style_id), str(style_id))


def args_with_ids(ctx: FaceChainContext, args: FaceChainArgs) -> FaceChainArgs:
    """`args` as the API and the infotext name things: the style's id for a display label the accordion sent, and
    photo names for the FACT photo labels. Ids and unknown names pass unchanged (an unknown one is then refused by
    name when the generation is resolved)."""
    changes: dict[str, Any] = {}
    if args.style:
        ids = {label: style_id for style_id, label in style_labels(ctx).items()}
        if args.style in ids and args.style not in ids.values():
            changes["style"] = ids[args.style]
    if args.fact_photos:
        names = photo_names(args.fact_photos)
        if names != list(args.fact_photos):
            changes["fact_photos"] = names
    return copy_model(args, **changes) if changes else args


def _from_infotext(read: Callable[[FaceChainArgs], Any]) -> Callable[[dict], Any]:
    """An infotext_fields reader: the FaceChain value in pasted parameters, or 'leave the control as it is'."""
    import gradio as gr

    def reader(params: dict) -> Any:
        try:
            args = args_from_infotext(params)
        except Exception:  # noqa: BLE001 - malformed pasted text leaves the controls alone
            return gr.update()
        return gr.update() if args is None else read(args)

    return reader


FUSION_BACKEND_CHOICES = ["auto", "blend", "inswapper"]  # FusionArgs.backend
RESTORE_INFO = ("The webui's face restoration (Settings → Face restoration: GFPGAN or CodeFormer) on the fused face. "
                "auto: after the learned inswapper fusion only, as face-swap extensions do; the default blend keeps "
                "the best photo's own detail.")


def fusion_extras(eid: Callable[[str], str]) -> tuple[Any, Any, Any]:
    """Fusion backend, "Restore face" (auto/on/off) and its visibility: one row shared by the accordion and the tab."""
    import gradio as gr

    with gr.Row():
        backend = gr.Dropdown(label="Fusion backend", choices=FUSION_BACKEND_CHOICES, value="auto", elem_id=eid("fusion_backend"))
        restore = gr.Radio(label="Restore face", choices=list(RESTORE_CHOICES), value="auto", info=RESTORE_INFO,
                           elem_id=eid("restore_face"))
        visibility = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Restore visibility", elem_id=eid("restore_visibility"))
    return backend, restore, visibility


@contextlib.contextmanager
def enabled_accordion(elem_id: str) -> Iterator[Any]:
    """The accordion whose header switches FaceChain on; yields the control whose value is "enabled"."""
    import gradio as gr

    try:
        from modules.ui_components import InputAccordion
    except ImportError:  # before A1111 1.7: a plain accordion, the switch inside
        with gr.Accordion("FaceChain", open=False, elem_id=elem_id):
            yield gr.Checkbox(label="Enable FaceChain", value=False, elem_id=f"{elem_id}_enabled")
        return
    with InputAccordion(False, label="FaceChain", elem_id=elem_id) as enabled:
        yield enabled


def build_script_ui(script: Any, ctx: FaceChainContext) -> tuple[list[Any], list, list[str]]:
    """Create the accordion; returns (controls, infotext_fields, paste_field_names)."""
    import gradio as gr

    from .tab_common import choices_update, on_view_open, refresh_button

    def eid(name: str) -> str:
        return script.elem_id(name)

    with enabled_accordion(eid("accordion")) as enabled:
        with gr.Row(elem_classes=["facechain-accordion-row"]):
            identity = gr.Dropdown(label="Identity", choices=identity_choices(ctx), value=None, allow_custom_value=True,
                                   scale=2, min_width=110, elem_id=eid("identity"))  # a pasted infotext may name one not listed
            refresh = refresh_button(eid("refresh"), "Identities and styles: refresh")
            style = gr.Dropdown(label="Style", choices=style_choices(ctx), value=NO_STYLE, scale=2, min_width=110,
                                elem_id=eid("style"))
        likeness = build_conditioning_controls(ctx, identity, eid)
        with gr.Row(elem_classes=["facechain-accordion-row"]):
            lora_weight = gr.Slider(*field_bounds(FaceChainArgs, "lora_weight"), value=ui_default("facechain_lora_weight"),
                                    step=0.05, label="LoRA weight", elem_id=eid("lora_weight"))
            fusion_strength = gr.Slider(*field_bounds(FusionArgs, "strength"), value=ui_default("facechain_fusion_strength"),
                                        step=0.05, label="Fusion strength", elem_id=eid("fusion_strength"))
        with gr.Accordion("Fusion backend and face restoration", open=False, elem_id=eid("fusion_options")):
            fusion_backend, restore_face, restore_visibility = fusion_extras(eid)
        with gr.Row(elem_classes=["facechain-accordion-row"]):
            top_k = gr.Slider(0, field_bounds(RankingArgs, "top_k")[1], value=ui_default("facechain_ranking_top_k"), step=1,
                              label="Keep the best K (0 = all)", elem_id=eid("top_k"))
            min_score = gr.Slider(0.0, field_bounds(RankingArgs, "min_score")[1], value=0.0, step=0.01,
                                  label="Min. similarity (0 = off)", elem_id=eid("min_score"))
        with gr.Row(elem_classes=["facechain-accordion-row", "facechain-checkbox-row"]):
            check = dict(min_width=0, elem_classes=["facechain-check"])  # natural widths, labels never broken (style.css)
            fusion_enabled = gr.Checkbox(label="Face fusion", value=True, elem_id=eid("fusion_enabled"), **check)
            ranking_enabled = gr.Checkbox(label="Rank by similarity", value=True, elem_id=eid("ranking_enabled"), **check)
            drop_no_face = gr.Checkbox(label="Drop no-face images", value=False, elem_id=eid("drop_no_face"), **check)

    def refresh_choices(current_identity: Any, current_style: Any) -> tuple[Any, Any]:
        """Identities and styles as they are now; a pasted identity that is not listed stays chosen."""
        ctx.styles.reload()
        styles = style_choices(ctx)
        style_value = current_style if current_style in styles else NO_STYLE
        return (choices_update(identity_choices(ctx), current_identity, keep_missing=True),
                gr.update(choices=styles, value=style_value))

    lists = dict(fn=refresh_choices, inputs=[identity, style], outputs=[identity, style], show_progress="hidden")
    refresh.click(**lists)
    enabled.change(**lists)
    on_view_open(**{k: v for k, v in lists.items() if k != "show_progress"})

    controls = [enabled, identity, lora_weight, style, fusion_enabled, fusion_strength, ranking_enabled, top_k, min_score,
                drop_no_face, fusion_backend, restore_face, restore_visibility, *likeness.values]
    infotext_fields = [
        (enabled, lambda params: KEY_IDENTITY in params),
        (identity, _from_infotext(lambda a: gr.update(value=a.identity))),
        (lora_weight, _from_infotext(lambda a: a.lora_weight if a.lora_weight is not None else gr.update())),
        (style, _from_infotext(lambda a: style_label(ctx, a.style))),
        (fusion_enabled, _from_infotext(lambda a: a.fusion.enabled)),
        (fusion_strength, _from_infotext(lambda a: a.fusion.strength)),
        (ranking_enabled, _from_infotext(lambda a: a.ranking.enabled)),
        (top_k, _from_infotext(lambda a: a.ranking.top_k or 0)),
        (min_score, _from_infotext(lambda a: a.ranking.min_score or 0.0)),
        (drop_no_face, _from_infotext(lambda a: a.ranking.drop_no_face)),
        (fusion_backend, _from_infotext(lambda a: a.fusion.backend)),
        (restore_face, _from_infotext(lambda a: restore_choice(a.fusion.restore_face))),
        (restore_visibility, _from_infotext(lambda a: a.fusion.restore_visibility)),
        *conditioning_infotext_fields(likeness, _from_infotext, ctx),
    ]
    return controls, infotext_fields, list(ARG_INFOTEXT_KEYS)
