"""One portrait generation, host-independent: resolve identity/LoRA/style, fuse and score each image, rank the results.

The host glue (the Script, our routes) calls these in the host's hook order; tests call them directly. Heavy
modules (fusion, ranking, face models) are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from .errors import FaceChainError
from .fact_runtime import resolve_conditioning
from .generation_state import GenerationState, ImageRecord
from .names import HOST_LORA, HOST_LORA_RULE, check_name
from .prompts import DEFAULT_LORA_WEIGHT, plan_prompts
from .schemas import FaceChainArgs
from .styles import Style, style_lora_path

if TYPE_CHECKING:
    from PIL import Image

    from .context import FaceChainContext
    from .fusion.restore import Restorer
    from .ranking import ImageScore, RankingOptions


def newest_lora(loras: list[dict]) -> Optional[dict]:
    """The identity's most recently created LoRA record (None when it has none)."""
    return max(loras, key=lambda record: str(record.get("created", ""))) if loras else None


def lora_prompt_name(record: dict) -> str:
    return str(record.get("name") or Path(str(record["path"])).stem)


def _choose_lora(args: FaceChainArgs, identity: Any) -> tuple[Optional[str], float]:
    records = list(getattr(identity, "loras", []) or [])
    if args.lora:
        check_name(args.lora, "LoRA name", pattern=HOST_LORA, rule=HOST_LORA_RULE)
        match = next((r for r in records if lora_prompt_name(r).lower() == args.lora.lower()), None)
        preferred = preferred_weight(match) if match else DEFAULT_LORA_WEIGHT
        return args.lora, args.lora_weight if args.lora_weight is not None else preferred
    record = newest_lora(records)
    if record is None:
        return None, 0.0
    preferred = preferred_weight(record)
    return lora_prompt_name(record), args.lora_weight if args.lora_weight is not None else preferred


def preferred_weight(record: dict) -> float:
    """The LoRA's preferred weight as the host's Lora card shows it: `preferred weight` in the `<name>.json` sidecar
    (users edit it there; GET /loras reports it too), else the weight recorded at training. 0 means unset (host rule)."""
    try:
        sidecar = json.loads(Path(str(record["path"])).with_suffix(".json").read_text(encoding="utf-8"))
        value = float(sidecar.get("preferred weight") or 0.0)
    except (KeyError, OSError, ValueError, TypeError, AttributeError):
        value = 0.0
    return value if value > 0 else float(record.get("weight") or DEFAULT_LORA_WEIGHT)


def _missing_lora_file(identity: Any, lora_name: Optional[str]) -> Optional[str]:
    """The recorded file of the chosen LoRA when it no longer exists (None when present or not one of ours)."""
    for record in getattr(identity, "loras", []) or []:
        if lora_name and lora_prompt_name(record).lower() == lora_name.lower() and record.get("path"):
            return None if Path(str(record["path"])).is_file() else str(record["path"])
    return None


def _style_lora_available(ctx: FaceChainContext, style: Optional[Style]) -> bool:
    path = style_lora_path(style, ctx.settings.lora_dir) if style is not None else None
    return path is not None and path.is_file()


def fact_problem(ctx: FaceChainContext) -> Optional[str]:
    """Why FACT cannot stand in (its first missing file, where it belongs and how to get it); None when its files are
    in place (a directory look-up; nothing is loaded)."""
    from .fact.files import find_fact_files

    try:
        find_fact_files(ctx.settings.models_dir)
    except FaceChainError as err:
        return err.message
    return None


def _lora_comments(state: GenerationState, name: str, missing_file: Optional[str], use_fact: bool,
                   no_fact: Optional[str]) -> None:
    fallback = "generating with its trigger and phrase only."
    if no_fact is not None:  # "auto" wanted FACT in place of the LoRA: say which file is missing and how to get it
        fallback = (f"FACT (train-free) cannot stand in: {no_fact} Until then, FaceChain generates with its trigger "
                    "and phrase only.")
    if missing_file is not None:
        state.comment(f"FaceChain: the LoRA file {missing_file} of identity {name!r} is missing; "
                      + ("using FACT for the likeness." if use_fact else fallback))
    elif state.lora_name is None and use_fact:
        state.comment(f"FaceChain: identity {name!r} has no trained LoRA yet; using FACT (train-free) for the likeness.")
    elif state.lora_name is None:
        state.comment(f"FaceChain: identity {name!r} has no trained LoRA yet; "
                      + (fallback if no_fact else "using its trigger and phrase only."))


def resolve_generation(ctx: FaceChainContext, args: FaceChainArgs, family: str = "unknown") -> GenerationState:
    """Resolve everything a generation needs up front; FaceChainError (404 identity/style) before any image is made.

    `family`: the checkpoint's `diffusion.family.model_family` ("unknown" when not known); FaceChain's identity
    LoRAs are SD1 LoRAs, so on an SD2/SDXL checkpoint the generation gets a comment that the LoRA cannot apply.
    """
    if not args.enabled or not args.identity:
        raise FaceChainError("invalid_request", "FaceChain is not enabled or no identity was chosen.")
    identity = ctx.identities.get(args.identity)
    style = ctx.styles.get(args.style) if args.style else None
    lora_name, weight = _choose_lora(args, identity)
    missing_file = _missing_lora_file(identity, lora_name)
    if missing_file is not None:
        lora_name = None  # a <lora:...> the host cannot find would only produce a console warning
    # "auto" without a usable LoRA: FACT stands in when its files are there (else the comment says what is missing)
    no_fact = fact_problem(ctx) if args.conditioning == "auto" and lora_name is None else None
    use_lora, use_fact = resolve_conditioning(
        args.conditioning, has_lora=lora_name is not None, fact_installed=no_fact is None,
    )
    if not use_lora:
        lora_name = None
    available = _style_lora_available(ctx, style)
    plan = plan_prompts(
        activation=str(identity.activation_text), lora_name=lora_name, lora_weight=weight, style=style,
        style_lora_available=available,
    )
    state = GenerationState(args=args, plan=plan, lora_name=lora_name, style_id=style.id if style else None,
                            wants_fact=use_fact)
    best = getattr(identity, "best_photo_path", None)
    state.reference_photo = str(best) if best else None
    if args.conditioning != "fact":
        _lora_comments(state, identity.name, missing_file, use_fact, no_fact)
    if lora_name is not None and family in ("sd2", "sdxl"):
        state.comment(f"FaceChain: the LoRA of identity {identity.name!r} is an SD1 LoRA and the loaded checkpoint is "
                      f"{family.upper()}: the host cannot apply it; load an SD1.5 checkpoint for the likeness.")
    if style is not None and style.style_lora is not None and not available:
        state.comment(
            f"FaceChain: the LoRA of style {style.id!r} ({style.style_lora.local_file}) is not in the Lora folder; "
            "the style is applied without it."
        )
    return state


class GenerationRuntime:
    """Loaded things one generation reuses for every image (face analyzer, reference photo, embedding, fusion backend,
    face restorer).

    Kept next to the generation state on `p`, created on the first image, dropped with `p`. `find_restorer` is the host
    glue's lookup of the host's face restoration (raises FaceChainError saying why there is none); None outside the webui.
    """

    def __init__(
        self, ctx: FaceChainContext, state: GenerationState, *, find_restorer: Optional[Callable[[], Restorer]] = None
    ) -> None:
        self.ctx = ctx
        self.state = state
        self.analyzer = ctx.analyzer()
        self._reference: Optional[tuple[Image.Image, Any]] = None
        self._embedding: Any = None
        self._fusion_backend: Any = None
        self._find_restorer = find_restorer
        self._restorer: Optional[Restorer] = None
        self._restorer_looked_up = False

    def reference(self) -> tuple[Image.Image, Any]:
        """The identity's best photo and its face, loaded once."""
        if self._reference is None:
            from .fusion import reference_face_of
            from .imaging import load_image

            if not self.state.reference_photo:
                raise FaceChainError("model_missing", f"Identity {self.state.args.identity!r} has no best photo to fuse from.")
            image = load_image(self.state.reference_photo, name=Path(self.state.reference_photo).name)
            self._reference = (image, reference_face_of(image, self.analyzer, name=Path(self.state.reference_photo).name))
        return self._reference

    def embedding(self) -> Any:
        if self._embedding is None:
            self._embedding = self.ctx.identities.reference_embedding(str(self.state.args.identity), self.analyzer)
        return self._embedding

    def fusion_backend(self) -> Any:
        if self._fusion_backend is None:
            from .fusion import create_fusion_backend

            self._fusion_backend = create_fusion_backend(self.ctx.settings, self.analyzer, self.state.args.fusion.backend)
        return self._fusion_backend

    def restorer(self) -> Optional[Restorer]:
        """The host's face restorer, looked up once per generation; None, with a comment saying why, when there is none."""
        if not self._restorer_looked_up:
            self._restorer_looked_up = True
            reason = "no face restorer is available outside the webui" if self._find_restorer is None else None
            if self._find_restorer is not None:
                try:
                    self._restorer = self._find_restorer()
                except FaceChainError as err:
                    reason = err.message
            if reason:
                self.state.comment(f"FaceChain: face restoration after fusion is unavailable ({reason}); images are "
                                   "fused without it.")
        return self._restorer


def ranking_options(args: FaceChainArgs) -> RankingOptions:
    from .ranking import RankingOptions

    return RankingOptions(top_k=args.ranking.top_k, min_score=args.ranking.min_score, drop_no_face=args.ranking.drop_no_face)


def process_image(runtime: GenerationRuntime, image: Image.Image, record: ImageRecord) -> Image.Image:
    """Fuse (when enabled) and score one generated image; fills `record`, returns the image to keep.

    One detection serves both steps: fusion keeps the face where it was, so the fused face is re-embedded at the
    same landmarks (one embedding per image, none for the unfused face). Detection looks only for faces at least
    as large as the ranking's face-size floor. An image without a face is returned unchanged with score None and a
    comment. `benchmarks/postprocess.py` times exactly this function with the default arguments.
    """
    from .ranking import detect_for_ranking, score_images

    args = runtime.state.args
    options = ranking_options(args)
    # Only faces the ranking could keep are looked for (dlib: no 4× upsampled detector pass for a 512 px image).
    faces = detect_for_ranking(runtime.analyzer, image, options, embed=False)
    record.face_count = len(faces)
    result_image = image
    if not faces:
        record.fusion_note = record.score_note = "no_face"
        runtime.state.comment(
            "FaceChain: some images have no detectable face; they are left as generated (not fused, similarity none)."
        )
        return image
    if args.fusion.enabled:
        result_image = _fuse(runtime, image, faces[0], record)
    fresh = [dataclasses.replace(face, embedding=None) for face in faces]
    score = score_images([result_image], runtime.embedding(), runtime.analyzer, options, faces=[fresh])[0]
    record.score = score.score
    record.score_note = score.reason
    return result_image


def _fuse(runtime: GenerationRuntime, image: Image.Image, face: Any, record: ImageRecord) -> Image.Image:
    from .fusion import fuse_face
    from .fusion.restore import restore_wanted

    fusion = runtime.state.args.fusion
    reference, reference_face = runtime.reference()
    backend = runtime.fusion_backend()
    wanted = restore_wanted(fusion.restore_face, backend.name) and fusion.restore_visibility > 0
    result = fuse_face(
        image, reference, runtime.analyzer, strength=fusion.strength, target_face=face, reference_face=reference_face,
        backend=backend, restore=runtime.restorer() if wanted else None, restore_visibility=fusion.restore_visibility,
    )
    record.fused = bool(result.applied)
    record.restored = bool(result.applied and result.restored)
    record.fusion_note = None if result.applied else result.reason
    if result.restore_error:
        runtime.state.comment(f"FaceChain: the face restorer failed on some images ({result.restore_error}); they are "
                              "fused without restoration.")
    return result.image if result.applied else image


def record_scores(records: list[ImageRecord]) -> list[ImageScore]:
    from .ranking import ImageScore

    return [ImageScore(index=i, score=r.score, face_count=r.face_count or 0, reason=r.score_note) for i, r in enumerate(records)]


def rank_records(state: GenerationState) -> list[int]:
    """Positions (generation order) of the images to return, best first, and a comment on what was left out."""
    from .ranking import rank

    scores = record_scores(state.records)
    order = rank(scores, ranking_options(state.args))
    left_out: dict[str, int] = {}
    for score in scores:
        if score.index not in order:
            reason = score.reason or "top_k"
            left_out[reason] = left_out.get(reason, 0) + 1
    if left_out:
        detail = ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in sorted(left_out.items()))
        state.comment(f"FaceChain ranking kept {len(order)} of {len(scores)} images (left out: {detail}).")
    return order
