"""The controls of the FaceChain accordion under txt2img/img2img (valid on gradio 3.41 and 4: gr.update only).

Returned in `schemas.ARG_NAMES` order. `infotext_fields` maps our infotext keys back onto the controls, so
"Send to txt2img" / pasting parameters restores FaceChain settings; `paste_field_names` lists the keys the host's
send-to buttons carry along.
"""

from __future__ import annotations

from typing import Any, Callable

from ..context import FaceChainContext
from ..infotext import ARG_INFOTEXT_KEYS, KEY_IDENTITY, args_from_infotext
from ..schemas import NO_STYLE, RESTORE_CHOICES, FaceChainArgs, restore_choice
from .conditioning_ui import build_conditioning_controls, conditioning_infotext_fields
from .settings import ui_default


def identity_choices(ctx: FaceChainContext) -> list[str]:
    try:
        return [identity.name for identity in ctx.identities.list()]
    except Exception:  # noqa: BLE001 - an unreadable store must not break the txt2img page; the tab shows why
        return []


def style_choices(ctx: FaceChainContext) -> list[str]:
    try:
        return [NO_STYLE] + ctx.styles.ids()
    except Exception:  # noqa: BLE001 - same reason
        return [NO_STYLE]


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


def build_script_ui(script: Any, ctx: FaceChainContext) -> tuple[list[Any], list, list[str]]:
    """Create the accordion; returns (controls, infotext_fields, paste_field_names)."""
    import gradio as gr

    def eid(name: str) -> str:
        return script.elem_id(name)

    with gr.Accordion("FaceChain", open=False, elem_id=eid("accordion")):
        with gr.Row():
            enabled = gr.Checkbox(label="Enable FaceChain", value=False, elem_id=eid("enabled"))
            identity = gr.Dropdown(label="Identity", choices=identity_choices(ctx), value=None, allow_custom_value=True,
                                   scale=3, elem_id=eid("identity"))  # a pasted infotext may name an identity not listed
            # a small icon button like the host's own refresh buttons ("tool" is the class of its ToolButton)
            refresh = gr.Button(value="\U0001f504", elem_id=eid("refresh"), variant="secondary", elem_classes=["tool"],
                                scale=0, min_width=40)
        with gr.Row():
            lora_weight = gr.Slider(0.0, 1.5, value=ui_default("facechain_lora_weight"), step=0.05, label="LoRA weight", elem_id=eid("lora_weight"))
            style = gr.Dropdown(label="Style", choices=style_choices(ctx), value=NO_STYLE, elem_id=eid("style"))
        likeness = build_conditioning_controls(ctx, identity, eid)
        with gr.Row():
            fusion_enabled = gr.Checkbox(label="Face fusion", value=True, elem_id=eid("fusion_enabled"))
            fusion_strength = gr.Slider(0.0, 1.0, value=ui_default("facechain_fusion_strength"), step=0.05, label="Fusion strength", elem_id=eid("fusion_strength"))
        fusion_backend, restore_face, restore_visibility = fusion_extras(eid)
        with gr.Row():
            ranking_enabled = gr.Checkbox(label="Rank by similarity", value=True, elem_id=eid("ranking_enabled"))
            top_k = gr.Slider(0, 32, value=ui_default("facechain_ranking_top_k"), step=1, label="Keep top K (0 = all)", elem_id=eid("top_k"))
            min_score = gr.Slider(0.0, 1.0, value=0.0, step=0.01, label="Minimum similarity (0 = none)", elem_id=eid("min_score"))
            drop_no_face = gr.Checkbox(label="Drop images without a face", value=False, elem_id=eid("drop_no_face"))

    def refresh_choices() -> tuple[Any, Any]:
        ctx.styles.reload()
        return gr.update(choices=identity_choices(ctx)), gr.update(choices=style_choices(ctx))

    refresh.click(fn=refresh_choices, inputs=[], outputs=[identity, style])

    controls = [enabled, identity, lora_weight, style, fusion_enabled, fusion_strength, ranking_enabled, top_k, min_score,
                drop_no_face, fusion_backend, restore_face, restore_visibility, *likeness.values]
    infotext_fields = [
        (enabled, lambda params: KEY_IDENTITY in params),
        (identity, _from_infotext(lambda a: gr.update(value=a.identity))),
        (lora_weight, _from_infotext(lambda a: a.lora_weight if a.lora_weight is not None else gr.update())),
        (style, _from_infotext(lambda a: a.style or NO_STYLE)),
        (fusion_enabled, _from_infotext(lambda a: a.fusion.enabled)),
        (fusion_strength, _from_infotext(lambda a: a.fusion.strength)),
        (ranking_enabled, _from_infotext(lambda a: a.ranking.enabled)),
        (top_k, _from_infotext(lambda a: a.ranking.top_k or 0)),
        (min_score, _from_infotext(lambda a: a.ranking.min_score or 0.0)),
        (drop_no_face, _from_infotext(lambda a: a.ranking.drop_no_face)),
        (fusion_backend, _from_infotext(lambda a: a.fusion.backend)),
        (restore_face, _from_infotext(lambda a: restore_choice(a.fusion.restore_face))),
        (restore_visibility, _from_infotext(lambda a: a.fusion.restore_visibility)),
        *conditioning_infotext_fields(likeness, _from_infotext),
    ]
    return controls, infotext_fields, list(ARG_INFOTEXT_KEYS)
