"""Template jobs through the host: one img2img inpainting pass per chosen face, under the host's queue and progress.

Each pass is a `modules.processing.StableDiffusionProcessingImg2Img` on the host's checkpoint and sampler (HOST_CONTRACT
§4) with the face's mask, "Inpaint area: Only masked" (`inpaint_full_res=True`, padding from the face size), masked
content "original" (`inpainting_fill=1`, FaceChain inpainted from the template's own pixels), no host mask blur (our
mask is feathered already) and the identity's LoRA tag, trigger and phrase in the prompt. Two people are two passes,
the second on the first's result; `templates.compose` keeps every pixel outside the masks bit-identical. After the
passes of a candidate come fusion and scoring (`templates.run.finish_candidate`), and at the end the ranking.

The whole job runs inside one host task (queue lock, `shared.state`, task registry: `host_task.host_task`), so
the host's progress bar and Interrupt apply; an interrupted job returns the candidates that were finished.

FACT: a pass whose identity uses FACT (conditioning "fact"/"lora+fact", or "auto" for an identity without a LoRA when
FACT's files are present: the accordion's resolution, `templates.run.resolve_identity`) also gets the accordion script
with the identity and FACT fields (`template_fact.add_fact_script`), so `fact_hook` puts the adapter on the UNet for
that pass only and takes it off after it; its LoRA, if used, is already in our prompt. FACT's scale defaults to 0.55,
FaceChain's value for inpainting. Whether FACT can run at all (files, SD1 checkpoint) is checked before
queueing (`template_fact.fact_unavailable_reason`; "fact"/"lora+fact" → 503 `fact_unavailable`).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
from PIL import Image

from ..context import FaceChainContext
from ..prompts import build_negative, build_prompt
from ..templates.compose import compose_pass
from ..templates.guidance import GuidanceRequest
from ..templates.request import TemplateArgs
from ..templates.run import Candidate, TemplateRun, finish_candidate, infotext_fields, prepare_run, rank_candidates
from .controlnet import GuidanceUnits, attach_units, find_guidance

# FaceChain's template prompts (modelscope/facechain v3.0.0 app.py), face-relevant words only, without the hard-coded
# ethnicity and without `(word:2)` weights its diffusers pipeline passed as literal text (FACECHAIN_FACTS §3).
DEFAULT_PROMPT = "raw photo, high detail face, photorealistic, best quality"
DEFAULT_NEGATIVE = "nsfw, paintings, sketches, worst quality, low quality, lowres, monochrome, grayscale, logo, word"


@dataclass
class PassFields:
    """The host img2img fields every face pass shares (names as in /sdapi/v1/img2img)."""

    prompt: str = ""
    negative_prompt: str = ""
    sampler_name: Optional[str] = None
    scheduler: Optional[str] = None
    steps: int = 30
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    override_settings: dict[str, Any] = field(default_factory=dict)
    override_settings_restore_afterwards: bool = True


@dataclass
class TemplateOutcome:
    run: TemplateRun
    order: list[int]  # candidate positions, best first
    guidance: GuidanceUnits
    saved: list[str] = field(default_factory=list)

    @property
    def ranked(self) -> list[Candidate]:
        by_position = {c.position: c for c in self.run.candidates}
        return [by_position[i] for i in self.order]

    def info(self) -> str:
        ranked = self.ranked
        return json.dumps({"infotexts": [c.infotext for c in ranked], "seeds": [c.seed for c in ranked],
                           "guidance": self.guidance.label, "comments": self.run.comments,
                           "interrupted": self.run.interrupted})


def prepare_template(ctx: FaceChainContext, template: Image.Image, args: TemplateArgs, *, name: str = "template") -> TemplateRun:
    """All checks and resolution before queueing (4xx errors never wait behind the host queue)."""
    from modules import processing, shared

    from ..diffusion.family import model_family
    from ..prep.parsing import head_masker_for
    from .face_restore import host_face_restorer
    from .template_fact import fact_unavailable_reason

    return prepare_run(ctx, template, args, name=name, fact_unavailable=fact_unavailable_reason(ctx, shared.sd_model),
                       parser=head_masker_for(ctx.settings), family=model_family(shared.sd_model),
                       find_restorer=host_face_restorer, fixed_seed=processing.get_fixed_seed)


def run_template(ctx: FaceChainContext, run: TemplateRun, fields: PassFields, *, task_id: Optional[str] = None,
                 take_lock: bool = True, save: bool = False) -> TemplateOutcome:
    from .host_task import host_task

    with host_task("facechain_template", task_id, take_lock=take_lock):
        return execute(ctx, run, fields, save=save)


def execute(ctx: FaceChainContext, run: TemplateRun, fields: PassFields, *, save: bool = False) -> TemplateOutcome:
    """Candidates one after another, each face pass on the previous pass's result (caller holds the host task)."""
    from modules import shared

    from ..diffusion.family import model_family

    guidance = find_guidance(GuidanceRequest(run.args.guidance.pose, run.args.guidance.canny), run.template,
                             run.union_mask(), sdxl=model_family(shared.sd_model) == "sdxl")
    run.guidance = guidance.label
    run.comment(guidance.note)
    shared.state.job_count = len(run.seeds) * len(run.passes)
    for position, seed in enumerate(run.seeds):
        candidate = _make_candidate(ctx, run, fields, guidance, position, seed)
        if candidate is not None:
            run.candidates.append(candidate)
        elif shared.state.interrupted or shared.state.stopping_generation:
            run.interrupted = True
            run.comment(f"FaceChain: interrupted; {len(run.candidates)} of {len(run.seeds)} candidates were finished.")
            break
        else:  # Skip: drop this candidate, go on with the next (the host resets `skipped` per batch the same way)
            shared.state.skipped = False
            run.comment("FaceChain: skipped candidates are left out.")
    outcome = TemplateOutcome(run, rank_candidates(run.candidates), guidance)
    if save:
        outcome.saved = [_save(c) for c in outcome.ranked]
    return outcome


def _make_candidate(ctx: FaceChainContext, run: TemplateRun, fields: PassFields, guidance: GuidanceUnits,
                    position: int, seed: int) -> Optional[Candidate]:
    from modules import shared

    image = np.asarray(run.template.convert("RGB")).copy()
    first = None
    for face_pass in run.passes:
        if _stopped():
            return None
        shared.state.job = f"FaceChain template {position + 1}/{len(run.seeds)}: face {face_pass.index + 1}"
        p = make_pass(ctx, run, face_pass, Image.fromarray(image), seed, fields, guidance)
        processed = _process(ctx, p)
        for line in (getattr(processed, "comments", "") or "").splitlines():
            run.comment(line)
        first_index = int(getattr(processed, "index_of_first_image", 0) or 0)
        if _stopped() or len(processed.images) <= first_index:  # stopped inside the pass: the face is unfinished
            return None
        _check_fact(run, face_pass, p)
        image = compose_pass(image, processed.images[first_index], run.masks[face_pass.index], p.paste_to)
        first = first or p
    candidate = finish_candidate(run, image, seed, position)
    candidate.infotext = _infotext(first, run, candidate)
    candidate.image.info["parameters"] = candidate.infotext
    return candidate


def _check_fact(run: TemplateRun, face_pass: Any, p: Any) -> None:
    """A FACT pass whose hook did not apply (the pass's comments say why) is recorded for the infotext."""
    from .template_fact import fact_applied

    ident = run.identities[face_pass.index]
    if ident.uses_fact and ident.fact_off is None and not fact_applied(p):
        ident.fact_off = "not applied"
        run.comment(f"FaceChain: FACT did not apply to face {face_pass.index + 1} ({ident.identity}); see the comments "
                    "above for why.")


def _stopped() -> bool:
    from modules import shared

    state = shared.state
    return bool(state.interrupted or state.skipped or getattr(state, "stopping_generation", False))


def make_pass(ctx: FaceChainContext, run: TemplateRun, face_pass: Any, image: Image.Image, seed: int,
              fields: PassFields, guidance: GuidanceUnits) -> Any:
    """The host img2img inpainting object of one face pass."""
    from modules import processing, scripts, shared

    ident = run.identities[face_pass.index]
    optional = {k: v for k, v in (("sampler_name", fields.sampler_name), ("scheduler", fields.scheduler)) if v}
    p = processing.StableDiffusionProcessingImg2Img(
        sd_model=shared.sd_model, outpath_samples=_outdir(), outpath_grids=_outdir(),
        prompt=build_prompt(fields.prompt or DEFAULT_PROMPT, ident.plan),
        negative_prompt=build_negative(fields.negative_prompt or DEFAULT_NEGATIVE, ident.plan),
        seed=int(seed), batch_size=1, n_iter=1, steps=int(fields.steps), cfg_scale=float(fields.cfg_scale),
        width=int(fields.width), height=int(fields.height), init_images=[image], mask=run.masks[face_pass.index].image(),
        mask_blur_x=0, mask_blur_y=0, inpainting_fill=1, resize_mode=0, denoising_strength=float(run.args.strength),
        inpaint_full_res=True, inpaint_full_res_padding=int(face_pass.padding), inpainting_mask_invert=0,
        do_not_save_samples=True, do_not_save_grid=True, override_settings=dict(fields.override_settings or {}),
        override_settings_restore_afterwards=fields.override_settings_restore_afterwards, **optional,
    )
    runner = scripts.ScriptRunner()
    runner.scripts, runner.alwayson_scripts, runner.selectable_scripts = [], [], []
    p.scripts, p.script_args = runner, []
    if ident.uses_fact:
        from .template_fact import add_fact_script

        add_fact_script(ctx, p, ident)
    attach_units(p, guidance)
    return p


def _process(ctx: FaceChainContext, p: Any) -> Any:
    from . import fact_hook
    from .host_processing import _process_images

    try:
        with contextlib.closing(p):
            return _process_images(p)
    except BaseException:
        fact_hook.finish(ctx, p)  # a pass that raised never reached `postprocess`: its FACT hook comes off here
        raise


def _infotext(p: Any, run: TemplateRun, candidate: Candidate) -> str:
    """The host's infotext of the candidate's first pass (its prompt, sampler, seed, inpaint settings) plus
    FaceChain's template keys (faces, identities, scores, guidance)."""
    from modules import processing

    p.extra_generation_params.update(infotext_fields(run, candidate))
    return processing.create_infotext(p, p.all_prompts, p.all_seeds, p.all_subseeds, index=0)


def _outdir() -> str:
    from modules import shared

    return getattr(shared.opts, "outdir_samples", "") or getattr(shared.opts, "outdir_img2img_samples", "")


def _save(candidate: Candidate) -> str:
    """Saved like a host img2img output: numbered file in the img2img folder, infotext in the PNG."""
    from modules import images, shared

    path, _ = images.save_image(candidate.image, _outdir(), "", candidate.seed, None,
                                getattr(shared.opts, "samples_format", "png"), info=candidate.infotext)
    return str(path)
