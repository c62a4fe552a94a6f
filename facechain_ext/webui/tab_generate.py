"""The Generate view of the FaceChain tab: one identity, several styles, N portraits per style, ranked by similarity.

Each selected style is one host txt2img job (`host_processing`), run inside the host's GPU wrapper
(`call_queue.wrap_gradio_gpu_call`: queue lock, `shared.state`, task id from javascript/facechain_generate.js, so the
host's progress bar and Interrupt button work). Images are saved like host outputs with their full infotext; the
gallery shows all of them sorted by similarity with the score in the caption, and the selected image can be sent to
img2img/inpaint with the host's own send-to buttons.
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
from ..schemas import RESTORE_CHOICES, FaceChainTxt2ImgRequest, FusionArgs, RankingArgs, args_to_dict, parse_args
from ..styles import apply_recommended
from .conditioning_ui import build_conditioning_controls, photo_names
from .host import js_kwargs
from .settings import ui_default
from .tab_common import (
    choices_update,
    error_html,
    message_html,
    on_view_open,
    refresh_button,
    run_buttons,
    wire_stop_buttons,
)

JS_SUBMIT = "facechain_generate_submit"
FALLBACK_SAMPLERS = ["DPM++ 2M", "Euler a", "Euler", "DDIM"]


@dataclass
class GenerateOptions:
    identity: Optional[str]
    styles: list[str]
    per_style: int = 4
    width: int = 512
    height: int = 512
    steps: int = 30
    cfg_scale: float = 7.0
    sampler_name: str = "DPM++ 2M"
    seed: int = -1
    use_style_settings: bool = True
    fusion_enabled: bool = True
    fusion_strength: float = 0.7
    fusion_backend: str = "auto"
    restore_face: Optional[bool] = None  # None: after learned fusion only (FusionArgs.restore_face)
    restore_visibility: float = 1.0
    ranking_enabled: bool = True
    top_k: int = 0
    min_score: float = 0.0
    drop_no_face: bool = False
    prompt: str = ""
    negative_prompt: str = ""
    conditioning: str = "auto"  # auto | lora | fact | lora+fact (FaceChainArgs.conditioning)
    fact_scale: float = 0.5
    fact_photo_count: int = 1
    fact_photos: Optional[list[str]] = None
    pose_image: Any = None  # optional PIL image: openpose skeleton or photo (ControlNet guidance when available)


@dataclass
class PortraitResult:
    image: Any
    infotext: str
    score: Optional[float]
    style: str
    seed: Optional[int]


def sampler_names() -> list[str]:
    try:
        from modules import sd_samplers
    except ImportError:
        return FALLBACK_SAMPLERS
    visible = getattr(sd_samplers, "visible_samplers", None)
    samplers = visible() if callable(visible) else getattr(sd_samplers, "samplers", [])
    return [s.name for s in samplers] or FALLBACK_SAMPLERS


def job_fields(options: GenerateOptions, style: Any) -> dict[str, Any]:
    """txt2img fields for one style (`styles.apply_recommended`): with `use_style_settings` the controls are only the
    fallback below the style's recommendations; without it they are the user's explicit values."""
    controls = {"steps": int(options.steps), "cfg_scale": float(options.cfg_scale), "width": int(options.width),
                "height": int(options.height), "sampler_name": options.sampler_name}
    fields: dict[str, Any] = {
        "prompt": options.prompt, "negative_prompt": options.negative_prompt, "seed": int(options.seed),
        "batch_size": int(options.per_style), "n_iter": 1, "do_not_save_samples": False, "do_not_save_grid": True,
    }
    if not options.use_style_settings:
        return apply_recommended({**fields, **controls}, None, controls)
    return apply_recommended(fields, style, controls)


def generate_portraits(ctx: FaceChainContext, options: GenerateOptions) -> tuple[list[PortraitResult], str]:
    """Run one job per style (caller holds the host GPU wrapper); all images sorted by similarity, plus comments."""
    from modules import shared

    from ..portraits import resolve_generation
    from .host_processing import make_txt2img, run_processing

    if not options.styles:
        raise FaceChainError("invalid_request", "Choose at least one style.")
    if not options.identity:
        raise FaceChainError("invalid_request", "Choose an identity (prepare one in the Identities view first).")
    args = parse_args({
        "identity": options.identity or None,
        "fusion": {"enabled": bool(options.fusion_enabled), "strength": float(options.fusion_strength),
                   "backend": options.fusion_backend, "restore_face": options.restore_face,
                   "restore_visibility": float(options.restore_visibility)},
        "ranking": {"enabled": bool(options.ranking_enabled), "top_k": int(options.top_k) or None,
                    "min_score": float(options.min_score) or None, "drop_no_face": bool(options.drop_no_face)},
        "conditioning": options.conditioning, "fact_scale": float(options.fact_scale),
        "fact_photo_count": int(options.fact_photo_count), "fact_photos": list(options.fact_photos or []) or None,
    }, what="Generate")
    jobs = []
    for style_id in options.styles:
        style_args = parse_args({**args_to_dict(args), "style": style_id})
        resolve_generation(ctx, style_args)  # unknown identity/style: one clear error before anything runs
        jobs.append((style_id, style_args))
    shared.state.job_count = len(jobs)
    results, comments = [], []
    for number, (style_id, style_args) in enumerate(jobs, start=1):
        if shared.state.interrupted:
            break
        shared.state.job = f"FaceChain style {number}/{len(jobs)}: {style_id}"
        p = make_txt2img(job_fields(options, ctx.styles.get(style_id)), style_args, ctx, pose=options.pose_image)
        outcome = run_processing(p)
        for image, text, score, position in zip(outcome.images, outcome.infotexts, outcome.scores, outcome.order, strict=False):
            seed = outcome.seeds[position] if position < len(outcome.seeds) else None
            results.append(PortraitResult(image, text, score, style_id, seed))
        comments.extend(line for line in outcome.comments.splitlines() if line and line not in comments)
    results.sort(key=lambda r: (r.score is None, -(r.score or 0.0)))
    return results, "\n".join(comments)


def caption(result: PortraitResult, style_name: Optional[str] = None) -> str:
    """The gallery caption: the style's display name (its id only if it has none) and the similarity."""
    score = "no face" if result.score is None else f"similarity {format_number(result.score)}"
    return f"{style_name or result.style} · {score}"


INTRO = (
    "Portraits of one identity in several styles, with the checkpoint **loaded in the webui** (SD 1.5). Each style "
    "is one txt2img job with the identity's newest LoRA, or with FACT (the train-free face adapter) for an identity "
    "without one; faces are fused with the identity's best photo and the portraits sorted by similarity."
)
NO_IDENTITY = "No identity yet: prepare one in the Identities view first."
PREFIX = "facechain_gen"


def identity_html(ctx: FaceChainContext, name: Optional[str]) -> str:
    """What to do when there is no identity to choose, or why the chosen one cannot be read. What a chosen identity
    brings (its LoRA, or FACT in its place) is the likeness line's job (conditioning_ui.likeness_note): said once."""
    from .script_ui import identity_choices

    if not name:
        return "" if identity_choices(ctx) else message_html(NO_IDENTITY, kind="note")
    try:
        ctx.identities.get(name)
    except FaceChainError as err:
        return error_html(err)
    return ""


def style_choices(ctx: FaceChainContext) -> list[tuple[str, str]]:
    """(display name, id) pairs: people read names, the API and infotext keep ids."""
    return [(s.name, s.id) for s in ctx.styles.list()]


def build(ctx: FaceChainContext) -> None:
    """Create the view's components in the current gradio context (called by tab.py)."""
    from .script_ui import identity_choices

    styles = ctx.styles.list()
    gr.Markdown(INTRO)
    with gr.Row(equal_height=False, elem_id=f"{PREFIX}_columns"):
        with gr.Column(scale=1, min_width=300):
            with gr.Row():
                identity = gr.Dropdown(label="Identity", choices=identity_choices(ctx), value=None,
                                       elem_id=f"{PREFIX}_identity")
                refresh = refresh_button(f"{PREFIX}_refresh", "Identities and styles: refresh")
            identity_info = gr.HTML(identity_html(ctx, None), elem_id=f"{PREFIX}_identity_info")
            likeness = build_conditioning_controls(ctx, identity, lambda name: f"{PREFIX}_{name}")
            style_box = gr.CheckboxGroup(label="Styles", choices=style_choices(ctx),
                                         value=[styles[0].id] if styles else [], elem_id=f"{PREFIX}_styles")
            with gr.Accordion("What each style looks like", open=False):
                style_cards = gr.HTML(styles_html(ctx), elem_id=f"{PREFIX}_style_cards")
            prompt = gr.Textbox(label="Extra prompt (optional)", lines=2, elem_id=f"{PREFIX}_prompt")
            negative = gr.Textbox(label="Extra negative prompt (optional)", lines=2, elem_id=f"{PREFIX}_negative")
            with gr.Accordion("Pose (optional)", open=False, elem_id=f"{PREFIX}_pose_options"):
                pose = gr.Image(label="An openpose skeleton, or a photo if ControlNet has its preprocessor", type="pil",
                                height=240, elem_id=f"{PREFIX}_pose")
            low, high = field_bounds(FaceChainTxt2ImgRequest, "batch_size")
            per_style = gr.Slider(low, high, value=min(4, high), step=1, label="Images per style")
            seed = gr.Number(value=-1, precision=0, label="Seed (-1: random)")
            use_style, width, height, steps, cfg, sampler = _sampling_controls()
            fusion_on, strength, ranking_on, top_k, min_score, drop, *restoration = _fusion_controls()
            task_id = gr.Textbox(visible=False, elem_id=f"{PREFIX}_task_id")
        with gr.Column(scale=1, min_width=320, elem_id=f"{PREFIX}_results"):
            buttons = run_buttons(PREFIX, "Generate", skip=True)
            with gr.Column(elem_id=f"{PREFIX}_results_panel", elem_classes=["facechain-results-panel"]):
                with gr.Group(elem_id=f"{PREFIX}_gallery_container"):
                    gallery = gr.Gallery(label="Portraits (best similarity first)", elem_id=f"{PREFIX}_gallery",
                                         columns=4, height=520, object_fit="contain", preview=True)
                selected_info = gr.Textbox(label="Parameters of the selected image", lines=4, interactive=False,
                                           elem_id=f"{PREFIX}_selected_info", render=False)
                _send_to_buttons(gallery, selected_info)  # under the gallery, as the host's output panel has them
                status = gr.HTML(elem_id=f"{PREFIX}_status")
                selected_info.render()
                infotexts = gr.State([])

    inputs = [task_id, identity, style_box, per_style, width, height, steps, cfg, sampler, seed, use_style,
              fusion_on, strength, ranking_on, top_k, min_score, drop, prompt, negative, *restoration,
              *likeness.values, pose]
    # no gradio spinner over the outputs: the host's progress bar is the progress (as txt2img's Generate)
    buttons.run.click(fn=_wrapped_handler(ctx), inputs=inputs, outputs=[gallery, infotexts, selected_info, status],
                      show_progress="hidden", **js_kwargs(JS_SUBMIT))
    wire_stop_buttons(buttons, PREFIX, task_id)
    gallery.select(fn=_select_info, inputs=[infotexts], outputs=[selected_info])
    identity.change(fn=lambda name: identity_html(ctx, name), inputs=[identity], outputs=[identity_info],
                    show_progress="hidden")

    def refresh_lists(current_identity: Optional[str], current_styles: list) -> tuple[Any, Any, str, str]:
        """Identities and styles as they are now (page load, view opened, 🔄), with their notes."""
        ctx.styles.reload()
        people = choices_update(identity_choices(ctx), current_identity)
        return (people, choices_update(style_choices(ctx), current_styles or []),
                identity_html(ctx, people["value"]), styles_html(ctx))

    lists = dict(fn=refresh_lists, inputs=[identity, style_box], outputs=[identity, style_box, identity_info, style_cards])
    refresh.click(**lists)
    on_view_open(**lists)


def _sampling_controls() -> tuple[Any, ...]:
    """Size, steps, CFG and sampler: greyed out while each style's recommendations are used; limits from the API's
    request model (FaceChainTxt2ImgRequest), the one source."""
    def bounds(name: str) -> tuple[Any, Any]:
        return field_bounds(FaceChainTxt2ImgRequest, name)

    with gr.Accordion("Size, steps and sampler", open=False):
        use_style = gr.Checkbox(value=True, label="Use each style's recommended size, steps, CFG and sampler")
        with gr.Row():
            width = gr.Slider(*bounds("width"), value=512, step=8, label="Width", interactive=False)
            height = gr.Slider(*bounds("height"), value=512, step=8, label="Height", interactive=False)
        with gr.Row():
            steps = gr.Slider(*bounds("steps"), value=30, step=1, label="Steps", interactive=False)
            cfg = gr.Slider(*bounds("cfg_scale"), value=7.0, step=0.5, label="CFG scale", interactive=False)
        names = sampler_names()
        sampler = gr.Dropdown(label="Sampler", choices=names, value=names[0], interactive=False)
    manual = [width, height, steps, cfg, sampler]
    use_style.change(fn=lambda on: [gr.update(interactive=not on) for _ in manual], inputs=[use_style], outputs=manual)
    return use_style, width, height, steps, cfg, sampler


def _fusion_controls() -> tuple[Any, ...]:
    from .script_ui import fusion_extras

    _, strength_max = field_bounds(FusionArgs, "strength")
    _, top_k_max = field_bounds(RankingArgs, "top_k")
    _, min_score_max = field_bounds(RankingArgs, "min_score")
    with gr.Accordion("Face fusion and ranking", open=False):
        with gr.Row():
            fusion_on = gr.Checkbox(value=True, label="Face fusion")
            strength = gr.Slider(0.0, strength_max, value=ui_default("facechain_fusion_strength"), step=0.05,
                                 label="Fusion strength")
        backend, restore, visibility = fusion_extras(lambda name: f"{PREFIX}_{name}")
        with gr.Row():
            ranking_on = gr.Checkbox(value=True, label="Rank by similarity")
            drop = gr.Checkbox(value=False, label="Drop images without a face")
        with gr.Row():
            top_k = gr.Slider(0, top_k_max, value=ui_default("facechain_ranking_top_k"), step=1,
                              label="Keep the best K per style (0 = all)")
            min_score = gr.Slider(0.0, min_score_max, value=0.0, step=0.01, label="Minimum similarity (0 = none)")
    return fusion_on, strength, ranking_on, top_k, min_score, drop, backend, restore, visibility


def styles_html(ctx: FaceChainContext) -> str:
    cards = "".join(
        f"<div class='facechain-style-card'><b>{html.escape(s.name)}</b><br><small>{html.escape(s.description)}</small></div>"
        for s in ctx.styles.list()
    )
    errors = "".join(f"<li>{html.escape(path)}: {html.escape(reason)}</li>" for path, reason in ctx.styles.errors.items())
    broken = message_html(f"Some style files were skipped:<ul>{errors}</ul>", kind="error") if errors else ""
    return f"<div class='facechain-style-cards'>{cards}</div>{broken}"


def _select_info(infotexts: list, evt: gr.SelectData) -> str:
    """The infotext of the gallery image the user clicked (what the send-to buttons carry)."""
    index = evt.index
    return infotexts[index] if isinstance(index, int) and 0 <= index < len(infotexts) else ""


def _wrapped_handler(ctx: FaceChainContext) -> Any:
    from modules import call_queue, shared

    def handler(task_id: str, identity: Any, styles: list, per_style: float, width: float, height: float, steps: float,
                cfg: float, sampler: str, seed: float, use_style: bool, fusion_on: bool, strength: float, ranking_on: bool,
                top_k: float, min_score: float, drop: bool, prompt: str, negative: str, fusion_backend: str = "auto",
                restore_face: str = "auto", restore_visibility: float = 1.0, conditioning: str = "auto",
                fact_scale: float = 0.5, fact_photo_count: float = 1, fact_photos: Optional[list] = None,
                pose: Any = None) -> tuple[Any, ...]:
        options = GenerateOptions(
            identity=identity, styles=list(styles or []), per_style=int(per_style), width=int(width), height=int(height),
            steps=int(steps), cfg_scale=float(cfg), sampler_name=sampler, seed=int(seed if seed is not None else -1),
            use_style_settings=bool(use_style), fusion_enabled=bool(fusion_on), fusion_strength=float(strength),
            ranking_enabled=bool(ranking_on), top_k=int(top_k), min_score=float(min_score), drop_no_face=bool(drop),
            prompt=prompt or "", negative_prompt=negative or "", fusion_backend=str(fusion_backend or "auto"),
            restore_face=RESTORE_CHOICES.get(str(restore_face), None), restore_visibility=float(restore_visibility),
            conditioning=conditioning or "auto", fact_scale=float(fact_scale), fact_photo_count=int(fact_photo_count), fact_photos=photo_names(fact_photos),
            pose_image=pose,
        )
        try:
            results, comments = generate_portraits(ctx, options)
        except FaceChainError as err:
            return [], [], "", error_html(err)
        names = {s.id: s.name for s in ctx.styles.list()}
        gallery = [(r.image, caption(r, names.get(r.style))) for r in results]
        texts = [r.infotext for r in results]
        count = f"{len(results)} portrait{'s' if len(results) != 1 else ''}"
        note = message_html(f"Interrupted: {count} made before it stopped.") if shared.state.interrupted else f"<p>{count}.</p>"
        note += "".join(f"<p>{html.escape(line)}</p>" for line in comments.splitlines())
        return gallery, texts, texts[0] if texts else "", note

    return call_queue.wrap_gradio_gpu_call(handler, extra_outputs=[[], [], ""])


SEND_TO = {"img2img": ("\U0001f5bc\ufe0f", "Send the image and its parameters to img2img."),
           "inpaint": ("\U0001f3a8\ufe0f", "Send the image and its parameters to img2img inpaint.")}


def _send_to_buttons(gallery: Any, info: Any) -> None:
    """The host's send-to-img2img/inpaint buttons under the gallery, fed with the selected image and its infotext: small
    icon buttons with tooltips, as the host's own output panel makes them (modules/ui_common.py
    `create_output_panel`), bound with the host's `register_paste_params_button`."""
    try:
        from modules import infotext_utils as copypaste
    except ImportError:
        try:
            from modules import generation_parameters_copypaste as copypaste  # A1111 < 1.8
        except ImportError:
            return
    try:
        from modules.ui_components import ToolButton
    except ImportError:  # the host's own labelled buttons
        with gr.Row():
            buttons = copypaste.create_buttons(list(SEND_TO))
    else:
        with gr.Row(elem_id=f"image_buttons_{PREFIX}", elem_classes=["image-buttons"]):
            buttons = {tab: ToolButton(icon, elem_id=f"{PREFIX}_send_to_{tab}", tooltip=tip)
                       for tab, (icon, tip) in SEND_TO.items()}
    for tabname, button in buttons.items():
        copypaste.register_paste_params_button(copypaste.ParamBinding(
            paste_button=button, tabname=tabname, source_text_component=info, source_image_component=gallery,
        ))


__all__ = ["build", "generate_portraits", "GenerateOptions", "PortraitResult", "job_fields"]
