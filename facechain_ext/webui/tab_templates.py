"""The Templates view of the FaceChain tab: put one or more people into a chosen photo.

Upload a template (or press "Send to FaceChain" under a txt2img/img2img/Extras result), see its faces numbered left
to right, pick an identity and its conditioning for each face to replace, then run: one host img2img inpainting pass
per face inside the host's GPU wrapper (`call_queue.wrap_gradio_gpu_call`: queue lock, `shared.state`, task id from
javascript/facechain_templates.js), so the host's progress bar (above the results, as in the other views) and the
Interrupt button over Run work. Results are saved like host img2img outputs with their infotext and shown best mean
similarity first. The identity lists are read on every page load and when the view is opened.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Optional

import gradio as gr

from ..context import FaceChainContext
from ..errors import FaceChainError
from ..modelcompat import field_bounds
from ..prompts import format_number
from ..schemas import FaceChainTxt2ImgRequest
from ..templates.request import CONDITIONINGS, DEFAULT_STRENGTH, TemplateArgs
from .conditioning_ui import CONDITIONING_CHOICES
from .host import js_kwargs
from .tab_common import error_html, message_html, on_view_open, refresh_button, run_buttons, wire_stop_buttons

JS_SUBMIT = "facechain_template_submit"
PREFIX = "facechain_tpl"
# the per-face conditioning dropdowns show these words (gradio 3.41's Dropdown has no (label, value) pairs)
CONDITIONING_LABELS = {value: label for label, value in CONDITIONING_CHOICES if value in CONDITIONINGS}
MAX_SLOTS = 6  # faces the view offers (the route takes any number)
KEEP = "(keep this face)"
INTRO = (
    "Put people into a photo: upload a template with one or more faces (or use **Send to FaceChain** under a "
    "txt2img, img2img or Extras result), choose who goes into which face, and run. Each chosen face is repainted by "
    "the **loaded checkpoint** through img2img inpainting, then fused with the identity's best photo and scored; "
    "everything outside the faces stays exactly as it was."
)


@dataclass
class TemplateOptions:
    """What the Run button sends besides the template and the per-face choices."""

    strength: float = DEFAULT_STRENGTH
    n: int = 2
    seed: int = -1
    pose: bool = True
    canny: bool = True
    fusion_enabled: bool = True
    fusion_strength: float = 0.7
    prompt: str = ""
    negative_prompt: str = ""
    steps: int = 30
    cfg_scale: float = 7.0
    sampler_name: Optional[str] = None
    size: int = 512


def faces_view(ctx: FaceChainContext, image: Any) -> tuple[Any, str, int]:
    """(numbered overlay, status HTML, face count) for a newly chosen template; errors become the status."""
    from ..templates.faces import list_template_faces, numbered_overlay

    if image is None:
        return None, "", 0
    try:
        faces = list_template_faces(image.convert("RGB"), ctx.analyzer())
    except FaceChainError as err:
        return None, error_html(err), 0
    shown = min(len(faces), MAX_SLOTS)
    text = f"<p>{len(faces)} face{'s' if len(faces) != 1 else ''}, numbered left to right.</p>"
    if len(faces) > MAX_SLOTS:
        text += message_html(f"Only faces 1-{MAX_SLOTS} can be chosen here (the API takes any).", kind="note")
    return numbered_overlay(image.convert("RGB"), faces[:shown]), text, shown


def args_from_slots(identities: list[Any], conditionings: list[Any], options: TemplateOptions) -> TemplateArgs:
    """TemplateArgs from the per-face dropdowns (KEEP or empty = leave that face as it is)."""
    values = {label: value for value, label in CONDITIONING_LABELS.items()}
    faces = [{"index": i, "identity": str(name), "conditioning": values.get(str(cond), str(cond or "auto"))}
             for i, (name, cond) in enumerate(zip(identities, conditionings, strict=True))
             if name and name != KEEP]
    if not faces:
        raise FaceChainError("invalid_request", "Choose an identity for at least one face.")
    return TemplateArgs(
        faces=faces, strength=float(options.strength), n=int(options.n), seed=int(options.seed),
        guidance={"pose": bool(options.pose), "canny": bool(options.canny)},
        fusion={"enabled": bool(options.fusion_enabled), "strength": float(options.fusion_strength)},
    )


def caption(candidate: Any) -> str:
    scores = " / ".join("no face" if f.score is None else format_number(f.score) for f in candidate.faces)
    mean = candidate.mean_score
    return f"{'no score' if mean is None else 'similarity ' + format_number(mean)} ({scores})"


def run_from_view(ctx: FaceChainContext, image: Any, args: TemplateArgs, options: TemplateOptions) -> tuple[list, list, str]:
    """Run a template job inside the host's GPU wrapper (no lock of our own); (gallery, infotexts, status HTML)."""
    from .template_runner import PassFields, prepare_template, run_template

    if image is None:
        raise FaceChainError("invalid_request", "Upload a template photo first.")
    run = prepare_template(ctx, image.convert("RGB"), args)
    fields = PassFields(prompt=options.prompt or "", negative_prompt=options.negative_prompt or "",
                        sampler_name=options.sampler_name or None, steps=int(options.steps),
                        cfg_scale=float(options.cfg_scale), width=int(options.size), height=int(options.size))
    outcome = run_template(ctx, run, fields, take_lock=False, save=True)
    ranked = outcome.ranked
    status = f"<p>{len(ranked)} result{'s' if len(ranked) != 1 else ''} (guidance: {html.escape(outcome.guidance.label)}).</p>"
    status += "".join(f"<p>{html.escape(line)}</p>" for line in run.comments)
    return [(c.image, caption(c)) for c in ranked], [c.infotext for c in ranked], status


def identity_choices(ctx: FaceChainContext) -> list[str]:
    from .script_ui import identity_choices as names

    return [KEEP, *names(ctx)]


def build(ctx: FaceChainContext, send_to: Any = None) -> None:
    """Create the view in the current gradio context (tab.py); `send_to` binds the host galleries' buttons."""
    from .controlnet import status_markdown

    gr.Markdown(INTRO)
    gr.Markdown(status_markdown(), elem_id="facechain_tpl_controlnet")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320):
            template = gr.Image(label="Template photo", type="pil", elem_id="facechain_tpl_image")
            overlay = gr.Image(label="Faces, numbered left to right", interactive=False, elem_id="facechain_tpl_faces")
            with gr.Row():
                found = gr.HTML(elem_id="facechain_tpl_found")
                refresh = refresh_button("facechain_tpl_refresh", "Identities: refresh")
            rows, names, conds = _face_slots(ctx)
            controls = _option_controls()
            task_id = gr.Textbox(visible=False, elem_id="facechain_tpl_task_id")
        with gr.Column(scale=1, min_width=320, elem_id="facechain_tpl_results"):
            buttons = run_buttons(PREFIX, "Put them in", skip=False)
            with gr.Column(elem_id=f"{PREFIX}_results_panel", elem_classes=["facechain-results-panel"]):
                with gr.Group(elem_id=f"{PREFIX}_gallery_container"):
                    gallery = gr.Gallery(label="Results (best similarity first)", elem_id="facechain_tpl_gallery",
                                         columns=3, height=520, object_fit="contain", preview=True)
                selected = gr.Textbox(label="Parameters of the selected image", lines=4, interactive=False,
                                      elem_id="facechain_tpl_selected_info", render=False)
                _host_send_buttons(gallery, selected)
                status = gr.HTML(elem_id="facechain_tpl_status")
                selected.render()
                infotexts = gr.State([])
    _wire(ctx, template, overlay, found, rows, names, conds, refresh, controls, task_id, buttons, status, gallery,
          selected, infotexts)
    if send_to is not None:
        send_to.bind(template)


def _face_slots(ctx: FaceChainContext) -> tuple[list, list, list]:
    rows, names, conds = [], [], []
    for i in range(MAX_SLOTS):
        with gr.Row(visible=False, elem_id=f"facechain_tpl_face_{i}") as row:
            names.append(gr.Dropdown(label=f"Face {i + 1}", choices=identity_choices(ctx), value=KEEP, scale=3))
            conds.append(gr.Dropdown(label="Likeness from", choices=list(CONDITIONING_LABELS.values()),
                                     value=CONDITIONING_LABELS["auto"], scale=2))
        rows.append(row)
    return rows, names, conds


def _option_controls() -> list[Any]:
    """The run's options; limits from TemplateArgs and the txt2img request model (the API's own)."""
    from .tab_generate import sampler_names

    strength = gr.Slider(*field_bounds(TemplateArgs, "strength"), value=DEFAULT_STRENGTH, step=0.01,
                         label="Denoising strength")
    n = gr.Slider(*field_bounds(TemplateArgs, "n"), value=2, step=1, label="Candidates")
    seed = gr.Number(value=-1, precision=0, label="Seed (-1: random)")
    with gr.Row():  # ControlNet openpose / canny: the status line above says which are available
        pose = gr.Checkbox(value=True, label="Pose guidance")
        canny = gr.Checkbox(value=True, label="Edge guidance")
    with gr.Accordion("Prompt, steps, sampler and fusion", open=False):
        prompt = gr.Textbox(label="Prompt (empty: FaceChain's)", lines=2)
        negative = gr.Textbox(label="Negative prompt (empty: FaceChain's)", lines=2)
        with gr.Row():
            steps = gr.Slider(*field_bounds(FaceChainTxt2ImgRequest, "steps"), value=30, step=1, label="Steps")
            cfg = gr.Slider(*field_bounds(FaceChainTxt2ImgRequest, "cfg_scale"), value=7.0, step=0.5, label="CFG scale")
        with gr.Row():
            size = gr.Slider(256, 1024, value=512, step=64, label="Face working size")
            samplers = sampler_names()
            sampler = gr.Dropdown(label="Sampler", choices=samplers, value=samplers[0])
        with gr.Row():
            fusion_on = gr.Checkbox(value=True, label="Face fusion")
            fusion_strength = gr.Slider(0.0, 1.0, value=0.7, step=0.05, label="Fusion strength")
    return [strength, n, seed, pose, canny, fusion_on, fusion_strength, prompt, negative, steps, cfg, sampler, size]


def options_from_values(values: list[Any]) -> TemplateOptions:
    strength, n, seed, pose, canny, fusion_on, fusion_strength, prompt, negative, steps, cfg, sampler, size = values
    return TemplateOptions(
        strength=float(strength), n=int(n), seed=int(seed if seed is not None else -1), pose=bool(pose),
        canny=bool(canny), fusion_enabled=bool(fusion_on), fusion_strength=float(fusion_strength), prompt=prompt or "",
        negative_prompt=negative or "", steps=int(steps), cfg_scale=float(cfg), sampler_name=sampler, size=int(size),
    )


def _wire(ctx: FaceChainContext, template: Any, overlay: Any, found: Any, rows: list, names: list, conds: list,
          refresh: Any, controls: list, task_id: Any, buttons: Any, status: Any, gallery: Any, selected: Any,
          infotexts: Any) -> None:
    def show_faces(image: Any) -> list[Any]:
        picture, text, count = faces_view(ctx, image)
        return [picture, text, *[gr.update(visible=i < count) for i in range(MAX_SLOTS)],
                *[gr.update(value=KEEP) for _ in range(MAX_SLOTS)]]

    template.change(fn=show_faces, inputs=[template], outputs=[overlay, found, *rows, *names])

    def refresh_template_identities(*current: Any) -> list[Any]:
        """Every face's identity list as it is now (page load, view opened, 🔄); a chosen identity that is gone
        goes back to "keep this face"."""
        choices = identity_choices(ctx)
        return [gr.update(choices=choices, value=value if value in choices else KEEP) for value in current]

    lists = dict(fn=refresh_template_identities, inputs=names, outputs=names)
    refresh.click(**lists)
    on_view_open(**lists)
    buttons.run.click(fn=_wrapped_handler(ctx), inputs=[task_id, template, *names, *conds, *controls],
                      outputs=[gallery, infotexts, selected, status], show_progress="hidden", **js_kwargs(JS_SUBMIT))
    wire_stop_buttons(buttons, PREFIX, task_id)

    def select_info(texts: list, evt: gr.SelectData) -> str:
        index = evt.index
        return texts[index] if isinstance(index, int) and 0 <= index < len(texts) else ""

    gallery.select(fn=select_info, inputs=[infotexts], outputs=[selected])


def _wrapped_handler(ctx: FaceChainContext) -> Any:
    from modules import call_queue, shared

    def put_in_template(task_id: str, image: Any, *values: Any) -> tuple[Any, ...]:
        names, conds, rest = list(values[:MAX_SLOTS]), list(values[MAX_SLOTS:2 * MAX_SLOTS]), list(values[2 * MAX_SLOTS:])
        options = options_from_values(rest)
        try:
            results, texts, note = run_from_view(ctx, image, args_from_slots(names, conds, options), options)
        except FaceChainError as err:
            return [], [], "", error_html(err)
        if shared.state.interrupted:  # the wrapper clears the flag after this returns
            note = message_html(f"Interrupted: {len(results)} result{'s' if len(results) != 1 else ''} kept.") + note
        return results, texts, texts[0] if texts else "", note

    return call_queue.wrap_gradio_gpu_call(put_in_template, extra_outputs=[[], [], ""])


def _host_send_buttons(gallery: Any, info: Any) -> None:
    """The host's send-to-img2img/inpaint buttons for a result (the same helper the Generate view uses)."""
    from .tab_generate import _send_to_buttons

    _send_to_buttons(gallery, info)


__all__ = ["build", "faces_view", "args_from_slots", "run_from_view", "TemplateOptions", "caption"]
