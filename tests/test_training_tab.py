"""The Train view under gradio 3.41.2: its controls and their limits, the host progress bar and Interrupt, the lists
read when the page loads, and its handlers (refusals before queueing, a cancel reported as a neutral state)."""

from __future__ import annotations

import gradio as gr
from gradio_helpers import events_of as events
from gradio_helpers import load_outputs
from PIL import Image
from training_helpers import IDENTITY, ctx_with_identity

from facechain_ext.webui import tab_train
from facechain_ext.webui.tab_train import TrainHandlers, job_view


def by_elem_id(block, elem_id):
    (found,) = [c for c in block.blocks.values() if getattr(c, "elem_id", None) == elem_id]
    return found


def test_view_has_bounded_controls_the_host_progress_bar_and_interrupt(tmp_path, prepared):
    ctx = ctx_with_identity(tmp_path, prepared)
    block = tab_train.build(ctx)
    components = list(block.blocks.values())
    labels = {getattr(c, "label", None) for c in components}
    assert {"Identity", "Preset", "Steps (0 = preset)", "Rank (0 = preset)", "Seed", "Portraits per snapshot"} <= labels
    identity = by_elem_id(block, "facechain_train_identity")
    assert [choice if isinstance(choice, str) else choice[0] for choice in identity.choices] == [IDENTITY]
    (advanced,) = [c for c in components if isinstance(c, gr.Accordion)]
    assert advanced.label == "Advanced options" and advanced.open is False
    # limits are the API request model's (schemas.TrainRequestModel, from lora.config): steps 1..10000, rank 1..128,
    # 0 = the preset
    steps, rank = by_elem_id(block, "facechain_train_steps"), by_elem_id(block, "facechain_train_rank")
    assert (steps.minimum, steps.maximum, rank.minimum, rank.maximum) == (0, 10000, 0, 128)
    (validation,) = [c for c in components if getattr(c, "label", None) == "Portraits per snapshot"]
    assert (validation.minimum, validation.maximum) == (0, 8)
    buttons = {c.elem_id: c.value for c in components if isinstance(c, gr.Button)}
    assert buttons["facechain_train_run"] == "Train" and buttons["facechain_train_interrupt"] == "Interrupt"
    assert "Cancel" not in buttons.values()  # one way to stop: the host's Interrupt
    assert ("click", "facechain_train_start") in events(block, by_elem_id(block, "facechain_train_run"))
    interrupt_js = [js for trigger, js in events(block, by_elem_id(block, "facechain_train_interrupt")) if trigger == "click"]
    assert interrupt_js and "facechain_stopping('facechain_train'" in interrupt_js[0]
    # the progress bar goes above the output gallery (the container the JS passes to the host's requestProgress)
    container = by_elem_id(block, "facechain_train_gallery_container")
    assert [child.elem_id for child in container.children] == ["facechain_train_gallery"]
    # the identity list is read again on every page load (not only when the webui started)
    assert any(identity._id in outputs for outputs in load_outputs(block))
    ctx.jobs.shutdown(5)


def test_start_refuses_bad_options_before_queueing_and_stops_the_bar(fake_host, tmp_path, prepared):
    from modules import progress

    ctx = ctx_with_identity(tmp_path, prepared)
    handlers = TrainHandlers(ctx)
    job_id, status = handlers.start("task(x1)", None, "fast", 0, 4, 0, 0, "64", 42, "", False, 1)
    assert job_id == "" and "data-code='invalid_request'" in status and "Choose an identity" in status
    assert "task(x1)" in progress.finished_tasks  # the host progress bar for the refused request stops at once
    job_id, status = handlers.start("task(x3)", IDENTITY, "fast", -5, 0, 0, 0, "64", 42, "", False, 1)
    assert job_id == "" and "data-code='invalid_request'" in status and ctx.jobs.list() == []
    assert "Training options: steps must be at least 1." in status  # the field in words, never as a path
    assert "task(x3)" in progress.finished_tasks
    ctx.jobs.shutdown(5)


def test_a_job_is_found_again_and_a_failure_is_a_plain_message(fake_host, tmp_path, prepared):
    ctx = ctx_with_identity(tmp_path, prepared)
    handlers = TrainHandlers(ctx)
    job_id, status = handlers.start("task(x2)", IDENTITY, "fast", 4, 4, 0, 0, "64", 42, "", False, 1)
    assert job_id and "Training of <b>obama</b> started" in status and "facechain-error" not in status
    job = ctx.jobs.wait(job_id, 30)
    assert job.status == "failed" and job.error["code"] == "host_unavailable"  # no checkpoint loaded in this host
    # after a page reload the page has no job id: the status button finds the latest training job
    found_id, status, name, prompt, gallery = handlers.refresh("")
    assert found_id == job_id and "<b>Failed</b>" in status and "No checkpoint is loaded" in status
    assert "host_unavailable</b>" not in status and "data-code='host_unavailable'" in status and gallery == []
    assert "No checkpoint is loaded" in handlers.interrupt("", job_id)  # finished: Interrupt only shows the record
    update, line = handlers.identities("gone")
    assert update["choices"] == [IDENTITY] and update["value"] is None and line == ""
    ctx.jobs.shutdown(5)


def test_interrupt_cancels_this_pages_job_and_reports_it_neutrally(fake_host, tmp_path, prepared):
    """Interrupt pressed before the start request answered: the job is found by its host task id; queued work is
    cancelled at once, and the host's own Interrupt flag is only raised for the task that is ours and running."""
    import threading

    from modules import progress, shared

    ctx = ctx_with_identity(tmp_path, prepared)
    gate = threading.Event()
    blocker = ctx.jobs.submit("other", lambda handle: gate.wait(30) and {})  # keeps the training queued
    handlers = TrainHandlers(ctx)
    job_id, _ = handlers.start("task(queued1)", IDENTITY, "fast", 4, 4, 0, 0, "64", 42, "", False, 1)
    progress.start_task("task(someone-else)")  # another tab's txt2img is the host's current task
    status = handlers.interrupt("task(queued1)", "")
    assert "<b>Cancelled</b>" in status and "facechain-error" not in status and "nothing was written" in status
    assert shared.state.interrupted is False  # someone else's generation was not interrupted
    assert "task(queued1)" in progress.finished_tasks and "task(queued1)" not in progress.pending_tasks
    assert ctx.jobs.get(job_id).status == "cancelled"
    gate.set()
    ctx.jobs.wait(blocker.id, 10)
    ctx.jobs.shutdown(5)


def test_job_view_shows_the_lora_prompt_and_scored_validation_images(tmp_path):
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"v{i}.png"))
        Image.new("RGB", (8, 8)).save(paths[-1])
    record = {
        "id": "j1", "kind": "train", "status": "done", "progress": 1.0, "eta_s": None, "textinfo": "Saved obama.safetensors",
        "error": None,
        "result": {
            "lora": {"name": "obama", "path": "/x/obama.safetensors", "prompt": "<lora:obama:0.9>, fcsks, a man", "sha256": "ab"},
            "validation": [
                {"step": 100, "score": 0.61, "image_scores": [0.61, None], "chosen": False, "images": paths[:2]},
                {"step": 200, "score": 0.83, "image_scores": [0.83], "chosen": True, "images": paths[2:]},
            ],
            "notes": ["Kept snapshot step 200 (mean face similarity 0.830)."],
        },
    }
    status, name, prompt, gallery = job_view(record)
    assert name == "obama" and prompt == "<lora:obama:0.9>, fcsks, a man"
    assert gallery == [(paths[0], "step 100: similarity 0.610"), (paths[1], "step 100: no face"),
                       (paths[2], "step 200 (kept): similarity 0.830")]
    assert "<b>Done</b>" in status and "100%" in status and "Kept snapshot step 200" in status
    running = {**record, "status": "running", "progress": 0.25, "eta_s": 31.6, "result": None, "textinfo": "Training step 5/20"}
    status, name, prompt, gallery = job_view(running)
    assert "<b>Training</b> · 25% · ETA 32 s" in status and "Training step 5/20" in status and (name, gallery) == ("", [])
    cancelled = {**running, "status": "cancelled", "error": {"code": "cancelled", "message": "Cancelled before it started."}}
    status, *_ = job_view(cancelled)
    assert "<b>Cancelled</b>" in status and "facechain-error" not in status
    assert "No training job yet." in job_view(None)[0]
