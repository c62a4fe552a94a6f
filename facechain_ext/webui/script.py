"""The FaceChain accordion under txt2img/img2img: an AlwaysVisible Script (HOST_CONTRACT.md §3).

Hook use, in the host's order: `process` starts a fresh generation state on `p` (replacing anything a copied or
failed earlier `p` carried), `before_process_batch` adds LoRA/trigger/style to the batch's prompts,
`postprocess_image` fuses and scores each image, `postprocess` ranks the whole generation. The state lives on `p`
(`generation_state.get_state`), never on this object: the host keeps one Script instance per tab for the whole
session and the API shares it.

Arguments: `ui()` returns the controls in ARG_NAMES order; every hook accepts either those positional values or ONE
dict (the robust `alwayson_scripts` form: `"facechain": {"args": [{"identity": "alice", "style": "wedding"}]}`).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, ClassVar, Optional

from modules import scripts

from ..context import FaceChainContext
from ..diffusion.family import model_family
from ..errors import FaceChainError
from ..generation_state import GenerationState, attach_state, detach_state, get_state
from ..infotext import (
    KEY_CONDITIONING,
    KEY_FACT_PHOTOS,
    KEY_FACT_SCALE,
    KEY_FUSION,
    KEY_LORA,
    KEY_SIMILARITY,
    args_to_infotext,
    conditioning_infotext,
    fusion_text,
    similarity_text,
    used_conditioning,
)
from ..portraits import GenerationRuntime, process_image, rank_records, resolve_generation
from ..prompts import build_negative, build_prompt
from ..schemas import FaceChainArgs, args_from_script_args
from . import fact_hook
from .face_restore import host_face_restorer
from .script_ui import args_with_ids, build_script_ui

log = logging.getLogger("facechain")
RUNTIME_ATTR = "_facechain_runtime"


class FaceChainScript(scripts.Script):
    # The context register() built, set on a per-registration subclass (`script_class_for`), so a "Reload UI" gets a
    # fresh class instead of mutating shared state. A fallback context is built from the host settings if a host ever
    # instantiates the base class without register() (then models load once per tab).
    bound_context: ClassVar[Optional[FaceChainContext]] = None

    def __init__(self, ctx: Optional[FaceChainContext] = None) -> None:
        self._own_context = ctx  # given by our own routes / Generate view; the host passes nothing
        self._fallback_context: Optional[FaceChainContext] = None

    def context(self) -> FaceChainContext:
        if self._own_context is not None:
            return self._own_context
        if type(self).bound_context is not None:
            return type(self).bound_context
        if self._fallback_context is None:
            from .host import read_settings

            self._fallback_context = FaceChainContext(read_settings())
        return self._fallback_context

    def title(self) -> str:
        return "FaceChain"

    def show(self, is_img2img: bool) -> Any:
        return scripts.AlwaysVisible

    def ui(self, is_img2img: bool) -> list[Any]:
        controls, self.infotext_fields, self.paste_field_names = build_script_ui(self, self.context())
        return controls

    # ---- hooks ------------------------------------------------------------------------------------------------
    def process(self, p: Any, *script_args: Any) -> None:
        detach_state(p)  # a copied `p` (X/Y/Z plot) or an earlier failed run must not leak its state into this one
        if hasattr(p, RUNTIME_ATTR):
            delattr(p, RUNTIME_ATTR)
        fact_hook.reset(self.context())  # a FACT hook left by a generation that raised or was interrupted
        try:
            args = args_with_ids(self.context(), args_from_script_args(script_args))  # the accordion shows names
            if not args.enabled:
                return
            state = resolve_generation(self.context(), args, model_family(getattr(p, "sd_model", None)))
        except FaceChainError as err:
            _comment(p, f"FaceChain is off for this job: {err.message}")
            return
        attach_state(p, state)
        fact_hook.prepare(self.context(), p, state, self.context().identities.path(str(args.identity)))
        for text in state.comments:
            _comment(p, text)
        _add_infotext(p, state)

    def before_process_batch(self, p: Any, *script_args: Any, batch_number: int = 0, prompts: Optional[list] = None, **kwargs: Any) -> None:
        state = get_state(p)
        if state is None or batch_number in state.prompted_batches:
            return
        state.prompted_batches.add(batch_number)
        batch = prompts if prompts is not None else p.prompts
        batch[:] = [build_prompt(text, state.plan) for text in batch]  # in place: the host keeps using this list
        negatives = getattr(p, "negative_prompts", None) or []
        negatives[:] = [build_negative(text, state.plan) for text in negatives]
        _write_back(p, batch_number, batch, negatives)

    def process_before_every_sampling(self, p: Any, *script_args: Any, **kwargs: Any) -> None:
        """A1111 >= 1.10: before the first pass and before the hires pass (kwargs x, noise, c, uc): hook FACT in."""
        fact_hook.before_sampling(self.context(), p)

    def postprocess_image(self, p: Any, pp: Any, *script_args: Any) -> None:
        state = get_state(p)
        if state is None:
            return
        index = int(getattr(p, "batch_index", 0) or 0)
        record = state.add_record(_at(getattr(p, "seeds", None), index), _at(getattr(p, "subseeds", None), index))
        try:
            pp.image = process_image(self._runtime(p, state), pp.image, record)
        except FaceChainError as err:
            record.fusion_note = record.score_note = err.code
            state.comment(f"FaceChain could not post-process some images: {err.message}")
        except Exception as exc:  # noqa: BLE001 - a broken image must not lose the user's whole batch
            log.exception("FaceChain: post-processing an image failed")
            record.fusion_note = record.score_note = "internal_error"
            state.comment(f"FaceChain could not post-process some images ({type(exc).__name__}: {exc}).")
        for text in state.comments:
            _comment(p, text)

    def postprocess(self, p: Any, processed: Any, *script_args: Any) -> None:
        fact_hook.finish(self.context(), p)
        state = get_state(p)
        if state is None:
            return
        if state.args.ranking.enabled and not state.ranked:
            reorder_processed(processed, state)
        for text in state.comments:
            _comment(p, text)
            _processed_comment(processed, text)

    def _runtime(self, p: Any, state: GenerationState) -> GenerationRuntime:
        runtime = getattr(p, RUNTIME_ATTR, None)
        if not isinstance(runtime, GenerationRuntime) or runtime.state is not state:
            runtime = GenerationRuntime(self.context(), state, find_restorer=host_face_restorer)
            setattr(p, RUNTIME_ATTR, runtime)
        return runtime


def _at(values: Optional[list], index: int) -> Optional[int]:
    return values[index] if values is not None and 0 <= index < len(values) else None


def _comment(p: Any, text: str) -> None:
    if hasattr(p, "comment"):
        p.comment(text)


def _processed_comment(processed: Any, text: str) -> None:
    current = getattr(processed, "comments", "") or ""
    if text not in current:
        processed.comments = f"{current}{text}\n"


def _write_back(p: Any, batch_number: int, prompts: list, negatives: list) -> None:
    """Mirror the batch's prompts into the generation-wide lists the host reads for infotext and hires."""
    size = int(getattr(p, "batch_size", len(prompts)) or len(prompts))
    start = batch_number * size
    for name, values in (("all_prompts", prompts), ("all_negative_prompts", negatives)):
        target = getattr(p, name, None)
        if isinstance(target, list) and len(target) >= start + len(values):
            target[start : start + len(values)] = values
    state = get_state(p)
    if state is None:
        return
    # Hires fix (A1111 1.10 txt2img): the second pass reads p.all_hr_prompts / all_hr_negative_prompts, which
    # setup_prompts made as separate lists, and the "Hires (negative) prompt" infotext callables print them
    # whenever they differ from the first-pass prompt: both must get the same FaceChain additions.
    for name, build in (("all_hr_prompts", build_prompt), ("all_hr_negative_prompts", build_negative)):
        hr = getattr(p, name, None)
        first_pass = getattr(p, name.replace("_hr", ""), None)
        if isinstance(hr, list) and hr is not first_pass and len(hr) >= start + len(prompts):
            hr[start : start + len(prompts)] = [build(text, state.plan) for text in hr[start : start + len(prompts)]]


def _record_lookup(state: GenerationState) -> Callable[..., Any]:
    def lookup(index: int = 0, all_seeds: Optional[list] = None, all_subseeds: Optional[list] = None, **_: Any) -> Any:
        seed = _at(all_seeds, index)
        return state.find_record(seed, _at(all_subseeds, index)) if seed is not None else None

    return lookup


def _add_infotext(p: Any, state: GenerationState) -> None:
    """Generation-wide fields as values, per-image fields as callables the host evaluates for each image (A1111 >= 1.8)."""
    params = p.extra_generation_params
    params.update(args_to_infotext(state.args))
    if state.lora_name and not state.args.lora:
        params[KEY_LORA] = state.lora_name
    lookup = _record_lookup(state)
    fusion = state.args.fusion
    params[KEY_FUSION] = lambda **kw: fusion_text(fusion, lookup(**kw))
    params[KEY_SIMILARITY] = lambda **kw: similarity_text(lookup(**kw))
    for key in (KEY_CONDITIONING, KEY_FACT_SCALE, KEY_FACT_PHOTOS):
        params[key] = _conditioning_field(state, key)


def _conditioning_field(state: GenerationState, key: str) -> Callable[..., Optional[str]]:
    """An infotext value evaluated per image: what the generation actually used (FACT may stop during sampling)."""
    return lambda **_: conditioning_infotext(state.args, used_conditioning(state)).get(key)


def reorder_processed(processed: Any, state: GenerationState) -> None:
    """Apply the ranking to a Processed: images, infotexts, seeds, subseeds, prompts and negatives stay aligned.

    The host puts a grid of the whole batch at index 0 (modules/processing.py, `opts.return_grid`, batch > 1) with
    the job's infotext, and sets `index_of_first_image = 1`; the grid is rebuilt in the ranked order (dropped when
    fewer than two images are left and `opts.grid_only_if_multiple`, as the host would not have made one).
    """
    first = int(getattr(processed, "index_of_first_image", 0) or 0)
    generated = processed.images[first:]
    if len(generated) != len(state.records):
        state.comment(f"FaceChain ranking skipped: {len(generated)} images returned but {len(state.records)} were scored.")
        return
    order = rank_records(state)
    state.ranked = True
    state.order = order
    ranked = [generated[i] for i in order]
    head = _ranked_grid(processed, ranked) if first else []
    texts_aligned = len(processed.infotexts) == len(generated) + first
    grid_texts = processed.infotexts[:first] if head and texts_aligned else []
    processed.images[:] = head + ranked
    processed.index_of_first_image = len(head)
    if texts_aligned:
        processed.infotexts[:] = grid_texts + [processed.infotexts[first + i] for i in order]
    for name in ("all_seeds", "all_subseeds", "all_prompts", "all_negative_prompts"):
        values = getattr(processed, name, None)
        if isinstance(values, list) and len(values) == len(generated):
            values[:] = [values[i] for i in order]
    if processed.infotexts:
        processed.info = processed.infotexts[0]
    if getattr(processed, "all_seeds", None):
        processed.seed = processed.all_seeds[0]
    if getattr(processed, "all_subseeds", None):
        processed.subseed = processed.all_subseeds[0]


def _ranked_grid(processed: Any, ranked: list) -> list:
    """[a grid of `ranked` as modules/images.py image_grid lays it out], or [] where the host would make none."""
    from modules import images, shared

    if not ranked or (len(ranked) < 2 and getattr(shared.opts, "grid_only_if_multiple", True)):
        return []
    old = processed.images[0]
    grid = images.image_grid(ranked, int(getattr(processed, "batch_size", 1) or 1))
    grid.info.update(getattr(old, "info", {}) or {})  # the job's infotext, as the host wrote it on its grid
    return [grid]


__all__ = ["FaceChainScript", "RUNTIME_ATTR", "reorder_processed", "FaceChainArgs"]


def script_class_for(ctx: FaceChainContext) -> type[FaceChainScript]:
    """The Script class the host should instantiate for one registration: shares `ctx` (models load once)."""
    return type("FaceChainScript", (FaceChainScript,), {"bound_context": ctx, "__module__": __name__})
