"""Running a training job inside the host: one host task (`host_task.py`: queue lock, `shared.state`, the task
registry) around the training service, on the loaded model.

The job runs on FaceChain's own worker thread (`ctx.jobs`), never in a gradio handler, so it is the outermost code
and may take `modules.call_queue.queue_lock` (the host's FIFO, non re-entrant lock) for the whole training: txt2img
requests queue behind it exactly as behind another generation. Like the host's textual-inversion trainer, it keeps
`shared.state` current (job_count = steps, job_no = step, textinfo with loss and ETA), so the host progress bar,
`/sdapi/v1/progress` and the Interrupt button (`shared.state.interrupted`, checked every step) work for it.
"""

from __future__ import annotations

import logging
import time
from contextlib import closing
from typing import Any, Callable, Sequence

from facechain_ext.errors import FaceChainError
from facechain_ext.identity_creation import identity_subject
from facechain_ext.jobs import Job, JobHandle
from facechain_ext.names import check_name
from facechain_ext.training.service import TrainRequest, build_config, check_lora_name, train_identity

from .host import is_forge
from .host_task import (
    drop_queued_host_task,
    host_task,
    interrupt_host_task,
    is_host_task_id,
    new_host_task_id,
    queue_host_task,
)

log = logging.getLogger(__name__)

JOB_NAME = "facechain_train"
TRAIN_KEY = "train"  # at most one training queued or running: the second request gets `job_running`
VALIDATION_NEGATIVE = "nsfw, lowres, blurry, deformed, bad anatomy, disfigured, worst quality, low quality, watermark, text"


def submit_training(ctx: Any, request: Any, host_task_id: str | None = None) -> Job:
    """Check what can be checked at once (4xx now, not a failed job later), then queue the job."""
    req = TrainRequest.coerce(request)
    build_config(req)  # preset and every option's bounds (lora.config): invalid_request now, not a failed job
    if req.lora_name is not None:
        check_name(req.lora_name, "LoRA name")
    identity = ctx.identities.get(req.identity)
    check_lora_name(req.lora_name or identity.name, ctx.settings.facechain_lora_dir, req.overwrite)
    task_id = host_task_id if is_host_task_id(host_task_id) else new_host_task_id(JOB_NAME)
    # Registered before the worker can start it, so the host's progress endpoint says "queued" until it runs.
    queue_host_task(task_id)
    try:
        with ctx.identities.lock:  # no delete/overwrite between "it exists" and "the job holds it"
            ctx.identities.get(req.identity)
            job = ctx.jobs.submit("train", lambda handle: run_training_job(ctx, req, handle, task_id),
                                  exclusive_key=TRAIN_KEY, subjects=[identity_subject(identity.name)])
    except FaceChainError:
        drop_queued_host_task(task_id)  # never started: do not leave it "queued" forever
        raise
    job.extra["host_task_id"] = task_id
    return job


def cancel_job(ctx: Any, job_id: str) -> dict:
    """Cancel a FaceChain job. A queued training also leaves the host's task queue (its progress bar stops); a
    running one is also interrupted in the host (`shared.state.interrupt()`, what the host's Interrupt button does)
    when it is the host's current task, so a validation render stops within a sampler step. Another task that
    happens to be running (someone's txt2img) is never interrupted."""
    job = ctx.jobs.cancel(job_id)
    record = ctx.jobs.snapshot(job_id)
    task_id = job.extra.get("host_task_id")
    if record["status"] == "cancelled" and job.started is None and task_id:
        drop_queued_host_task(task_id, finish=True)
    elif record["status"] == "running" and task_id:
        interrupt_host_task(task_id)
    return record


def run_training_job(ctx: Any, request: TrainRequest, handle: JobHandle, task_id: str) -> dict:
    """The job body (FaceChain worker thread): one host task (outermost queue lock), model adapted, service run."""
    from modules import shared

    with host_task(JOB_NAME, task_id, take_lock=True, queued=True):
        host_handle = HostProgress(handle, shared.state)
        if host_handle.cancelled:  # cancelled while it waited for the lock (another generation was running)
            raise FaceChainError("cancelled", "Training was cancelled before it started; nothing was written.")
        host_handle.progress(0, 1, "FaceChain: preparing training")
        _unmerge_prompt_loras()
        model = _host_model(shared)  # on Forge this also loads the checkpoint's own UNet weights (see _forge_model)
        render = HostValidationRenderer(resolution_hint=request.resolution)
        result = train_identity(ctx, model, request, host_handle, render)
        result["host_task_id"] = task_id
        return result


class HostProgress:
    """A `JobHandle` that mirrors progress into `shared.state` and treats the host's Interrupt as a cancel.

    The host's bar (modules/progress.py `progressapi`) shows `job_no / job_count` (+ the sampler's
    `sampling_step / sampling_steps` share of one job) as the percentage, `textinfo` before it, and an ETA from
    `state.time_start`. Each phase of a training (photos, steps, validation) counts from 0 again, so a new phase
    restarts `time_start`: the ETA is then about the phase the bar shows, not skewed by the set-up before it.
    `textinfo` carries no ETA of its own (the bar adds the host's).
    """

    def __init__(self, handle: JobHandle, state: Any, clock: Callable[[], float] = time.time) -> None:
        self.handle = handle
        self.state = state
        self._clock = clock
        self._last: tuple[int, int] | None = None  # (done, total) of the previous report

    @property
    def id(self) -> str:
        return self.handle.id

    @property
    def cancelled(self) -> bool:
        if getattr(self.state, "interrupted", False) and not self.handle.cancelled:
            self.handle.cancel()  # so the job record says why it stopped
        return self.handle.cancelled

    def cancel(self) -> None:
        self.handle.cancel()

    def progress(self, done: int, total: int, text: str = "") -> None:
        self.handle.progress(done, total, text)
        done, total = int(done), int(total)
        state = self.state
        if self._last is None or total != self._last[1] or done < self._last[0]:
            state.time_start = self._clock()  # a new phase: the host's ETA counts from here
        self._last = (done, total)
        state.job_count, state.job_no = total, done
        state.sampling_step, state.sampling_steps = 0, 0  # a host sampler run inside (validation) fills these
        if text:
            state.textinfo = text


def _host_model(shared: Any) -> Any:
    """The loaded checkpoint as a `DiffusionModel` (A1111 ldm object or Forge engine); clear errors for what cannot
    be trained."""
    sd_model = getattr(shared, "sd_model", None)
    if sd_model is None:
        raise FaceChainError("host_unavailable", "No checkpoint is loaded in the webui; load an SD1.5 checkpoint and train again.")
    if is_forge():
        return _forge_model(sd_model)
    if not hasattr(getattr(sd_model, "model", None), "diffusion_model"):
        raise FaceChainError(
            "unsupported_model",
            "The loaded checkpoint is not an ldm model (another architecture); load an SD1.5 checkpoint.",
        )
    if getattr(sd_model, "lowvram", False):  # set by the host for --medvram/--lowvram (modules/lowvram.py)
        raise FaceChainError(
            "unsupported_host",
            "Training needs the whole checkpoint on the GPU, but the webui runs with --medvram or --lowvram, which "
            "moves model parts between devices during every forward. Restart without those flags to train.",
        )
    from facechain_ext.diffusion.ldm import LdmModel

    return LdmModel(sd_model)  # refuses SD2/SDXL/other families (diffusion.family) naming the checkpoint


def _unmerge_prompt_loras() -> None:
    """Make the host's Lora extension take out the LoRAs of the last generation before we train.

    The Lora extension merges `<lora:...>` weights into the model in place and only restores them at the next
    forward once its list of loaded networks changes. Activating the extra networks with no tags empties that list,
    as every generation without tags does (modules/extra_networks.py `activate`), so the training forwards see the
    checkpoint's own weights, not the user's last LoRA. (A default LoRA set in the host's settings, `sd_lora`, is
    added to every generation and would stay, as it would for any txt2img.)
    """
    try:
        from modules import extra_networks, processing
    except ImportError:  # a host without extra networks merges nothing
        return
    activate = getattr(extra_networks, "activate", None)
    if activate is not None:
        p = processing.StableDiffusionProcessingTxt2Img(prompt="", do_not_save_samples=True, do_not_save_grid=True)
        p.all_prompts, p.all_negative_prompts = [""], [""]  # the networks' activate may append default tags here
        activate(p, {})


def _forge_model(sd_model: Any) -> Any:
    """Forge's engine as a `DiffusionModel` (diffusion/forge.py), its UNet managed by Forge's memory management:
    `backend.memory_management.load_models_gpu` loads `forge_objects_original.unet` (weights of the last prompt's
    LoRA restored by its LoraLoader) now and again when the LoRA layers are attached. Forge's `sd_models` has no
    `lowvram` flag; a UNet Forge keeps partly in CPU memory is refused by ForgeModel when training starts."""
    from backend import memory_management

    from facechain_ext.diffusion.forge import ForgeModel

    return ForgeModel(sd_model, load_models=memory_management.load_models_gpu)


class HostValidationRenderer:
    """Renders validation portraits with the host's own txt2img pipeline and sampler.

    The snapshot under test is attached to the UNet in-process by the trainer (no file, no `<lora:>` tag), so the
    prompt carries only the activation text. Scripts are off (`p.scripts = None`) so no other extension changes the
    images, and nothing is saved to the outputs folder.
    """

    def __init__(self, *, resolution_hint: int | None = None, steps: int = 20, sampler: str = "Euler", cfg_scale: float = 7.0):
        # SD1 checkpoints draw faces reliably at 512 px and above: smaller training crops still validate at 512.
        self.size = max(512, int(resolution_hint or 512))
        self.steps, self.sampler, self.cfg_scale = steps, sampler, cfg_scale

    def __call__(self, prompts: Sequence[str], seeds: Sequence[int]) -> list:
        from modules import processing, shared

        state = shared.state
        # HostProgress set job_no/job_count to "snapshot k of n"; each portrait is one host job inside it (the host's
        # process_images calls state.nextjob() after it), so the bar advances portrait by portrait, sampler step by
        # step, and never moves backwards.
        snapshot, snapshots, count = state.job_no, max(1, state.job_count), len(prompts)
        images = []
        for number, (prompt, seed) in enumerate(zip(prompts, seeds, strict=True)):
            state.job_count, state.job_no = snapshots * count, snapshot * count + number
            p = processing.StableDiffusionProcessingTxt2Img(
                prompt=prompt, negative_prompt=VALIDATION_NEGATIVE, seed=int(seed), sampler_name=self.sampler,
                batch_size=1, n_iter=1, steps=self.steps, cfg_scale=self.cfg_scale, width=self.size, height=self.size,
                do_not_save_samples=True, do_not_save_grid=True,
            )
            p.scripts = None
            with closing(p):
                processed = processing.process_images(p)
            if state.interrupted:
                break  # the trainer's next cancel check turns this into a clean cancel
            images.extend(processed.images[:1])
        state.job_count, state.job_no = snapshots, snapshot
        state.sampling_step, state.sampling_steps = 0, 0
        return images
