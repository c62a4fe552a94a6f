"""Portrait generation, the host-independent part: FaceChain's arguments, prompt assembly and per-job state.

`FaceChainArgs` is the ONE argument model shared by the txt2img/img2img accordion, `alwayson_scripts`, our own
`/facechain/v1/txt2img` route and the infotext written into every image. Prompt assembly adds the identity's LoRA,
trigger/phrase and the style without repeating anything the user already typed. `FaceChainJob` holds everything one
generation job learns (resolved LoRA, scores, comments); the host glue keeps it on the processing object `p`, never on
the Script instance, so nothing leaks between jobs or between the UI and the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from pydantic import BaseModel, Field

from .errors import FaceChainError
from .modelcompat import dump_model, json_schema, parse_model
from .prompts import (  # noqa: F401 - prompt assembly is part of this module's public API
    DEFAULT_LORA_WEIGHT,
    PromptPlan,
    build_negative,
    build_prompt,
    build_prompts,
    format_number,
    plan_prompts,
)

JOB_ATTR = "_facechain_job"  # attribute name on the host's processing object


class FusionArgs(BaseModel):
    enabled: bool = True
    strength: float = Field(default=0.7, ge=0.0, le=1.0)

    class Config:
        extra = "forbid"


class RankingArgs(BaseModel):
    enabled: bool = True
    top_k: Optional[int] = Field(default=None, ge=1, le=100)  # keep at most this many images (None: all)
    min_score: Optional[float] = Field(default=None, ge=-1.0, le=1.0)  # drop faces less similar than this
    drop_no_face: bool = False  # otherwise images without a usable face are kept, last, unscored

    class Config:
        extra = "forbid"


class FaceChainArgs(BaseModel):
    enabled: bool = True
    identity: Optional[str] = None
    lora: Optional[str] = None  # explicit LoRA prompt name; default: the identity's newest LoRA
    lora_weight: Optional[float] = Field(default=None, ge=0.0, le=2.0)  # default: the LoRA's preferred weight
    style: Optional[str] = None
    fusion: FusionArgs = FusionArgs()
    ranking: RankingArgs = RankingArgs()

    class Config:
        extra = "forbid"


def disabled_args() -> FaceChainArgs:
    return FaceChainArgs(enabled=False)


def parse_args(value: Any, *, what: str = "facechain") -> FaceChainArgs:
    """FaceChainArgs from None (disabled), a dict, a JSON string or an instance; FaceChainError names bad fields."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return disabled_args()
    args = parse_model(FaceChainArgs, value, what=what)
    if args.enabled and not (args.identity or "").strip():
        raise FaceChainError("invalid_request", f"{what}.identity: choose an identity when FaceChain is enabled.", input=what)
    return args


# Order of the accordion's controls (`ui()` return value), i.e. of the positional values the hooks receive.
ARG_NAMES = (
    "enabled", "identity", "lora_weight", "style", "fusion_enabled", "fusion_strength",
    "ranking_enabled", "top_k", "min_score", "drop_no_face",
)
NO_STYLE = "None"  # the style dropdown's "no style" choice


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in ("", NO_STYLE))


def args_from_values(values: dict[str, Any]) -> FaceChainArgs:
    """Arguments from the accordion's control values by name (0 means "off" for top-K and minimum similarity)."""
    if not values.get("enabled"):
        return disabled_args()
    top_k = values.get("top_k")
    min_score = values.get("min_score")
    data = {
        "enabled": True,
        "identity": None if _blank(values.get("identity")) else str(values["identity"]).strip(),
        "lora_weight": None if values.get("lora_weight") is None else float(values["lora_weight"]),
        "style": None if _blank(values.get("style")) else str(values["style"]).strip(),
        "fusion": {"enabled": bool(values.get("fusion_enabled", True)), "strength": float(values.get("fusion_strength", 0.7))},
        "ranking": {
            "enabled": bool(values.get("ranking_enabled", True)),
            "top_k": int(top_k) if top_k else None,
            "min_score": float(min_score) if min_score else None,
            "drop_no_face": bool(values.get("drop_no_face", False)),
        },
    }
    return parse_args(data, what="FaceChain controls")


def args_from_script_args(script_args: Any) -> FaceChainArgs:
    """The hooks' `*args`: ONE dict/JSON/FaceChainArgs (alwayson_scripts) or the positional control values."""
    values = list(script_args or ())
    if not values:
        return disabled_args()
    first = values[0]
    if isinstance(first, (dict, FaceChainArgs)) or (isinstance(first, str) and first.strip().startswith("{")):
        return parse_args(first, what="alwayson_scripts.facechain.args[0]")
    return args_from_values(dict(zip(ARG_NAMES, values, strict=False)))


def args_schema() -> dict[str, Any]:
    """JSON schema of FaceChainArgs (GET /facechain/v1/schema)."""
    return json_schema(FaceChainArgs)


def args_to_dict(args: FaceChainArgs) -> dict[str, Any]:
    return dump_model(args)


# ---- infotext --------------------------------------------------------------------------------------------------
# Keys in the host's "Key: value" infotext. Values avoid commas so they survive the host's quoting unchanged.
KEY_IDENTITY = "FaceChain identity"
KEY_LORA = "FaceChain LoRA"
KEY_LORA_WEIGHT = "FaceChain LoRA weight"
KEY_STYLE = "FaceChain style"
KEY_FUSION = "FaceChain fusion"
KEY_RANKING = "FaceChain ranking"
KEY_SIMILARITY = "FaceChain similarity"
ARG_INFOTEXT_KEYS = (KEY_IDENTITY, KEY_LORA, KEY_LORA_WEIGHT, KEY_STYLE, KEY_FUSION, KEY_RANKING)


def _ranking_text(ranking: RankingArgs) -> str:
    if not ranking.enabled:
        return "off"
    parts = ["on"]
    if ranking.top_k is not None:
        parts.append(f"top_k={ranking.top_k}")
    if ranking.min_score is not None:
        parts.append(f"min_score={format_number(ranking.min_score)}")
    if ranking.drop_no_face:
        parts.append("drop_no_face")
    return " ".join(parts)


def args_to_infotext(args: FaceChainArgs) -> dict[str, str]:
    """The job-wide infotext fields of an enabled job (per-image similarity is added by the host glue)."""
    if not args.enabled:
        return {}
    params = {KEY_IDENTITY: args.identity or ""}
    if args.lora:
        params[KEY_LORA] = args.lora
    if args.lora_weight is not None:
        params[KEY_LORA_WEIGHT] = format_number(args.lora_weight)
    if args.style:
        params[KEY_STYLE] = args.style
    params[KEY_FUSION] = format_number(args.fusion.strength) if args.fusion.enabled else "off"
    params[KEY_RANKING] = _ranking_text(args.ranking)
    return params


def fusion_text(strength: Optional[float], record: Optional[ImageRecord] = None) -> str:
    """`FaceChain fusion` value: the strength, "off", or the strength plus why this image was not fused."""
    if strength is None:
        return "off"
    text = format_number(strength)
    if record is not None and not record.fused and record.fusion_note:
        text += f" not-applied-{record.fusion_note}"
    return text


def _parse_ranking(text: str) -> RankingArgs:
    tokens = str(text).split()
    if not tokens or tokens[0] == "off":
        return RankingArgs(enabled=False)
    values: dict[str, Any] = {"enabled": True}
    for token in tokens[1:]:
        key, _, raw = token.partition("=")
        if key == "top_k":
            values["top_k"] = int(raw)
        elif key == "min_score":
            values["min_score"] = float(raw)
        elif key == "drop_no_face":
            values["drop_no_face"] = True
    return RankingArgs(**values)


def args_from_infotext(params: Mapping[str, Any]) -> Optional[FaceChainArgs]:
    """Rebuild the arguments from parsed infotext (None when the image was not made with FaceChain)."""
    if KEY_IDENTITY not in params:
        return None
    fusion_value = (str(params.get(KEY_FUSION, "off")).split() or ["off"])[0]
    try:
        fusion = FusionArgs(enabled=False) if fusion_value == "off" else FusionArgs(strength=float(fusion_value))
        weight = params.get(KEY_LORA_WEIGHT)
        return FaceChainArgs(
            identity=str(params[KEY_IDENTITY]),
            lora=params.get(KEY_LORA) or None,
            lora_weight=None if weight in (None, "") else float(weight),
            style=params.get(KEY_STYLE) or None,
            fusion=fusion,
            ranking=_parse_ranking(str(params.get(KEY_RANKING, "off"))),
        )
    except ValueError as exc:  # pydantic's ValidationError is a ValueError on v1 and v2
        raise FaceChainError("invalid_request", f"FaceChain infotext fields are malformed: {exc}") from exc


# ---- per-job state -----------------------------------------------------------------------------------------------
@dataclass
class ImageRecord:
    """What FaceChain did to one generated image."""

    position: int  # index in generation order within the job
    seed: Optional[int]
    subseed: Optional[int]
    fused: bool = False
    fusion_note: Optional[str] = None  # why fusion was not applied
    score: Optional[float] = None  # similarity to the identity; None when no usable face was found
    face_count: Optional[int] = None
    score_note: Optional[str] = None  # why there is no score


@dataclass
class FaceChainJob:
    """Everything one generation job needs and learns; lives on `p` (see attach_job)."""

    args: FaceChainArgs
    plan: PromptPlan
    lora_name: Optional[str] = None
    style_id: Optional[str] = None
    reference_photo: Optional[str] = None  # path of the identity's best photo (fusion source)
    comments: list[str] = field(default_factory=list)
    prompted_batches: set[int] = field(default_factory=set)
    records: list[ImageRecord] = field(default_factory=list)
    ranked: bool = False
    order: Optional[list[int]] = None  # positions of the returned images after ranking (None: not ranked)

    def add_record(self, seed: Optional[int], subseed: Optional[int]) -> ImageRecord:
        record = ImageRecord(position=len(self.records), seed=seed, subseed=subseed)
        self.records.append(record)
        return record

    def find_record(self, seed: Any, subseed: Any) -> Optional[ImageRecord]:
        """The newest record for this seed pair (seeds identify images in the host's infotext calls)."""
        for record in reversed(self.records):
            if record.seed == seed and (subseed is None or record.subseed == subseed):
                return record
        return None

    def comment(self, text: str) -> None:
        if text not in self.comments:
            self.comments.append(text)


def similarity_text(record: Optional[ImageRecord]) -> Optional[str]:
    """Infotext value of `FaceChain similarity` for one image."""
    if record is None or (record.score is None and record.score_note is None):
        return None
    return format_number(record.score) if record.score is not None else "none"


def attach_job(p: Any, job: FaceChainJob) -> None:
    setattr(p, JOB_ATTR, job)


def get_job(p: Any) -> Optional[FaceChainJob]:
    job = getattr(p, JOB_ATTR, None)
    return job if isinstance(job, FaceChainJob) else None


def detach_job(p: Any) -> Optional[FaceChainJob]:
    job = get_job(p)
    if hasattr(p, JOB_ATTR):
        delattr(p, JOB_ATTR)
    return job
