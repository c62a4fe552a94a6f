"""Training inside the (stand-in) host: queue lock, shared.state, the host task registry, Interrupt, refusals."""

from __future__ import annotations

import sys
import threading
import time
import types

import pytest
import torch
from tiny_models import CONTEXT_DIM
from training_helpers import IDENTITY, UnetSnapshot, ctx_with_identity, gray_images

from facechain_ext.errors import FaceChainError
from facechain_ext.jobs import JobQueue
from facechain_ext.webui import training_worker
from facechain_ext.webui.training_worker import HostProgress, cancel_job, submit_training

FAST = {"identity": IDENTITY, "steps": 4, "snapshot_every": 2, "resolution": 64, "seed": 5, "validation_images": 2}


@pytest.fixture()
def host(fake_host, tiny_sd, tmp_path, monkeypatch):
    """The fake host (on this CPU: --no-half, as a CPU webui needs) with the tiny checkpoint loaded and a txt2img
    that records what it was asked."""
    from modules import call_queue, processing, progress, sd_models, shared

    fake_host.reset_host(tmp_path / "webui", ["--no-half"])
    tiny_sd.sd_checkpoint_info = sd_models.CheckpointInfo("tiny.safetensors", "tiny.safetensors [0123456789]", "tiny")
    fake_host.load_model(tiny_sd)
    calls: list[dict] = []

    def process_images(p):
        calls.append({
            "locked": call_queue.queue_lock.locked(), "job": shared.state.job, "task": progress.current_task,
            "prompt": p.prompt, "seed": p.seed, "size": (p.width, p.height), "scripts": p.scripts,
            "no_save": (p.do_not_save_samples, p.do_not_save_grid),
        })
        return processing.Processed(p, gray_images(1), seed=p.seed)

    monkeypatch.setattr(processing, "process_images", process_images, raising=False)
    fake_host.calls = calls
    return fake_host


def _wait(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_training_job_runs_under_the_host_lock_state_and_task(host, tmp_path, prepared, tiny_sd, monkeypatch):
    import modules
    from modules import call_queue, progress, shared

    activations = []  # the host's extra networks are emptied once, before training, under the lock
    fake_extra_networks = types.SimpleNamespace(
        activate=lambda p, data: activations.append((data, call_queue.queue_lock.locked(), len(host.calls))))
    monkeypatch.setattr(modules, "extra_networks", fake_extra_networks, raising=False)
    monkeypatch.setitem(sys.modules, "modules.extra_networks", fake_extra_networks)
    ctx = ctx_with_identity(tmp_path, prepared)
    before = UnetSnapshot(tiny_sd.model.diffusion_model)
    job = submit_training(ctx, FAST, host_task_id="task(abc123)")
    assert job.extra["host_task_id"] == "task(abc123)"
    record = ctx.jobs.wait(job.id, 120).to_dict()
    assert record["status"] == "done", record["error"]
    assert activations == [({}, True, 0)]

    # validation went through the host's txt2img: under the lock, in our job, nothing saved, no scripts
    assert len(host.calls) == 2 * 2  # 2 snapshots x 2 portraits
    assert all(c["locked"] and c["job"] == "facechain_train" and c["task"] == "task(abc123)" for c in host.calls)
    assert all(c["no_save"] == (True, True) and c["scripts"] is None and c["size"] == (512, 512) for c in host.calls)
    assert [c["seed"] for c in host.calls] == [5, 6, 5, 6] and all("fcsks, a person" in c["prompt"] for c in host.calls)

    assert "facechain_train" in shared.state.history and shared.state.job == ""  # begun and ended
    assert "task(abc123)" in progress.finished_tasks and progress.current_task is None
    assert "task(abc123)" not in progress.pending_tasks
    assert not call_queue.queue_lock.locked()
    before.assert_restored()
    assert record["result"]["lora"]["name"] == IDENTITY and record["result"]["host_task_id"] == "task(abc123)"
    assert (tmp_path / "Lora" / "FaceChain" / f"{IDENTITY}.safetensors").is_file()
    assert record["result"]["lora"]["path"].endswith("FaceChain/obama.safetensors")
    ctx.jobs.shutdown(5)


def test_host_progress_mirrors_into_shared_state_and_interrupt_cancels():
    from modules import progress, shared

    queue, seen = JobQueue(), {}
    gate = threading.Event()
    clock = iter([100.0, 200.0, 300.0])

    def fn(handle):
        bridge = HostProgress(handle, shared.state, clock=lambda: next(clock))
        bridge.progress(0, 1, "Loading 4 training photos")
        seen["loading_start"] = shared.state.time_start
        bridge.progress(1, 10, "Training step 1/10, loss 0.2000")  # a new phase: the host's ETA counts from here
        seen["steps_start"] = shared.state.time_start
        bridge.progress(3, 10, "Training step 3/10, loss 0.1000")
        seen.update(count=shared.state.job_count, no=shared.state.job_no, text=shared.state.textinfo,
                    same_phase=shared.state.time_start)
        progress.start_task("task(train)")
        seen["bar"] = progress.progressapi(progress.ProgressRequest(id_task="task(train)"))
        seen["before"] = bridge.cancelled
        shared.state.interrupt()  # the host's Interrupt button
        seen["after"] = bridge.cancelled
        gate.wait(5)
        raise FaceChainError("cancelled", "Stopped.")

    shared.state.begin(job="facechain_train")
    job = queue.submit("train", fn)
    _wait(lambda: "after" in seen)
    assert seen["count"] == 10 and seen["no"] == 3
    assert seen["text"] == "Training step 3/10, loss 0.1000"  # no ETA of our own: the host's bar adds its ETA
    assert (seen["loading_start"], seen["steps_start"], seen["same_phase"]) == (100.0, 200.0, 200.0)
    assert seen["bar"]["active"] and seen["bar"]["progress"] == pytest.approx(0.3) and seen["bar"]["eta"] is not None
    assert seen["before"] is False and seen["after"] is True
    assert job.cancel_event.is_set()  # the job record knows why it stopped
    gate.set()
    assert queue.wait(job.id, 5).status == "cancelled"
    shared.state.end()
    queue.shutdown(5)


def test_validation_portraits_advance_the_host_bar_without_going_back(fake_host, monkeypatch):
    """Each portrait is one host job inside "snapshot k of n" (the host's process_images calls state.nextjob() after
    it and its sampler fills sampling_step/sampling_steps): the bar's fraction only grows."""
    from modules import processing, progress, shared

    fractions = []

    def process_images(p):  # the host's order: sampler steps, then nextjob
        shared.state.sampling_steps = p.steps
        for step in range(0, p.steps, 5):
            shared.state.sampling_step = step
            fractions.append(progress.progressapi(progress.ProgressRequest(id_task="task(v)"))["progress"])
        shared.state.nextjob()
        return processing.Processed(p, gray_images(1), seed=p.seed)

    monkeypatch.setattr(processing, "process_images", process_images, raising=False)
    shared.state.begin(job="facechain_train")
    progress.start_task("task(v)")
    render = training_worker.HostValidationRenderer(steps=20)
    for snapshot in range(3):
        shared.state.job_count, shared.state.job_no = 3, snapshot  # what HostProgress sets before each snapshot
        assert len(render(["a", "b"], [1, 2])) == 2
        assert (shared.state.job_count, shared.state.job_no) == (3, snapshot)
    assert len(fractions) == 3 * 2 * 4 and fractions == sorted(fractions)
    assert fractions[0] == 0.0 and fractions[-1] == pytest.approx((5 + 15 / 20) / 6)
    shared.state.end()


def test_interrupt_stops_training_within_a_step_and_leaves_nothing(host, tmp_path, prepared, tiny_sd):
    from modules import call_queue, progress, shared

    ctx = ctx_with_identity(tmp_path, prepared)
    before = UnetSnapshot(tiny_sd.model.diffusion_model)
    job = submit_training(ctx, {**FAST, "steps": 3000})
    _wait(lambda: job.done >= 2 and job.status == "running")
    shared.state.interrupt()
    interrupted_at = job.done
    record = ctx.jobs.wait(job.id, 60).to_dict()
    assert record["status"] == "cancelled" and record["error"]["code"] == "cancelled"
    assert job.done <= interrupted_at + 1  # stopped within one step
    assert host.calls == []  # never reached validation
    before.assert_restored()
    assert not (tmp_path / "Lora").exists() or not any((tmp_path / "Lora").rglob("*"))
    assert ctx.identities.get(IDENTITY).loras == []
    assert not call_queue.queue_lock.locked() and shared.state.job == ""
    assert job.extra["host_task_id"] in progress.finished_tasks and progress.current_task is None
    ctx.jobs.shutdown(5)


def test_cancelling_a_running_training_interrupts_its_host_task(host, tmp_path, prepared):
    """The Train view's Interrupt (cancel_job) also raises the host's interrupt flag for the job's own task, so a
    sampler running inside the job (validation) stops within a step, as the host's Interrupt button would."""
    from modules import progress, shared

    ctx = ctx_with_identity(tmp_path, prepared)
    job = submit_training(ctx, {**FAST, "steps": 3000})
    _wait(lambda: job.done >= 2 and job.status == "running")
    assert progress.current_task == job.extra["host_task_id"]
    record = cancel_job(ctx, job.id)
    assert shared.state.interrupted is True and record["status"] == "running"  # it stops at its next check
    at = record["progress"] * 3000
    finished = ctx.jobs.wait(job.id, 60).to_dict()
    assert finished["status"] == "cancelled" and job.done <= at + 1
    ctx.jobs.shutdown(5)


def test_one_training_at_a_time_and_cancelling_a_queued_one(host, tmp_path, prepared):
    from modules import progress

    ctx = ctx_with_identity(tmp_path, prepared)
    gate = threading.Event()
    blocker = ctx.jobs.submit("other", lambda handle: gate.wait(30) and {})
    queued = submit_training(ctx, {**FAST, "steps": 3000})
    with pytest.raises(FaceChainError) as err:
        submit_training(ctx, FAST)
    assert err.value.code == "job_running" and err.value.http_status == 409
    task = queued.extra["host_task_id"]
    assert task in progress.pending_tasks  # the host progress bar reports it as queued
    record = cancel_job(ctx, queued.id)
    assert record["status"] == "cancelled"
    assert task not in progress.pending_tasks and task in progress.finished_tasks
    gate.set()
    ctx.jobs.wait(blocker.id, 10)
    again = submit_training(ctx, {**FAST, "validation_images": 0})  # the slot is free again
    assert ctx.jobs.wait(again.id, 120).status == "done"
    assert len(again.result["validation"]) == 1 and again.result["validation"][0]["chosen"]
    ctx.jobs.shutdown(5)


def test_refusals_before_and_inside_the_job(host, tmp_path, prepared, monkeypatch):
    from modules import shared

    ctx = ctx_with_identity(tmp_path, prepared)
    with pytest.raises(FaceChainError) as err:
        submit_training(ctx, {**FAST, "identity": "nobody"})
    assert err.value.code == "identity_not_found"
    monkeypatch.setattr(shared.sd_model, "lowvram", True, raising=False)  # --medvram / --lowvram
    job = submit_training(ctx, FAST)
    assert ctx.jobs.wait(job.id, 30).error["code"] == "unsupported_host"
    assert "--medvram" in job.error["message"]
    shared.sd_model = None
    job = submit_training(ctx, FAST)
    assert ctx.jobs.wait(job.id, 30).error["code"] == "host_unavailable"
    ctx.jobs.shutdown(5)


class _OtherArchitecture(torch.nn.Module):
    """A loaded checkpoint whose text context is not SD1's 768 (SD2: 1024, SDXL: 2048), as the host's object looks."""

    def __init__(self, context_dim: int) -> None:
        super().__init__()
        from ldm.modules.diffusionmodules.openaimodel import UNetModel

        self.model = torch.nn.Module()
        self.model.diffusion_model = UNetModel(
            image_size=8, in_channels=4, model_channels=32, out_channels=4, num_res_blocks=1, attention_resolutions=(1,),
            channel_mult=(1,), num_head_channels=8, use_spatial_transformer=True, context_dim=context_dim, legacy=False,
        )


@pytest.mark.parametrize("context_dim", [1024, 2048])
def test_non_sd1_checkpoints_are_refused(context_dim):
    with pytest.raises(FaceChainError) as err:
        training_worker._host_model(type("Shared", (), {"sd_model": _OtherArchitecture(context_dim)}))
    assert err.value.code == "unsupported_model" and err.value.http_status == 422
    sdxl = _OtherArchitecture(CONTEXT_DIM)
    sdxl.is_sdxl = True
    with pytest.raises(FaceChainError) as err:
        training_worker._host_model(type("Shared", (), {"sd_model": sdxl}))
    assert err.value.code == "unsupported_model"


@pytest.mark.parametrize("option", [
    {"preset": "ultra"}, {"alpha": float("inf")}, {"learning_rate": float("nan")}, {"seed": 2**70}, {"seed": -5},
    {"resolution": 100},
])
def test_bad_training_options_are_refused_before_a_job_is_queued(fake_host, tmp_path, prepared, option):
    """The route answers 422 at once (the documented 4xx-now rule), not 202 and a job that fails later."""
    from modules import progress

    ctx = ctx_with_identity(tmp_path, prepared)
    with pytest.raises(FaceChainError) as err:
        submit_training(ctx, {**FAST, **option})
    assert err.value.code == "invalid_request" and err.value.context["field"] == next(iter(option))
    assert ctx.jobs.list() == [] and progress.pending_tasks == {}


def test_half_precision_checkpoint_on_the_cpu_is_refused_clearly(fake_host, tmp_path, prepared, monkeypatch):
    """The host's default precision is half (no --no-half); on a CPU torch cannot compute in it, so the job fails
    with a clear error naming the flag, and the loaded model is left exactly as it was."""
    from modules import devices, processing, shared
    from tiny_models import TinyLatentDiffusion

    fake_host.reset_host(tmp_path / "webui", [])
    assert devices.dtype == torch.float16 and devices.dtype_vae == torch.float16
    model = fake_host.load_model(TinyLatentDiffusion(tmp_path / "tiny"), device=devices.cpu)
    assert shared.sd_model is model and next(model.model.diffusion_model.parameters()).dtype == torch.float16
    assert model.alphas_cumprod.dtype == torch.float32
    monkeypatch.setattr(processing, "process_images", lambda p: processing.Processed(p, gray_images(1)), raising=False)
    before = UnetSnapshot(model.model.diffusion_model)
    ctx = ctx_with_identity(tmp_path, prepared)
    job = submit_training(ctx, FAST)
    error = ctx.jobs.wait(job.id, 60).error
    assert error["code"] == "unsupported_model" and "--no-half" in error["message"]
    before.assert_restored()
    ctx.jobs.shutdown(5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="half-precision training needs a CUDA device")
def test_training_on_the_hosts_default_half_precision_model_on_cuda(fake_host, tmp_path, prepared, monkeypatch):
    """What most users run: the checkpoint in float16 on a GPU (the host's default, no --no-half)."""
    from modules import devices, processing
    from tiny_models import TinyLatentDiffusion

    fake_host.reset_host(tmp_path / "webui", [])
    model = fake_host.load_model(TinyLatentDiffusion(tmp_path / "tiny"))
    assert devices.device.type == "cuda" and next(model.model.diffusion_model.parameters()).dtype == torch.float16
    monkeypatch.setattr(processing, "process_images", lambda p: processing.Processed(p, gray_images(1)), raising=False)
    before = UnetSnapshot(model.model.diffusion_model)
    ctx = ctx_with_identity(tmp_path, prepared)
    record = ctx.jobs.wait(submit_training(ctx, {**FAST, "validation_images": 0}).id, 300).to_dict()
    assert record["status"] == "done", record["error"]
    losses = record["result"]["losses"]
    assert all(value == value for value in losses.values() if isinstance(value, float))  # no NaN
    before.assert_restored()
    ctx.jobs.shutdown(5)
