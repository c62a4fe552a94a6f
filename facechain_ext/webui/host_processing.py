"""Generating portraits through the host (HOST_CONTRACT.md §4, §6): `modules.processing` with the host's checkpoint,
sampler and Lora extension, the FaceChain Script as the only always-on script, the host's queue lock, `shared.state`
and task registry (one host task, `host_task.py`), so /sdapi/v1/progress and /sdapi/v1/interrupt apply to our
generations exactly as to the host's.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..context import FaceChainContext
from ..generation_state import get_state
from ..portraits import resolve_generation
from ..schemas import FaceChainArgs, args_to_dict
from .host import host_variant
from .host_task import host_task

# txt2img fields (host names) FaceChain passes on to StableDiffusionProcessingTxt2Img unchanged
PROCESSING_FIELDS = (
    "prompt", "negative_prompt", "styles", "seed", "subseed", "subseed_strength", "seed_resize_from_h",
    "seed_resize_from_w", "sampler_name", "scheduler", "batch_size", "n_iter", "steps", "cfg_scale", "width", "height",
    "restore_faces", "tiling", "do_not_save_samples", "do_not_save_grid", "eta", "denoising_strength",
    "override_settings", "override_settings_restore_afterwards", "enable_hr", "hr_scale", "hr_upscaler",
    "hr_second_pass_steps", "hr_resize_x", "hr_resize_y", "hr_sampler_name", "hr_scheduler", "hr_prompt",
    "hr_negative_prompt",
)


@dataclass
class GenerationOutcome:
    """Images of one generation as returned (ranked), with their infotexts, scores and generation positions."""

    images: list[Any]
    infotexts: list[str]
    scores: list[Optional[float]]
    order: list[int]  # generation position of each returned image
    seeds: list[int] = field(default_factory=list)  # in GENERATION order: the seed of image k is seeds[order[k]]
    comments: str = ""
    js: str = "{}"


def facechain_runner(ctx: FaceChainContext) -> tuple[Any, Any]:
    """A host ScriptRunner holding only a fresh FaceChain script, which reads its ONE dict argument at index 0."""
    from modules import scripts

    from .script import FaceChainScript

    script = FaceChainScript(ctx)
    script.filename = __file__
    script.name = "facechain"
    script.args_from, script.args_to = 0, 1
    script.alwayson = True
    runner = scripts.ScriptRunner()
    runner.scripts = [script]
    runner.alwayson_scripts = [script]
    runner.selectable_scripts = []
    return runner, script


def make_txt2img(fields: dict[str, Any], args: FaceChainArgs, ctx: FaceChainContext, pose: Any = None) -> Any:
    """A txt2img processing object with the FaceChain runner; `pose` (a PIL image, optional) adds ControlNet openpose
    guidance when the host's ControlNet can use it (else a visible comment says why not, see webui/controlnet.py)."""
    from modules import processing, shared

    kwargs = {name: fields[name] for name in PROCESSING_FIELDS if fields.get(name) is not None}
    opts = shared.opts
    p = processing.StableDiffusionProcessingTxt2Img(
        sd_model=shared.sd_model,
        outpath_samples=getattr(opts, "outdir_samples", "") or getattr(opts, "outdir_txt2img_samples", None),
        outpath_grids=getattr(opts, "outdir_grids", "") or getattr(opts, "outdir_txt2img_grids", None),
        **kwargs,
    )
    runner, _ = facechain_runner(ctx)
    p.scripts = runner
    p.script_args = [args_to_dict(args)]
    if pose is not None:
        _add_pose(p, pose)
    return p


def _add_pose(p: Any, pose: Any) -> None:
    from ..diffusion.family import model_family
    from .controlnet import attach_units, find_pose_guidance

    guidance = find_pose_guidance(pose, sdxl=model_family(p.sd_model) == "sdxl")
    attach_units(p, guidance)
    if guidance.note:
        p.comment(guidance.note)
    p.extra_generation_params["FaceChain pose"] = guidance.label


def _process_images(p: Any) -> Any:
    from modules import processing

    if host_variant() == "forge":
        return on_forge_main_thread(processing.process_images, p)
    return processing.process_images(p)


def on_forge_main_thread(func: Callable[..., Any], *args: Any) -> Any:
    """`func(*args)` on Forge's main thread, as Forge runs its own txt2img (modules/txt2img.py `txt2img`:
    `main_thread.run_and_wait_result(txt2img_function, ...)`), with the caller's exception re-raised here.

    Forge's `modules_forge/main_thread.py` `Task.work` catches an exception, prints it and hands the caller `None`,
    so an error would surface as `'NoneType' object has no attribute ...`. The call is wrapped so the outcome (value
    or exception, BaseException included: one escaping the task would end Forge's main loop) travels back in a local
    box and is re-raised in the calling thread, where the queue lock and `shared.state` were taken (Forge's
    `call_queue.wrap_gradio_gpu_call` also holds them in the caller's thread). Must not be called from the main
    thread itself (it would wait for itself); FaceChain calls it only from request/UI worker threads.
    """
    from modules_forge import main_thread

    box: dict[str, Any] = {}

    def task() -> None:
        try:
            box["value"] = func(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread below
            box["error"] = exc

    main_thread.run_and_wait_result(task)
    if "error" in box:
        raise box["error"]
    if "value" not in box:
        raise RuntimeError("Forge's main thread finished the generation task without running it")
    return box["value"]


def run_processing(p: Any) -> GenerationOutcome:
    """Run a prepared processing object (with the FaceChain runner) and collect the ranked outcome."""
    with contextlib.closing(p):
        processed = _process_images(p)
    state = get_state(p)
    first = int(getattr(processed, "index_of_first_image", 0) or 0)
    images = list(processed.images[first:])
    infotexts = list(processed.infotexts[first:])
    order = list(state.order) if state is not None and state.order is not None else list(range(len(images)))
    records = state.records if state is not None else []
    scores = [records[i].score if i < len(records) else None for i in order]
    return GenerationOutcome(
        images=images, infotexts=infotexts, scores=scores, order=order, seeds=_generation_seeds(processed, state),
        comments=getattr(processed, "comments", "") or "", js=processed.js(),
    )


def _generation_seeds(processed: Any, state: Any) -> list[int]:
    """Seeds by generation position. Ranking reorders (and may shorten) `processed.all_seeds` to the returned
    order, so after ranking the records (one per generated image, in generation order) are the source."""
    if state is not None and state.order is not None and all(r.seed is not None for r in state.records):
        return [int(r.seed) for r in state.records]
    return list(getattr(processed, "all_seeds", []) or [])


def run_txt2img(
    ctx: FaceChainContext, fields: dict[str, Any], args: FaceChainArgs, *, task_id: Optional[str] = None, take_lock: bool = True,
    pose: Any = None,
) -> GenerationOutcome:
    """One FaceChain txt2img generation. Identity/style problems raise FaceChainError before anything is queued."""
    resolve_generation(ctx, args)  # resolves identity, LoRA and style now: 404s never wait behind the queue
    p = make_txt2img(fields, args, ctx, pose=pose)
    with host_task("facechain_txt2img", task_id, take_lock=take_lock):
        return run_processing(p)
