"""The Train view of the FaceChain tab: pick an identity, choose a preset, train, watch progress, get the LoRA.

Laid out like the host's txt2img: options on the left; on the right the Train button with Interrupt over it, the
host's progress bar above the output gallery (validation portraits), then the job's status and result.

Progress without a gradio timer (gradio 3.41 has none): the Train button's JS (`facechain_train_start`,
javascript/facechain_train.js) takes a host task id from the host's `randomId()` and starts the host's own progress
bar for it (`requestProgress`, as the host's textual-inversion tab does); the job registers that same id with
`modules.progress` and keeps `shared.state` current (`training_worker.HostProgress`), so the bar shows step,
percentage and ETA, and Interrupt stops the job within a step. When the bar ends, the JS clicks the status button,
which reads the job record (also the way back to a running or finished job after a page reload).
"""

from __future__ import annotations

import html
from typing import Any, Optional

import gradio as gr

from ..errors import FaceChainError
from ..lora.config import PRESETS
from ..modelcompat import field_bounds, parse_model
from ..schemas import TrainRequestModel
from .host import js_kwargs
from .settings import ui_default
from .tab_common import choices_update, error_html, message_html, on_view_open, refresh_button, run_buttons, wire_stop_buttons
from .training_worker import cancel_job, submit_training

JS_START = "facechain_train_start"
PREFIX = "facechain_train"

INTRO = (
    "Trains a LoRA of one prepared identity on the checkpoint **loaded in the webui** (SD 1.5). The LoRA is saved "
    "in the webui's Lora folder (`FaceChain` sub-folder) and works in txt2img through the FaceChain accordion or the "
    "prompt snippet shown here. *fast*: rank 4, 100 steps per photo; *quality*: rank 16, 200 steps per photo."
)
NO_IDENTITY = "No identity yet: prepare one in the Identities view first."
STATUS_WORDS = {"queued": "Queued", "running": "Training", "done": "Done", "failed": "Failed", "cancelled": "Cancelled"}


def identity_html(ctx: Any, name: str | None) -> str:
    """One line about the chosen identity (photos, LoRAs so far), or what to do when there is none to choose."""
    if not name:
        return "" if identity_choices(ctx) else message_html(NO_IDENTITY, kind="note")
    try:
        identity = ctx.identities.get(name)
    except FaceChainError as err:
        return error_html(err)
    loras = [str(record.get("name", "")) for record in identity.loras or []]
    trained = f"LoRAs so far: {html.escape(', '.join(loras))}" if loras else "no LoRA trained yet"
    return message_html(f"<b>{html.escape(identity.name)}</b>: {identity.photo_count} training photos, caption "
                        f"<code>{html.escape(identity.activation_text)}</code>; {trained}.", kind="note")


def identity_choices(ctx: Any) -> list[str]:
    try:
        return [identity.name for identity in ctx.identities.list()]
    except FaceChainError:
        return []


def job_view(record: dict | None) -> tuple[str, str, str, list]:
    """(status html, LoRA name, prompt snippet, gallery items) for a job record; pure, so it is tested without gradio."""
    if record is None:
        return message_html("No training job yet.", kind="note"), "", "", []
    status = record["status"]
    error = record.get("error") or {}
    if status == "cancelled":  # the user's own choice: a neutral line, not an error box
        line = message_html("<b>Cancelled</b>: training stopped; nothing was written.")
    else:
        # a failed job's textinfo usually repeats its error message: show it once, in the error box
        text = "" if record.get("textinfo") == error.get("message") else html.escape(record.get("textinfo") or "")
        parts = [f"<b>{STATUS_WORDS.get(status, html.escape(status))}</b>", f"{record['progress'] * 100:.0f}%"]
        if record.get("eta_s") is not None:
            parts.append(f"ETA {record['eta_s']:.0f} s")
        line = "<p>" + " · ".join(parts) + (f"<br>{text}" if text else "") + "</p>"
        if error:
            line += error_html(FaceChainError(error.get("code", "training_failed"), error.get("message", "")))
    result = record.get("result") or {}
    lora = result.get("lora") or {}
    gallery = []
    for entry in result.get("validation", []):
        for path, score in zip(entry.get("images", []), entry.get("image_scores", []), strict=False):
            label = "no face" if score is None else f"similarity {score:.3f}"
            gallery.append((path, f"step {entry['step']}{' (kept)' if entry.get('chosen') else ''}: {label}"))
    for note in result.get("notes", []):
        line += f"<p>{html.escape(note)}</p>"
    return line, lora.get("name", ""), lora.get("prompt", ""), gallery


def _end_host_task(task_id: str | None) -> None:
    from modules import progress

    if isinstance(task_id, str) and task_id.startswith("task("):
        progress.finish_task(task_id)


def latest_training(ctx: Any) -> dict | None:
    jobs = [job for job in ctx.jobs.list() if job.kind == "train"]
    return ctx.jobs.snapshot(jobs[-1].id) if jobs else None


def _bounded_number(label: str, name: str, value: float, *, precision: Optional[int] = None, **kwargs: Any) -> Any:
    """A Number whose limits are TrainRequestModel's (0 below them means "the preset's value")."""
    low, high = field_bounds(TrainRequestModel, name)
    minimum = 0 if low is not None and low >= 0 else low
    return gr.Number(label=label, value=value, precision=precision, minimum=minimum, maximum=high, **kwargs)


def _option_controls() -> list[Any]:
    """The training options, in the order `TrainHandlers.start` takes them (after the identity)."""
    preset = gr.Radio(label="Preset", choices=sorted(PRESETS), value=ui_default("facechain_training_preset"))
    with gr.Row():
        steps = _bounded_number("Steps (0 = preset)", "steps", 0, precision=0, elem_id=f"{PREFIX}_steps")
        rank = _bounded_number("Rank (0 = preset)", "rank", 0, precision=0, elem_id=f"{PREFIX}_rank")
    with gr.Accordion("Advanced options", open=False):
        with gr.Row():
            alpha = _bounded_number("Alpha (0 = preset)", "alpha", 0)
            learning_rate = _bounded_number("Learning rate (0 = preset)", "learning_rate", 0)
        with gr.Row():
            resolution = gr.Dropdown(label="Resolution", choices=["256", "384", "512", "640", "768"], value="512")
            seed = gr.Number(label="Seed", value=42, precision=0)
        with gr.Row():
            lora_name = gr.Textbox(label="LoRA name (empty = identity name)", max_lines=1)
            low, high = field_bounds(TrainRequestModel, "validation_images")
            validation = gr.Slider(label="Portraits per snapshot", minimum=low, maximum=high, step=1, value=2)
        overwrite = gr.Checkbox(label="Overwrite an existing LoRA with this name", value=False)
    return [preset, steps, rank, alpha, learning_rate, resolution, seed, lora_name, overwrite, validation]


def build(ctx: Any) -> gr.Blocks:
    handlers = TrainHandlers(ctx)
    with gr.Blocks(analytics_enabled=False) as block:
        gr.Markdown(INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                with gr.Row():
                    identity = gr.Dropdown(label="Identity", choices=identity_choices(ctx), elem_id=f"{PREFIX}_identity")
                    refresh_ids = refresh_button(f"{PREFIX}_refresh_identities", "Identity: refresh")
                identity_info = gr.HTML(identity_html(ctx, None), elem_id=f"{PREFIX}_identity_info")
                options = [identity, *_option_controls()]
            with gr.Column(scale=1, min_width=320, elem_id=f"{PREFIX}_results"):
                buttons = run_buttons(PREFIX, "Train", skip=False)
                with gr.Column(elem_id=f"{PREFIX}_results_panel", elem_classes=["facechain-results-panel"]):
                    with gr.Group(elem_id=f"{PREFIX}_gallery_container"):
                        gallery = gr.Gallery(label="Validation portraits", elem_id=f"{PREFIX}_gallery", columns=4,
                                             height=360, object_fit="contain")
                    status = gr.HTML(elem_id=f"{PREFIX}_status")
                    with gr.Row():
                        out_name = gr.Textbox(label="LoRA", interactive=False)
                        out_prompt = gr.Textbox(label="Prompt snippet", interactive=False)
                    refresh = gr.Button("Show the latest training", size="sm", elem_id=f"{PREFIX}_refresh")
        task_id = gr.Textbox(visible=False, elem_id=f"{PREFIX}_task_id")
        job_id = gr.Textbox(visible=False, elem_id=f"{PREFIX}_job_id")

        refresh_ids.click(fn=handlers.identities, inputs=[identity], outputs=[identity, identity_info])
        on_view_open(handlers.identities, [identity], [identity, identity_info])
        identity.change(fn=handlers.identity_info, inputs=[identity], outputs=[identity_info], show_progress="hidden")
        buttons.run.click(fn=handlers.start, inputs=[task_id, *options], outputs=[job_id, status], show_progress="hidden",
                          **js_kwargs(JS_START))
        refresh.click(fn=handlers.refresh, inputs=[job_id], outputs=[job_id, status, out_name, out_prompt, gallery])
        wire_stop_buttons(buttons, PREFIX, task_id, handlers.interrupt, inputs=[job_id], outputs=[status])
    return block


class TrainHandlers:
    """Gradio handlers; none takes the host queue lock (the job does, on FaceChain's worker thread)."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def identities(self, current: str | None) -> tuple[Any, str]:
        """-> (identity dropdown update, identity line): the list as it is now (page load, view opened, 🔄)."""
        update = choices_update(identity_choices(self.ctx), current)
        return update, identity_html(self.ctx, update["value"])

    def refresh_identities(self, current: str | None) -> Any:
        return choices_update(identity_choices(self.ctx), current)

    def identity_info(self, name: str | None) -> str:
        return identity_html(self.ctx, name)

    def start(self, task_id, identity, preset, steps, rank, alpha, lr, resolution, seed, lora_name, overwrite, validation):
        try:
            if not identity:
                raise FaceChainError("invalid_request", "Choose an identity to train (prepare one in the Identities view).")
            request = parse_model(TrainRequestModel, {
                "identity": identity, "preset": preset, "steps": _or_none(steps, int), "rank": _or_none(rank, int),
                "alpha": _or_none(alpha, float), "learning_rate": _or_none(lr, float), "resolution": int(resolution),
                "seed": None if seed is None else int(seed), "lora_name": (lora_name or "").strip() or None,
                "overwrite": bool(overwrite), "validation_images": int(validation),
            }, what="Training options")
            job = submit_training(self.ctx, request, host_task_id=task_id)
        except FaceChainError as err:
            _end_host_task(task_id)  # nothing was queued: let the host progress bar stop at once
            return "", error_html(err)
        return job.id, message_html(f"Training of <b>{html.escape(identity)}</b> started. The progress bar above the "
                                    "portraits shows the step, percentage and time left; Interrupt stops it.")

    def refresh(self, job_id: str):
        record = None
        if job_id:
            try:
                record = self.ctx.jobs.snapshot(job_id)
            except FaceChainError:
                record = None
        record = record or latest_training(self.ctx)
        status, name, prompt, gallery = job_view(record)
        return (record or {}).get("id", ""), status, name, prompt, gallery

    def interrupt(self, task_id: str | None, job_id: str | None) -> str:
        """Interrupt: cancel this page's training job (queued: at once; running: within a step), never another task."""
        target = job_id or self._job_of_task(task_id)
        if not target:
            return message_html("No training job to interrupt.", kind="note")
        try:
            return job_view(cancel_job(self.ctx, target))[0]
        except FaceChainError as err:
            return error_html(err)

    def _job_of_task(self, task_id: str | None) -> str | None:
        """The job started with this host task id (Interrupt pressed before the start request answered)."""
        jobs = [job for job in self.ctx.jobs.list() if job.kind == "train" and task_id
                and job.extra.get("host_task_id") == task_id]
        return jobs[-1].id if jobs else None


def _or_none(value: Any, kind: type) -> Any:
    """0 or empty means "the preset's value" (None); anything else is passed on to be checked against the bounds."""
    if value in (None, ""):
        return None
    number = kind(value)
    return None if number == 0 else number
