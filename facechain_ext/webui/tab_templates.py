"""The Templates view of the FaceChain tab: put one or more people into a chosen photo.

Upload a template (or press "Send to FaceChain" under a txt2img/img2img/Extras result), see its faces numbered left
to right, pick an identity and its conditioning for each face to replace, then run: one host img2img inpainting pass
per face inside the host's GPU wrapper (`call_queue.wrap_gradio_gpu_call`: queue lock, `shared.state`, task id from
javascript/facechain_templates.js), so the host's progress bar and Interrupt work. Results are saved like host img2img
outputs with their infotext and shown best mean similarity first.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Optional

import gradio as gr

from ..context import FaceChainContext
from ..errors import FaceChainError
from ..prompts import format_number
from ..templates.request import CONDITIONINGS, DEFAULT_STRENGTH, TemplateArgs
from .host import js_kwargs

JS_SUBMIT = "facechain_template_submit"
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


def error_html(err: FaceChainError) -> str:
    return f"<div class='facechain-error'><b>{html.escape(err.code)}</b>: {html.escape(err.message)}</div>"


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
        text += f"<p class='facechain-note'>Only faces 1-{MAX_SLOTS} can be chosen here (the API takes any).</p>"
    return numbered_overlay(image.convert("RGB"), faces[:shown]), text, shown


def args_from_slots(identities: list[Any], conditionings: list[Any], options: TemplateOptions) -> TemplateArgs:
    """TemplateArgs from the per-face dropdowns (KEEP or empty = leave that face as it is)."""
    faces = [{"index": i, "identity": str(name), "conditioning": str(cond or "auto")}
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
    with gr.Row():
        with gr.Column(scale=1):
            template = gr.Image(label="Template photo", type="pil", elem_id="facechain_tpl_image")
            overlay = gr.Image(label="Faces, numbered left to right", interactive=False, elem_id="facechain_tpl_faces")
            found = gr.HTML(elem_id="facechain_tpl_found")
            rows, names, conds = _face_slots(ctx)
            refresh = gr.Button("Refresh identities", size="sm", elem_id="facechain_tpl_refresh")
            controls = _option_controls()
            task_id = gr.Textbox(visible=False, elem_id="facechain_tpl_task_id")
        with gr.Column(scale=2, elem_id="facechain_tpl_results"):
            run = gr.Button("Put them in", variant="primary", elem_id="facechain_tpl_run")
            status = gr.HTML(elem_id="facechain_tpl_status")
            gallery = gr.Gallery(label="Results (best similarity first)", elem_id="facechain_tpl_gallery", columns=3,
                                 height=520, object_fit="contain")
            selected = gr.Textbox(label="Parameters of the selected image", lines=4, interactive=False,
                                  elem_id="facechain_tpl_selected_info")
            infotexts = gr.State([])
            _host_send_buttons(gallery, selected)
    _wire(ctx, template, overlay, found, rows, names, conds, refresh, controls, task_id, run, status, gallery, selected,
          infotexts)
    if send_to is not None:
        send_to.bind(template)


def _face_slots(ctx: FaceChainContext) -> tuple[list, list, list]:
    rows, names, conds = [], [], []
    for i in range(MAX_SLOTS):
        with gr.Row(visible=False, elem_id=f"facechain_tpl_face_{i}") as row:
            names.append(gr.Dropdown(label=f"Face {i + 1}", choices=identity_choices(ctx), value=KEEP, scale=3))
            conds.append(gr.Dropdown(label="Conditioning", choices=list(CONDITIONINGS), value="auto", scale=1))
        rows.append(row)
    return rows, names, conds


def _option_controls() -> list[Any]:
    from .tab_generate import sampler_names

    with gr.Row():
        strength = gr.Slider(0.3, 0.9, value=DEFAULT_STRENGTH, step=0.01, label="Denoising strength")
        n = gr.Slider(1, 8, value=2, step=1, label="Candidates")
        seed = gr.Number(value=-1, precision=0, label="Seed (-1: random)")
    with gr.Row():
        pose = gr.Checkbox(value=True, label="Pose guidance (ControlNet openpose)")
        canny = gr.Checkbox(value=True, label="Edge guidance (ControlNet canny)")
    with gr.Accordion("Prompt, steps, sampler and fusion", open=False):
        prompt = gr.Textbox(label="Prompt (empty: FaceChain's)", lines=2)
        negative = gr.Textbox(label="Negative prompt (empty: FaceChain's)", lines=2)
        with gr.Row():
            steps = gr.Slider(1, 100, value=30, step=1, label="Steps")
            cfg = gr.Slider(1.0, 20.0, value=7.0, step=0.5, label="CFG scale")
            size = gr.Slider(256, 1024, value=512, step=64, label="Working resolution of each face")
        samplers = sampler_names()
        sampler = gr.Dropdown(label="Sampler", choices=samplers, value=samplers[0])
        with gr.Row():
            fusion_on = gr.Checkbox(value=True, label="Face fusion with the identity's best photo")
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
          refresh: Any, controls: list, task_id: Any, run: Any, status: Any, gallery: Any, selected: Any,
          infotexts: Any) -> None:
    def show_faces(image: Any) -> list[Any]:
        picture, text, count = faces_view(ctx, image)
        return [picture, text, *[gr.update(visible=i < count) for i in range(MAX_SLOTS)],
                *[gr.update(value=KEEP) for _ in range(MAX_SLOTS)]]

    template.change(fn=show_faces, inputs=[template], outputs=[overlay, found, *rows, *names])

    def refresh_template_identities() -> list[Any]:
        return [gr.update(choices=identity_choices(ctx)) for _ in names]

    refresh.click(fn=refresh_template_identities, inputs=[], outputs=names)
    run.click(fn=_wrapped_handler(ctx), inputs=[task_id, template, *names, *conds, *controls],
              outputs=[gallery, infotexts, selected, status], **js_kwargs(JS_SUBMIT))

    def select_info(texts: list, evt: gr.SelectData) -> str:
        index = evt.index
        return texts[index] if isinstance(index, int) and 0 <= index < len(texts) else ""

    gallery.select(fn=select_info, inputs=[infotexts], outputs=[selected])


def _wrapped_handler(ctx: FaceChainContext) -> Any:
    from modules import call_queue

    def put_in_template(task_id: str, image: Any, *values: Any) -> tuple[Any, ...]:
        names, conds, rest = list(values[:MAX_SLOTS]), list(values[MAX_SLOTS:2 * MAX_SLOTS]), list(values[2 * MAX_SLOTS:])
        options = options_from_values(rest)
        try:
            results, texts, note = run_from_view(ctx, image, args_from_slots(names, conds, options), options)
        except FaceChainError as err:
            return [], [], "", error_html(err)
        return results, texts, texts[0] if texts else "", note

    return call_queue.wrap_gradio_gpu_call(put_in_template, extra_outputs=[[], [], ""])


def _host_send_buttons(gallery: Any, info: Any) -> None:
    """The host's send-to-img2img/inpaint buttons for a result (the same helper the Generate view uses)."""
    from .tab_generate import _send_to_buttons

    _send_to_buttons(gallery, info)


__all__ = ["build", "faces_view", "args_from_slots", "run_from_view", "TemplateOptions", "caption"]
