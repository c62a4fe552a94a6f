"""The Train view under gradio 3.41.2: its controls, the JS hook for the host progress bar, and its handlers."""

from __future__ import annotations

import gradio as gr
import pytest
from PIL import Image
from training_helpers import IDENTITY, ctx_with_identity, prepare_identity_folder

from facechain_ext.webui import tab_train
from facechain_ext.webui.tab_train import TrainHandlers, job_view


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, faces_table):
    return prepare_identity_folder(tmp_path_factory.mktemp("prepared"), faces_table)


def test_view_has_the_controls_and_starts_the_host_progress_bar(tmp_path, prepared):
    ctx = ctx_with_identity(tmp_path, prepared)
    block = tab_train.build(ctx)
    components = list(block.blocks.values())
    labels = {getattr(c, "label", None) for c in components}
    assert {"Identity", "Preset", "LoRA rank (0 = preset: 4 fast, 16 quality)", "Seed", "Overwrite an existing LoRA with this name", "Validation portraits"} <= labels
    (identity,) = [c for c in components if getattr(c, "elem_id", None) == "facechain_train_identity"]
    assert [choice if isinstance(choice, str) else choice[0] for choice in identity.choices] == [IDENTITY]
    (advanced,) = [c for c in components if isinstance(c, gr.Accordion)]
    assert advanced.label == "Advanced options" and advanced.open is False
    buttons = {c.value for c in components if isinstance(c, gr.Button)}
    assert {"Train", "Cancel", "Refresh", "Refresh identities"} <= buttons
    js = [d.get("js") for d in block.config["dependencies"]]
    assert "facechain_train_start" in js  # the JS that calls the host's requestProgress(task id)
    ctx.jobs.shutdown(5)


def test_handlers_queue_a_job_show_errors_and_find_it_again(fake_host, tmp_path, prepared):
    ctx = ctx_with_identity(tmp_path, prepared)
    handlers = TrainHandlers(ctx)
    job_id, status = handlers.start("task(x1)", None, "fast", 0, 4, 0, 0, "64", 42, "", False, 1)
    assert job_id == "" and "invalid_request" in status and "Choose an identity" in status
    from modules import progress

    assert "task(x1)" in progress.finished_tasks  # the host progress bar for the refused request stops at once
    job_id, status = handlers.start("task(x2)", IDENTITY, "fast", 4, 4, 0, 0, "64", 42, "", False, 1)
    assert job_id and ("queued" in status or "running" in status)
    job = ctx.jobs.wait(job_id, 30)
    assert job.status == "failed" and job.error["code"] == "host_unavailable"  # no checkpoint loaded in this host
    # after a page reload the page has no job id: Refresh finds the latest training job
    found_id, status, name, prompt, gallery = handlers.refresh("")
    assert found_id == job_id and "failed" in status and "host_unavailable" in status and gallery == []
    assert "No checkpoint is loaded" in handlers.cancel(job_id)  # finished: cancel only shows the record
    update = handlers.refresh_identities("gone")
    assert update["choices"] == [IDENTITY] and update["value"] is None
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
    assert "done" in status and "100%" in status and "Kept snapshot step 200" in status
    running = {**record, "status": "running", "progress": 0.25, "eta_s": 31.6, "result": None, "textinfo": "Training step 5/20"}
    status, name, prompt, gallery = job_view(running)
    assert "25%" in status and "ETA 32 s" in status and "Training step 5/20" in status and (name, gallery) == ("", [])
