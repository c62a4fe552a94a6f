"""One template job, host-independent: its per-job state, the checks before queueing, and the work after each candidate.

    run = prepare_run(ctx, template, args)              # all 4xx errors happen here, before the host queue
    for seed in run.seeds:                              # the host glue runs one inpainting pass per face
        image = ...compose_pass(...) for each run.passes
        run.candidates.append(finish_candidate(run, image, seed))   # fusion + similarity per replaced face
    order = rank_candidates(run.candidates)             # best mean similarity of the replaced faces first

`TemplateRun` is the job object: everything the job resolved and learned lives on it (never on a Script or module).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np
from PIL import Image

from ..errors import FaceChainError
from ..prompts import format_number
from .compose import restrict
from .faces import TemplateFace, find_template_faces, match_face
from .masks import FaceRegionMask, build_face_mask, separate
from .plan import FacePass, candidate_seeds, plan_passes
from .request import FACT_CONDITIONINGS, TemplateArgs

if TYPE_CHECKING:
    from ..context import FaceChainContext
    from ..prompts import PromptPlan

FACT_INPAINT_SCALE = 0.55  # FaceChain-FACT's adapter scale for inpainting (facechain/inference_inpaint_fact.py)


@dataclass
class IdentityPass:
    """What one face pass conditions on: the identity's prompt plan (LoRA tag, trigger, phrase) and/or FACT."""

    identity: str
    conditioning: str  # as requested: auto | lora | fact | lora+fact
    plan: PromptPlan  # its face_lora is set only when the LoRA is used
    lora_name: Optional[str]
    fact_scale: float
    uses_fact: bool  # the pass asks for FACT (resolved like the accordion: fact_runtime.resolve_conditioning)
    runtime: Any  # portraits.GenerationRuntime: the identity's best photo, reference embedding, fusion backend
    fact_photo_count: int = 1
    fact_photos: tuple[str, ...] = ()
    fact_off: Optional[str] = None  # why FACT did not apply in a pass (the host glue's hook said so), else None

    @property
    def uses_lora(self) -> bool:
        return self.lora_name is not None

    @property
    def fact_used(self) -> bool:
        """FACT was asked for and its hook applied in every pass so far."""
        return self.uses_fact and self.fact_off is None


@dataclass
class FaceOutcome:
    index: int
    identity: str
    score: Optional[float] = None  # after fusion; None when the face was not found again
    score_before_fusion: Optional[float] = None
    fused: bool = False
    restored: bool = False  # the host's face restoration ran on the fused face
    note: Optional[str] = None  # why there is no score / no fusion

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "identity": self.identity, "fused": self.fused, "restored": self.restored,
                "note": self.note,
                "score": _round(self.score), "score_before_fusion": _round(self.score_before_fusion)}


@dataclass
class Candidate:
    position: int  # generation order
    seed: int
    image: Image.Image
    faces: list[FaceOutcome]
    infotext: str = ""

    @property
    def mean_score(self) -> Optional[float]:
        """Mean similarity of the replaced faces; None when any of them was not found (such candidates rank last)."""
        scores = [f.score for f in self.faces]
        return None if not scores or any(s is None for s in scores) else float(np.mean(scores))


@dataclass
class TemplateRun:
    """Per-job state of one template job."""

    args: TemplateArgs
    template: Image.Image
    faces: list[TemplateFace]
    passes: list[FacePass]
    masks: dict[int, FaceRegionMask]  # by template face index
    identities: dict[int, IdentityPass]  # by template face index
    seeds: list[int]
    comments: list[str] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    guidance: str = "none"  # what guidance the passes got, for infotext ("openpose+canny", "none", ...)
    interrupted: bool = False

    def comment(self, text: str) -> None:
        if text and text not in self.comments:
            self.comments.append(text)

    def union_mask(self) -> np.ndarray:
        from .masks import union

        return union([self.masks[p.index] for p in self.passes])


def prepare_run(ctx: FaceChainContext, template: Image.Image, args: TemplateArgs, *, name: str = "template",
                fact_unavailable: Optional[str] = None, parser: Any = None, family: str = "unknown",
                find_restorer: Optional[Callable[[], Any]] = None,
                fixed_seed: Callable[[int], int] = lambda s: s if s != -1 else random.randrange(4294967294)) -> TemplateRun:
    """Everything checked and resolved before the job is queued: template size and faces, the face choices,
    identities (404 identity_not_found), FACT availability (`fact_unavailable` is the host glue's reason, or None),
    the masks and the seeds. `parser` is the optional face-parsing model (see masks.build_face_mask); `family` the
    checkpoint's `diffusion.family.model_family` (SD1 LoRAs on an SD2/SDXL checkpoint get a comment);
    `find_restorer` the host glue's face-restorer lookup (restoration after fusion, as in the accordion)."""
    faces, rotation = find_template_faces(template, ctx.analyzer(), name)
    passes = plan_passes(args, faces)
    identities = {p.index: resolve_identity(ctx, p, args, fact_unavailable, family, find_restorer) for p in passes}
    masks = separate([build_face_mask(template.size, p.face, parser=parser, template=template) for p in passes],
                     [p.face for p in passes])
    run = TemplateRun(args=args, template=template, faces=faces, passes=passes, masks={m.index: m for m in masks},
                      identities=identities, seeds=candidate_seeds(fixed_seed(int(args.seed)), args.n))
    for ident in identities.values():
        for text in ident.runtime.state.comments:
            run.comment(text)
    if rotation:
        run.comment(f"FaceChain: the template's faces are turned by {rotation} degrees (a sideways photo); they are "
                    "repainted as they lie. Turn the photo upright for better faces.")
    return run


def resolve_identity(ctx: FaceChainContext, face_pass: FacePass, args: TemplateArgs, fact_unavailable: Optional[str],
                     family: str = "unknown", find_restorer: Optional[Callable[[], Any]] = None) -> IdentityPass:
    """The identity's LoRA/trigger/phrase and LoRA-vs-FACT choice through the accordion's own resolution
    (`portraits.resolve_generation` → `fact_runtime.resolve_conditioning`): "auto" = the LoRA when the identity has
    one, else FACT when its files are present, else trigger and phrase (with a comment).

    `fact_unavailable`: the host glue's reason FACT cannot run (files missing, not an SD1 checkpoint, Forge), or
    None. "fact"/"lora+fact" are then refused (503 `fact_unavailable`); "auto" goes on without FACT, saying why.
    FACT's scale defaults to FACT_INPAINT_SCALE (FaceChain's value for inpainting), not the accordion's 0.5.
    """
    from ..portraits import GenerationRuntime, resolve_generation
    from ..schemas import FaceChainArgs

    choice = face_pass.choice
    where = f"faces[{face_pass.order}]"
    if choice.conditioning in FACT_CONDITIONINGS and fact_unavailable:
        raise FaceChainError(
            "fact_unavailable",
            f"{where}.conditioning: {choice.conditioning!r} needs the FACT adapter, which cannot run: "
            f"{fact_unavailable} Or use conditioning \"lora\".",
            field=f"{where}.conditioning", reason=fact_unavailable,
        )
    scale = FACT_INPAINT_SCALE if choice.fact_scale is None else float(choice.fact_scale)
    state = resolve_generation(ctx, FaceChainArgs(
        identity=choice.identity, lora_weight=choice.lora_weight, fusion=args.fusion, conditioning=choice.conditioning,
        fact_scale=scale, fact_photo_count=choice.fact_photo_count, fact_photos=choice.fact_photos), family)
    plan, lora = state.plan, state.lora_name
    if lora is None:
        plan = dataclasses.replace(plan, face_lora=None)
    uses_fact = state.wants_fact
    if uses_fact and fact_unavailable:  # only "auto" gets here: FACT would stand in for a missing LoRA
        uses_fact = False
        state.comment(f"FaceChain: FACT cannot stand in for identity {choice.identity!r} (face {face_pass.index + 1}): "
                      f"{fact_unavailable} That face is generated with its trigger and phrase only.")
    runtime = GenerationRuntime(ctx, state, find_restorer=find_restorer)
    return IdentityPass(choice.identity, choice.conditioning, plan, lora, scale, uses_fact, runtime,
                        fact_photo_count=choice.fact_photo_count, fact_photos=tuple(choice.fact_photos or ()))


def finish_candidate(run: TemplateRun, image: np.ndarray, seed: int, position: int) -> Candidate:
    """Fuse each replaced face toward its identity's best photo (only inside that face's mask) and score it.

    One detection of the composed image serves every face: fusion repaints a face in place, so the face found at
    the template face's position keeps its landmarks, and is re-embedded after fusion at the same landmarks.
    """
    first = next(iter(run.identities.values())).runtime
    analyzer = first.analyzer
    found = analyzer.find_faces(image, embed=False).faces  # the orientation policy of every surface
    current = image
    outcomes = []
    for face_pass in run.passes:
        ident = run.identities[face_pass.index]
        outcome = FaceOutcome(face_pass.index, ident.identity)
        target = match_face(face_pass.face, found)
        if target is None:
            outcome.note = "no_face"
            run.comment("FaceChain: a replaced face could not be found again in some candidates; it has no score "
                        "(those candidates rank last).")
        else:
            current = _fuse_and_score(run, face_pass, ident, current, target, outcome)
        outcomes.append(outcome)
    return Candidate(position=position, seed=seed, image=Image.fromarray(current), faces=outcomes)


def _fuse_and_score(run: TemplateRun, face_pass: FacePass, ident: IdentityPass, image: np.ndarray, target: Any,
                    outcome: FaceOutcome) -> np.ndarray:
    from ..faces.similarity import cosine_similarity
    from ..fusion import fuse_face
    from ..fusion.restore import restore_wanted

    runtime = ident.runtime
    analyzer = runtime.analyzer
    reference_embedding = runtime.embedding()
    bare = dataclasses.replace(target, embedding=None)
    outcome.score_before_fusion = outcome.score = cosine_similarity(analyzer.embed(image, bare), reference_embedding)
    fusion = run.args.fusion
    if not fusion.enabled or fusion.strength <= 0:
        outcome.note = "fusion_off"
        return image
    reference, reference_face = runtime.reference()
    backend = runtime.fusion_backend()
    wanted = restore_wanted(fusion.restore_face, backend.name) and fusion.restore_visibility > 0
    result = fuse_face(image, reference, analyzer, strength=fusion.strength, target_face=bare,
                       reference_face=reference_face, backend=backend, restore=runtime.restorer() if wanted else None,
                       restore_visibility=fusion.restore_visibility)
    for text in runtime.state.comments:  # e.g. no face restorer in this host
        run.comment(text)
    if result.restore_error:
        run.comment(f"FaceChain: the face restorer failed on some faces ({result.restore_error}); they are fused "
                    "without restoration.")
    if not result.applied:
        outcome.note = result.reason
        return image
    fused = restrict(np.asarray(result.image.convert("RGB")), image, run.masks[face_pass.index].full())
    outcome.fused, outcome.restored = True, bool(result.restored)
    outcome.score = cosine_similarity(analyzer.embed(fused, bare), reference_embedding)
    return fused


def rank_candidates(candidates: list[Candidate]) -> list[int]:
    """Positions, best first: by mean similarity of the replaced faces (ties: generation order), then the
    candidates with an unscored face in generation order."""
    scored = sorted((c for c in candidates if c.mean_score is not None), key=lambda c: (-float(c.mean_score or 0.0), c.position))
    unscored = [c for c in candidates if c.mean_score is None]
    return [c.position for c in scored] + sorted(c.position for c in unscored)


# ---- infotext ------------------------------------------------------------------------------------------------
KEY_TEMPLATE = "FaceChain template"
KEY_TEMPLATE_FACES = "FaceChain template faces"
KEY_FACE_SCORES = "FaceChain face scores"
KEY_SIMILARITY = "FaceChain similarity"  # same key as txt2img: the mean over the replaced faces
KEY_FUSION = "FaceChain fusion"
KEY_GUIDANCE = "FaceChain guidance"


def faces_text(run: TemplateRun) -> str:
    """`1=obama lora obama_v1 0.9; 2=biden fact fact=0.55`: face number (index + 1), identity, the conditioning used
    (lora, fact, lora+fact, or "prompt" for trigger and phrase only; FACT counts when its hook applied) and its
    weights (`photos=N` or names joined by "+" when FACT used other than its one best photo)."""
    parts = []
    for face_pass in run.passes:
        ident = run.identities[face_pass.index]
        used = "+".join(name for name, on in (("lora", ident.uses_lora), ("fact", ident.fact_used)) if on) or "prompt"
        text = f"{face_pass.index + 1}={ident.identity} {used}"
        if ident.uses_lora and ident.lora_name:
            text += f" {ident.lora_name} {format_number(ident.plan.face_weight)}"
        if ident.fact_used:
            text += f" fact={format_number(ident.fact_scale)}"
            photos = "+".join(ident.fact_photos) if ident.fact_photos else str(ident.fact_photo_count)
            text += f" photos={photos}" if photos != "1" else ""
        parts.append(text)
    return "; ".join(parts)


def infotext_fields(run: TemplateRun, candidate: Candidate) -> dict[str, str]:
    """FaceChain's keys for one candidate's infotext (the host writes them after its own); `FaceChain fusion` is
    written as the accordion writes it (`infotext.fusion_text`)."""
    from ..infotext import RESTORED_NOTE, fusion_text

    fusion = run.args.fusion
    mean = candidate.mean_score
    return {
        KEY_TEMPLATE: f"{len(run.passes)} of {len(run.faces)} faces",
        KEY_TEMPLATE_FACES: faces_text(run),
        KEY_FACE_SCORES: " ".join("none" if f.score is None else format_number(f.score) for f in candidate.faces),
        KEY_SIMILARITY: "none" if mean is None else format_number(mean),
        KEY_FUSION: fusion_text(fusion) + (f" ({RESTORED_NOTE})" if any(f.restored for f in candidate.faces) else ""),
        KEY_GUIDANCE: run.guidance,
    }


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(float(value), 4)
