"""The Train view of the FaceChain tab: pick an identity, choose a preset, train, watch progress, get the LoRA.

Progress without a gradio timer (gradio 3.41 has none): the Train button's JS (`facechain_train_start` in
javascript/facechain_train.js) creates a host task id and starts the host's own progress bar for it
(`requestProgress`, the same call the host's textual-inversion tab makes); the job registers that id with
`modules.progress` and keeps `shared.state` current, so the bar shows step, loss and ETA and the host's
Interrupt works. When the bar ends, the JS clicks "Refresh", which reads the job record (also the way back to a
running or finished job after a page reload: with no job in this page, Refresh shows the latest training job).
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from ..errors import FaceChainError
from ..lora.config import PRESETS
from .host import js_kwargs
from .settings import ui_default
from .training_worker import cancel_job, submit_training

JS_START = "facechain_train_start"

INTRO = (
    "Trains a LoRA of one prepared identity on the checkpoint **loaded in the webui** (SD 1.5; load it in the "
    "checkpoint list at the top first). The webui's progress bar and Interrupt button follow the job; the LoRA is "
    "saved in the webui's Lora folder (`FaceChain` sub-folder) and works in txt2img through the FaceChain accordion "
    "or the prompt snippet shown below. *fast*: rank 4, 100 steps per photo; *quality*: rank 16, 200 steps per photo."
)
NO_IDENTITY = "No identity yet: prepare one in the Identities view, then press <i>Refresh identities</i>."


def identity_html(ctx: Any, name: str | None) -> str:
    """One line about the chosen identity (photos, LoRAs so far), or what to do when there is none to choose."""
    if not name:
        return "" if identity_choices(ctx) else f"<p class='facechain-note'>{NO_IDENTITY}</p>"
    try:
        identity = ctx.identities.get(name)
    except FaceChainError as err:
        return error_html(err)
    loras = [str(record.get("name", "")) for record in identity.loras or []]
    trained = f"LoRAs so far: {html.escape(', '.join(loras))}" if loras else "no LoRA trained yet"
    return (f"<p class='facechain-note'><b>{html.escape(identity.name)}</b>: {identity.photo_count} training photos, "
            f"caption <code>{html.escape(identity.activation_text)}</code>; {trained}.</p>")


def identity_choices(ctx: Any) -> list[str]:
    try:
        return [identity.name for identity in ctx.identities.list()]
    except FaceChainError:
        return []


def error_html(err: FaceChainError) -> str:
    return f"<div class='facechain-error'><b>{html.escape(err.code)}</b>: {html.escape(err.message)}</div>"


def job_view(record: dict | None) -> tuple[str, str, str, list]:
    """(status html, LoRA name, prompt snippet, gallery items) for a job record; pure, so it is tested without gradio."""
    if record is None:
        return "<p>No training job yet.</p>", "", "", []
    status = record["status"]
    error = record.get("error") or {}
    # a failed job's textinfo usually repeats its error message: show it once, in the error box
    text = "" if record.get("textinfo") == error.get("message") else html.escape(record.get("textinfo") or "")
    line = f"<p><b>{status}</b> · {record['progress'] * 100:.0f}%"
    if record.get("eta_s") is not None:
        line += f" · ETA {record['eta_s']:.0f} s"
    line += f"<br>{text}</p>" if text else "</p>"
    if record.get("error"):
        line += error_html(FaceChainError(record["error"]["code"], record["error"]["message"]))
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


def build(ctx: Any) -> gr.Blocks:
    with gr.Blocks(analytics_enabled=False) as block:
        gr.Markdown(INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                identity = gr.Dropdown(label="Identity", choices=identity_choices(ctx), elem_id="facechain_train_identity")
                identity_info = gr.HTML(identity_html(ctx, None), elem_id="facechain_train_identity_info")
            with gr.Column(scale=1, min_width=160):
                refresh_ids = gr.Button("Refresh identities", size="sm", elem_id="facechain_train_refresh_identities")
        with gr.Row():
            preset = gr.Radio(label="Preset", choices=sorted(PRESETS), value=ui_default("facechain_training_preset"))
            steps = gr.Number(label="Steps (0 = preset: 100/200 per photo)", value=0, precision=0)
            rank = gr.Slider(label="LoRA rank (0 = preset: 4 fast, 16 quality)", minimum=0, maximum=64, step=1, value=0)
        with gr.Accordion("Advanced options", open=False):
            with gr.Row():
                alpha = gr.Number(label="Alpha (0 = preset)", value=0)
                learning_rate = gr.Number(label="Learning rate (0 = preset)", value=0)
                resolution = gr.Dropdown(label="Resolution", choices=["256", "384", "512", "640", "768"], value="512")
                seed = gr.Number(label="Seed", value=42, precision=0)
            with gr.Row():
                lora_name = gr.Textbox(label="LoRA name (empty = identity name)", max_lines=1)
                overwrite = gr.Checkbox(label="Overwrite an existing LoRA with this name", value=False)
                validation = gr.Slider(label="Validation portraits per snapshot", minimum=0, maximum=4, step=1, value=2)
        task_id = gr.Textbox(visible=False, elem_id="facechain_train_task_id")
        job_id = gr.Textbox(visible=False, elem_id="facechain_train_job_id")
        with gr.Row():
            train = gr.Button("Train", variant="primary", elem_id="facechain_train_start")
            cancel = gr.Button("Cancel", elem_id="facechain_train_cancel")
            refresh = gr.Button("Refresh", elem_id="facechain_train_refresh")
        gr.HTML(elem_id="facechain_train_progress")  # the host's progress bar goes here (JS)
        gr.HTML(elem_id="facechain_train_live")  # live step/loss/ETA text, written only by JS (never a gradio output)
        status = gr.HTML(elem_id="facechain_train_status")
        with gr.Row():
            out_name = gr.Textbox(label="LoRA", interactive=False)
            out_prompt = gr.Textbox(label="Prompt snippet (paste into txt2img)", interactive=False)
        gallery = gr.Gallery(label="Validation portraits", elem_id="facechain_train_gallery", columns=4)

        options = [identity, preset, steps, rank, alpha, learning_rate, resolution, seed, lora_name, overwrite, validation]
        handlers = TrainHandlers(ctx)
        refresh_ids.click(fn=handlers.refresh_identities, inputs=[identity], outputs=[identity]).then(
            fn=handlers.identity_info, inputs=[identity], outputs=[identity_info])
        identity.change(fn=handlers.identity_info, inputs=[identity], outputs=[identity_info])
        train.click(fn=handlers.start, inputs=[task_id, *options], outputs=[job_id, status], **js_kwargs(JS_START))
        refresh.click(fn=handlers.refresh, inputs=[job_id], outputs=[job_id, status, out_name, out_prompt, gallery])
        cancel.click(fn=handlers.cancel, inputs=[job_id], outputs=[status])
    return block


class TrainHandlers:
    """Gradio handlers; none takes the host queue lock (the job does, on FaceChain's worker thread)."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def refresh_identities(self, current: str | None) -> Any:
        choices = identity_choices(self.ctx)
        return gr.update(choices=choices, value=current if current in choices else None)

    def identity_info(self, name: str | None) -> str:
        return identity_html(self.ctx, name)

    def start(self, task_id, identity, preset, steps, rank, alpha, lr, resolution, seed, lora_name, overwrite, validation):
        request = {
            "identity": identity or "", "preset": preset, "steps": int(steps) or None, "rank": int(rank) or None,
            "alpha": float(alpha) or None, "learning_rate": float(lr) or None, "resolution": int(resolution),
            "seed": int(seed), "lora_name": (lora_name or "").strip() or None, "overwrite": bool(overwrite),
            "validation_images": int(validation),
        }
        try:
            if not identity:
                raise FaceChainError("invalid_request", "Choose an identity to train (prepare one in the Identities view).")
            job = submit_training(self.ctx, request, host_task_id=task_id)
        except FaceChainError as err:
            _end_host_task(task_id)  # nothing was queued: let the host progress bar stop at once
            return "", error_html(err)
        status, *_ = job_view(self.ctx.jobs.snapshot(job.id))
        return job.id, status

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

    def cancel(self, job_id: str) -> str:
        record = latest_training(self.ctx) if not job_id else None
        target = job_id or (record or {}).get("id")
        if not target:
            return "<p>No training job to cancel.</p>"
        try:
            return job_view(cancel_job(self.ctx, target))[0]
        except FaceChainError as err:
            return error_html(err)
