"""FACT's hook in the host (A1111 1.10): installed per generation, rows routed per CFG step, removed afterwards.

Lifecycle (HOST_CONTRACT.md §3; the script calls these, register() wires the callbacks):
- `process` → `reset`: a hook left by a generation that raised or was interrupted (its `postprocess` never ran) comes
  off first; `prepare` decides whether this generation runs FACT (without the model files the user gets a visible
  comment and the generation runs without FACT).
- `process_before_every_sampling` (A1111 ≥ 1.10 fires it before the first pass and again before the hires pass) →
  `before_sampling`: one model-family check (`diffusion.family.model_family`: SD1 only, else a comment and no FACT),
  the model loads once per context in the host's device and UNet dtype (`devices.device`, `devices.dtype_unet`:
  fp16 by default, fp32 with `--no-half`, which a CPU webui needs), the tokens are computed once per generation, and the hook goes on
  the UNet that will sample (`shared.sd_model.model.diffusion_model`).
- `on_cfg_denoiser` (every step): the step's text cond/uncond go to the row router; after a mid-generation model
  switch (refiner, hires checkpoint: `on_model_loaded` took the hook off) FACT is re-hooked on an SD1 model or stops
  with a comment.
- `postprocess` → `finish`: hook off; the model moves to the CPU unless Settings keep it on the GPU.
- `on_model_loaded` → hook off (a new checkpoint never inherits hooks); `on_script_unloaded` → hook off, model dropped.
`--lowvram` (the host keeps one UNet block at a time on the GPU, modules/lowvram.py): each FactBlock moves to the GPU
when its transformer block runs and back to the CPU right after; `--medvram` and normal runs keep the adapter on the
GPU for the generation.
Forge: `before_sampling` puts FACT on that sampling's clone of Forge's UNet patcher as a `middle_patch`
(webui/forge_fact.py; Forge resets patches before every sampling and batches rows by `cond_or_uncond`), so neither the
row router nor any removal is needed there; loading, tokens, comments and parking are shared.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from ..errors import FaceChainError
from ..fact_runtime import FactJob, FactRuntime
from ..generation_state import GenerationState, get_state

log = logging.getLogger("facechain")
KEEP_ON_GPU_KEY = "facechain_fact_keep_on_gpu"
BYPASSED = ("FaceChain FACT had no effect: the UNet ran without its transformer blocks (a replacement UNet such as "
            "Settings → SD UNet / TensorRT was active); switch it to Automatic or None for FACT.")


def _runtime(ctx: Any, create: bool = True) -> Optional[FactRuntime]:
    """ctx.fact, or None when FACT was never used in this context and `create` is False."""
    return ctx.fact if create else vars(ctx).get("fact")


def _say(p: Any, state: Optional[GenerationState], text: str) -> None:
    if state is not None:
        state.comment(text)
    if p is not None and hasattr(p, "comment"):
        p.comment(text)


def _unet(sd_model: Any) -> Any:
    return getattr(getattr(sd_model, "model", None), "diffusion_model", None)


def unsupported_reason(sd_model: Any, *, forge: bool = False) -> Optional[str]:
    """Why FACT cannot run on this checkpoint (None when it can): SD1.x only (and, on A1111, an ldm UNet)."""
    from ..diffusion.family import LABELS, model_family

    family = model_family(sd_model)
    if family == "sd1" and (forge or _unet(sd_model) is not None):
        return None
    info = getattr(sd_model, "sd_checkpoint_info", None)
    name = getattr(info, "title", None) or getattr(info, "name", None) or "the loaded checkpoint"
    return (f"FaceChain FACT works with Stable Diffusion 1.x checkpoints only; {name} is {LABELS.get(family, family)}, "
            "so this generation runs without FACT.")


def reset(ctx: Any) -> None:
    """Take off any hook a previous generation left (it raised, was interrupted, or was superseded)."""
    runtime = _runtime(ctx, create=False)
    if runtime is not None and (runtime.job is not None or runtime.attachment is not None):
        runtime.end()
        _park(runtime)


def prepare(ctx: Any, p: Any, state: GenerationState, identity_dir: Any) -> None:
    """Give `state` a FactJob when its arguments ask for FACT and this host can run it (else a visible comment)."""
    if not state.wants_fact:
        return
    from ..fact.files import find_fact_files

    args = state.args
    try:
        files = find_fact_files(ctx.settings.models_dir)
    except FaceChainError as err:
        _say(p, state, f"FaceChain FACT is off for this generation: {err.message}")
        return
    state.fact = FactJob(
        identity_dir=identity_dir, scale=float(args.fact_scale), files=files,
        photo_count=int(args.fact_photo_count), photos=tuple(args.fact_photos or ()),
    )


def before_sampling(ctx: Any, p: Any) -> None:
    """Hook FACT into the UNet about to sample for `p` (first pass and hires pass)."""
    state = get_state(p)
    fact = getattr(state, "fact", None)
    if fact is None or fact.off is not None:
        return
    from modules import shared

    from .host import is_forge

    if is_forge():
        _forge_sampling(ctx, p, state, fact, getattr(p, "sd_model", None) or shared.sd_model)
        return
    runtime = _runtime(ctx)
    if runtime.job is not fact or not runtime.owns(p):
        runtime.end()  # never serve this generation with another one's hook
    runtime.begin(p, fact)
    _hook(ctx, runtime, p, state, shared.sd_model)


def _hook(ctx: Any, runtime: FactRuntime, p: Any, state: Optional[GenerationState], sd_model: Any) -> None:
    fact = runtime.job
    reason = unsupported_reason(sd_model)
    if reason is not None:
        runtime.detach()
        if fact.turn_off(reason):
            _say(p, state, reason)
        return
    unet = _unet(sd_model)
    if runtime.attached_to(unet):
        return  # the hires pass on the same model: the hook stays
    try:
        _attach(ctx, runtime, fact, unet)
    except Exception as exc:  # noqa: BLE001 - FACT failing must cost the user FACT, not the generation
        runtime.detach()
        _stop(p, state, fact, exc)
        return
    _show_notes(p, state, fact)


def _stop(p: Any, state: Optional[GenerationState], fact: FactJob, exc: BaseException) -> None:
    """FACT is off for the rest of the generation; the reason is shown once."""
    if isinstance(exc, FaceChainError):
        reason = exc.message
    else:
        log.exception("FaceChain: FACT could not be set up", exc_info=exc)
        reason = f"{type(exc).__name__}: {exc}"
    if fact.turn_off(reason):
        _say(p, state, f"FaceChain FACT is off for this generation: {reason}")


def _forge_sampling(ctx: Any, p: Any, state: Optional[GenerationState], fact: FactJob, sd_model: Any) -> None:
    """Forge: FACT as a middle_patch on this sampling's clone of `forge_objects.unet` (webui/forge_fact.py)."""
    from .forge_fact import install_forge_fact

    reason = unsupported_reason(sd_model, forge=True)
    if reason is not None:
        if fact.turn_off(reason):
            _say(p, state, reason)
        return
    try:
        model = _loaded(ctx, _runtime(ctx), fact)
        install_forge_fact(sd_model, model.adapter, fact.tokens.face, fact.tokens.no_face, fact.scale)
    except Exception as exc:  # noqa: BLE001 - FACT failing must cost the user FACT, not the generation
        _stop(p, state, fact, exc)
        return
    fact.applied = True
    _show_notes(p, state, fact)


def _loaded(ctx: Any, runtime: FactRuntime, fact: FactJob) -> Any:
    """The FACT model in the host's device and UNet dtype, and the generation's tokens (computed once)."""
    import torch
    from modules import devices

    device = getattr(devices, "device", None) or torch.device("cpu")
    model = runtime.load(fact.files, device, getattr(devices, "dtype_unet", None) or torch.float32)
    if fact.tokens is None:
        fact.tokens = _tokens(ctx, model, fact)
    return model


def _show_notes(p: Any, state: Optional[GenerationState], fact: FactJob) -> None:
    for note in fact.notes:
        _say(p, state, f"FaceChain FACT: {note}")
    fact.notes.clear()


def _attach(ctx: Any, runtime: FactRuntime, fact: FactJob, unet: Any) -> None:
    from modules import devices, shared

    model = _loaded(ctx, runtime, fact)
    lowvram = bool(getattr(shared.cmd_opts, "lowvram", False))
    runtime.attach(unet, model.adapter, fact.tokens, fact.scale, offload_device=devices.cpu if lowvram else None)
    if lowvram:
        model.to(devices.cpu)  # blocks travel to the GPU one at a time while their transformer block runs
    fact.applied = True


def _tokens(ctx: Any, model: Any, fact: FactJob) -> Any:
    """The generation's FaceTokens: the chosen photos' tokens (cached per identity) and as many no-face tokens."""
    from ..fact.attach import FaceTokens
    from ..fact.tokens import identity_tokens
    from ..prep.parsing import head_masker_for

    result = identity_tokens(model, fact.identity_dir, count=fact.photo_count, explicit=fact.photos or None,
                             masker=head_masker_for(ctx.settings))
    fact.used_photos = list(result.photos)
    fact.notes.extend(result.notes)
    return FaceTokens(face=result.tokens, no_face=model.no_face_tokens(len(result.photos)))


def on_cfg_denoiser(ctx: Any, params: Any) -> None:
    """Every sampling step (modules/sd_samplers_cfg_denoiser.py): hand the step's conds to the row router."""
    runtime = _runtime(ctx, create=False)
    if runtime is None or runtime.job is None:
        return
    p = getattr(getattr(params, "denoiser", None), "p", None)
    if p is not None and not runtime.owns(p):
        runtime.end()  # another generation samples: ours ended without postprocess
        return
    if runtime.job.off is not None:
        return
    from modules import shared

    sd_model = shared.sd_model
    if not runtime.attached_to(_unet(sd_model)):  # the model changed under us (refiner, hires checkpoint)
        owner = p if p is not None else runtime.owner()
        _hook(ctx, runtime, owner, get_state(owner) if owner is not None else None, sd_model)
        if runtime.attachment is None:
            return
    runtime.router.begin_step(params.text_cond, params.text_uncond)


def on_model_loaded(ctx: Any, sd_model: Any) -> None:
    """A checkpoint was (re)loaded: no hook may survive on it; a running generation re-hooks at its next step."""
    runtime = _runtime(ctx, create=False)
    if runtime is not None:
        runtime.detach()


def finish(ctx: Any, p: Any) -> None:
    """The generation of `p` is done: hook off, model parked (Settings → FaceChain decides whether on the GPU)."""
    runtime = _runtime(ctx, create=False)
    if runtime is None or (runtime.job is not None and not runtime.owns(p)):
        return
    attachment = runtime.attachment
    if attachment is not None and attachment.calls and not attachment.block_calls:
        _say(p, get_state(p), BYPASSED)
    runtime.end()
    _park(runtime)


def unload(ctx: Any) -> None:
    """Scripts are unloaded (Reload UI, shutdown): hook off, model dropped."""
    runtime = _runtime(ctx, create=False)
    if runtime is not None:
        runtime.end()
        runtime.forget_model()


def _park(runtime: FactRuntime) -> None:
    from modules import devices, shared

    from .settings import option_value

    if runtime.model is None or bool(option_value(shared.opts, KEEP_ON_GPU_KEY)):
        return
    runtime.park(devices.cpu)
    devices.torch_gc()
