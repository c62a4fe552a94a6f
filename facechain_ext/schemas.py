"""Request and response models shared by the routes, the tab and the CLI.

They must work on pydantic 1 (A1111: fastapi 0.94) and pydantic 2 (Forge): plain fields with defaults only — no
validators, no `Field(min_items/min_length)`, no `model_config`. Value checks that need a message for the user
are done by the service code and raise FaceChainError. Use `to_dict(model)` instead of `.dict()`/`.model_dump()`.

Also here: `FaceChainArgs`, the ONE argument model of a FaceChain generation, shared by the txt2img/img2img accordion,
`alwayson_scripts`, our `/facechain/v1/txt2img` route and the infotext (`infotext.py`), with its parsers.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, Field

from .errors import FaceChainError
from .lora.config import (
    ALPHA_MAX,
    LEARNING_RATE_RANGE,
    RANK_RANGE,
    RESOLUTION_RANGE,
    SEED_RANGE,
    SNAPSHOT_EVERY_RANGE,
    STEPS_RANGE,
)
from .modelcompat import dump_model, json_schema, parse_model
from .modelcompat import dump_model as to_dict  # noqa: F401 - the name the routes use


# ---- errors (documented shape of every error body) ----
class ErrorDetail(BaseModel):
    code: str = Field(..., description="stable machine-readable code, e.g. no_face, name_taken")
    message: str = Field(..., description="what happened to which input, and how to fix it")
    context: dict[str, Any] = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    detail: ErrorDetail


# ---- version / models ----
class VersionResponse(BaseModel):
    version: str
    api: str = "v1"
    host: str = Field(..., description="a1111 | forge")
    face_backend: str = Field(..., description="configured backend (auto | insightface | dlib)")
    backends: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per backend: available, reason, path")


class ModelFileInfo(BaseModel):
    name: str = Field(..., description="the file's release name")
    present: bool
    installed_as: str | None = Field(None, description="the file found in the folder: the release name, or a "
                                     "converted copy used instead (e.g. FACT's fp16 .safetensors)")
    size: int | None = None
    expected_size: int | None = Field(None, description="bytes of the published file, when the manifest knows it")
    size_ok: bool | None = Field(None, description="size equals the published one (null: unknown or absent)")
    sha256: str | None = None


class ModelInfo(BaseModel):
    name: str
    kind: str
    description: str = ""
    present: bool
    path: str
    size: int = 0
    licence: str
    sources: list[dict[str, Any]] = Field(default_factory=list)
    files: list[ModelFileInfo] = Field(default_factory=list)
    required_for: str = ""
    hint: str | None = None
    downloadable: bool = Field(False, description="FaceChain can download and verify it (else manual install only)")
    download_size: int | None = Field(None, description="bytes a download fetches")
    download_blocked: str | None = Field(None, description="why POST .../download would be refused now")
    checksum_source: str = ""


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class ModelDownloadAccepted(BaseModel):
    """202 answer of POST /facechain/v1/models/{name}/download: poll GET /facechain/v1/jobs/{job_id}."""

    job_id: str
    status: str
    model: str


# ---- faces ----
class DetectRequest(BaseModel):
    image: str = Field(..., description="base64 image (a data: URL is accepted)")
    backend: str | None = Field(None, description="auto | insightface | dlib (default: the configured one)")


class FaceInfo(BaseModel):
    bbox: list[float] = Field(..., description="x1, y1, x2, y2 in pixels of the upright image")
    score: float
    kps: list[list[float]] = Field(..., description="5 points: left eye, right eye, nose, mouth left, mouth right")
    gender: str | None = None
    age: float | None = None


class DetectResponse(BaseModel):
    faces: list[FaceInfo]
    backend: str
    rotation: int = Field(0, description="degrees (counter-clockwise) the photo was turned to find its faces upright; "
                                         "boxes and points are in the photo as sent")


class ReferenceImages(BaseModel):
    images: list[str] = Field(..., description="base64 photos of the reference person (their mean embedding is used)")


class SimilarityRequest(BaseModel):
    reference: ReferenceImages
    candidates: list[str] = Field(..., description="base64 images to score against the reference")
    top_k: int | None = Field(None, description="return only the best K indices in `order`")
    backend: str | None = None


class InputError(BaseModel):
    input: str = Field(..., description="the photo, e.g. candidates[2] (a path in the CLI)")
    role: str = Field(..., description="reference | candidate")
    index: int = Field(..., description="its position in its list")
    code: str
    message: str


class SimilarityResponse(BaseModel):
    scores: list[float | None] = Field(..., description="cosine similarity per candidate, in request order; null = "
                                       "no usable face (see errors)")
    order: list[int] = Field(..., description="candidate indices with a face, best first (top_k of them when given)")
    backend: str
    threshold: float = Field(..., description="the backend's calibrated same-person threshold")
    errors: list[InputError] = Field(default_factory=list, description="one entry per photo that could not be used")


# ---- identities ----
class IdentityCreateRequest(BaseModel):
    name: str = Field(..., description="^[A-Za-z0-9_-]{1,64}$")
    images: list[str] = Field(..., description="base64 photos of one person")
    overwrite: bool = False
    phrase: str | None = Field(None, description="caption phrase; default from the detected gender/age")
    backend: str | None = None


class IdentityListResponse(BaseModel):
    identities: list[dict[str, Any]]


# ---- training: POST /train, GET /jobs/{id}, GET /loras ----
class TrainRequestModel(BaseModel):
    """Body of POST /facechain/v1/train. Unset options take the preset's value (see facechain_ext.lora.config).

    Everything is checked when the request arrives (422 now, never a failed job later): these bounds, the preset,
    the names, that the identity exists and that the LoRA name is free.
    """

    identity: str = Field(..., description="Name of a prepared FaceChain identity (1-64 of A-Z a-z 0-9 _ -)")
    lora_name: str | None = Field(None, description="File/prompt name of the LoRA, 1-64 of A-Z a-z 0-9 _ - "
                                  "(default: the identity name)")
    preset: Literal["fast", "quality"] = Field("fast", description="fast: rank 4, 100 steps/photo; quality: rank 16, "
                                               "200 steps/photo")
    steps: int | None = Field(None, ge=STEPS_RANGE[0], le=STEPS_RANGE[1], description="Total optimizer steps "
                              "(default: the preset's steps per photo, 50-3000)")
    rank: int | None = Field(None, ge=RANK_RANGE[0], le=RANK_RANGE[1], description="LoRA rank")
    alpha: float | None = Field(None, gt=0, le=ALPHA_MAX, description="LoRA alpha; scale = alpha / rank")
    learning_rate: float | None = Field(None, ge=LEARNING_RATE_RANGE[0], le=LEARNING_RATE_RANGE[1])
    resolution: int | None = Field(None, ge=RESOLUTION_RANGE[0], le=RESOLUTION_RANGE[1],
                                   description="Training size in pixels, a multiple of 8")
    seed: int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1], description="32-bit seed, like the host's")
    snapshot_every: int | None = Field(None, ge=SNAPSHOT_EVERY_RANGE[0], le=SNAPSHOT_EVERY_RANGE[1],
                                       description="Keep LoRA weights every N steps for best-checkpoint selection")
    overwrite: bool = False
    validation_images: int = Field(2, ge=0, le=8, description="Validation portraits per snapshot (0: keep the last)")
    average_top_k: int = Field(1, ge=1, le=10, description="Save the average of the K best snapshots (1: the best one)")

    class Config:
        extra = "forbid"


class TrainAcceptedModel(BaseModel):
    job_id: str
    status: str
    host_task_id: str | None = None


class JobModel(BaseModel):
    """A FaceChain job record (GET /facechain/v1/jobs/{id})."""

    id: str
    kind: str
    status: str = Field(..., description="queued | running | done | failed | cancelled")
    progress: float = Field(..., ge=0, le=1)
    eta_s: float | None = None
    textinfo: str = ""
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class LoraModel(BaseModel):
    name: str
    identity: str | None = None
    path: str
    sha256: str
    prompt: str
    weight: float = 0.9
    rank: int | None = None
    base_model: str | None = None
    preview: str | None = None


class LoraListModel(BaseModel):
    loras: list[LoraModel]


# ---- generation arguments (accordion, alwayson_scripts, /facechain/v1/txt2img, infotext) ----
class FusionArgs(BaseModel):
    enabled: bool = True
    strength: float = Field(default=0.7, ge=0.0, le=1.0)
    # "auto" = the weight-free blend (learned fusion is never picked without being named: licence, see fusion.backends)
    backend: Literal["auto", "blend", "inswapper"] = "auto"
    # The host's face restoration (Settings → Face restoration: GFPGAN/CodeFormer and its CodeFormer weight) on the fused
    # face. None = auto: after learned fusion only, as face-swap extensions do (ReActor and roop restore after the swap at
    # visibility 1 by default): inswapper's 128 px output is soft at 512 px, while the blend pastes the best photo's
    # real detail, which a restorer would only smooth (and cost a model pass per image). True/False: always/never.
    restore_face: Optional[bool] = None
    restore_visibility: float = Field(default=1.0, ge=0.0, le=1.0)  # 0..1 blend, as the host's Extras "GFPGAN visibility"

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
    # issue 8: how the likeness gets in. "auto": the identity's LoRA when it has one, else FACT when installed
    # (fact_runtime.resolve_conditioning). FACT: FaceChain's train-free face adapter, SD1.x only.
    conditioning: Literal["auto", "lora", "fact", "lora+fact"] = Field(
        default="auto", description="how the likeness gets in: auto = the identity's LoRA when it has one, else FACT "
        "when its files are installed, else neither (said in the comments); lora; fact (train-free, SD1.x); lora+fact")
    fact_scale: float = Field(default=0.5, ge=0.0, le=1.5,  # FaceChain: 0.5 txt2img, 0.55 inpainting
                              description="strength of FACT's face tokens (FaceChain uses 0.5)")
    fact_photos: Optional[list[str]] = Field(
        default=None, description="1-4 of the identity's photos FACT uses, by name (e.g. photos/02.png); "
        "default: the fact_photo_count best by the identity's quality scores")
    fact_photo_count: int = Field(default=1, ge=1, le=4, description="how many of the best photos FACT uses when "
                                  "fact_photos is unset")

    class Config:
        extra = "forbid"


def disabled_args() -> FaceChainArgs:
    return FaceChainArgs(enabled=False)


def parse_args(value: Any, *, what: str = "FaceChain settings") -> FaceChainArgs:
    """FaceChainArgs from None (disabled), a dict, a JSON string or an instance; FaceChainError names bad fields."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return disabled_args()
    args = parse_model(FaceChainArgs, value, what=what)
    if args.enabled and not (args.identity or "").strip():
        raise FaceChainError("invalid_request", f"{what}: no identity is chosen; choose one or switch FaceChain off.", input=what,
                             problems=["identity: required when enabled"])
    return args


# Order of the accordion's controls (`ui()` return value), i.e. of the positional values the hooks receive.
# New controls go at the end, so positional callers of an older version keep their meaning (missing = default).
ARG_NAMES = (
    "enabled", "identity", "lora_weight", "style", "fusion_enabled", "fusion_strength",
    "ranking_enabled", "top_k", "min_score", "drop_no_face",
    # appended later, so older positional API calls stay valid:
    "fusion_backend", "restore_face", "restore_visibility",
    "conditioning", "fact_scale", "fact_photo_count", "fact_photos",
)
NO_STYLE = "None"  # the style dropdown's "no style" choice
RESTORE_CHOICES = {"auto": None, "on": True, "off": False}  # the "Restore face" radio's values -> FusionArgs.restore_face


def restore_choice(value: Optional[bool]) -> str:
    """The radio value of a FusionArgs.restore_face."""
    return next(name for name, flag in RESTORE_CHOICES.items() if flag is value)


def restore_value(value: Any) -> Optional[bool]:
    """FusionArgs.restore_face from a radio value ("auto" | "on" | "off"), a bool or None."""
    if isinstance(value, bool) or value is None:
        return value
    text = str(value).strip().lower()
    if text not in RESTORE_CHOICES:
        raise FaceChainError("invalid_request", f"The restore_face value {value!r} is not one of {', '.join(RESTORE_CHOICES)}.")
    return RESTORE_CHOICES[text]


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
        "fusion": {
            "enabled": bool(values.get("fusion_enabled", True)),
            "strength": float(values.get("fusion_strength", 0.7)),
            "backend": str(values.get("fusion_backend") or "auto"),
            "restore_face": restore_value(values.get("restore_face")),
            "restore_visibility": float(values.get("restore_visibility", 1.0)),
        },
        "ranking": {
            "enabled": bool(values.get("ranking_enabled", True)),
            "top_k": int(top_k) if top_k else None,
            "min_score": float(min_score) if min_score else None,
            "drop_no_face": bool(values.get("drop_no_face", False)),
        },
        **_fact_values(values),
    }
    return parse_args(data, what="FaceChain settings")


def _fact_values(values: dict[str, Any]) -> dict[str, Any]:
    """conditioning / fact_scale / fact_photo_count / fact_photos from control values (absent: the defaults)."""
    data: dict[str, Any] = {}
    if not _blank(values.get("conditioning")):
        data["conditioning"] = str(values["conditioning"]).strip()
    if values.get("fact_scale") is not None:
        data["fact_scale"] = float(values["fact_scale"])
    if values.get("fact_photo_count") is not None:
        data["fact_photo_count"] = int(values["fact_photo_count"])
    photos = values.get("fact_photos")
    if isinstance(photos, str):
        photos = [photos]
    chosen = [str(p).strip() for p in photos or [] if str(p).strip()]
    if chosen:
        data["fact_photos"] = chosen
    return data


def args_from_script_args(script_args: Any) -> FaceChainArgs:
    """The hooks' `*args`: ONE dict/JSON/FaceChainArgs (alwayson_scripts) or the positional control values."""
    values = list(script_args or ())
    if not values:
        return disabled_args()
    first = values[0]
    if isinstance(first, (dict, FaceChainArgs)) or (isinstance(first, str) and first.strip().startswith("{")):
        return parse_args(first, what="The FaceChain argument of alwayson_scripts")
    return args_from_values(dict(zip(ARG_NAMES, values, strict=False)))


def args_schema() -> dict[str, Any]:
    """JSON schema of FaceChainArgs (GET /facechain/v1/schema)."""
    return json_schema(FaceChainArgs)


def args_to_dict(args: FaceChainArgs) -> dict[str, Any]:
    return dump_model(args)


# ---- generation routes: /facechain/v1/txt2img, /face/fuse ----


class FaceChainTxt2ImgRequest(BaseModel):
    """The host's /sdapi/v1/txt2img fields (same names and meaning) plus `facechain`.

    Unset sampler/steps/cfg_scale/width/height come from the style's recommendation, then the host defaults.
    Fields of the host request that FaceChain does not use (script_name, alwayson_scripts, ...) are ignored.
    """

    prompt: str = ""
    negative_prompt: str = ""
    styles: list[str] | None = Field(None, description="host prompt styles (not FaceChain styles)")
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = Field(0.0, ge=0.0, le=1.0)
    seed_resize_from_h: int = -1
    seed_resize_from_w: int = -1
    sampler_name: str | None = None
    scheduler: str | None = None
    batch_size: int = Field(1, ge=1, le=16)
    n_iter: int = Field(1, ge=1, le=32)
    steps: int | None = Field(None, ge=1, le=150)
    cfg_scale: float | None = Field(None, ge=1.0, le=30.0)
    width: int | None = Field(None, ge=64, le=2048, description="multiple of 8")
    height: int | None = Field(None, ge=64, le=2048, description="multiple of 8")
    restore_faces: bool | None = None
    tiling: bool | None = None
    do_not_save_grid: bool = True
    eta: float | None = None
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool = True
    enable_hr: bool = False
    denoising_strength: float | None = Field(None, ge=0.0, le=1.0)
    hr_scale: float = Field(2.0, ge=1.0, le=4.0)
    hr_upscaler: str | None = None
    hr_second_pass_steps: int = Field(0, ge=0, le=150)
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_sampler_name: str | None = None
    hr_prompt: str = ""
    hr_negative_prompt: str = ""
    send_images: bool = True
    save_images: bool = False
    pose_image: str | None = Field(None, description="base64 openpose skeleton (used as is) or photo (needs ControlNet's "
                                   "openpose preprocessor): pose guidance through the host's ControlNet when installed")
    facechain: FaceChainArgs = Field(..., description="identity, lora_weight, style, fusion, ranking, conditioning, "
                                     "fact_scale, fact_photo_count, fact_photos (GET /facechain/v1/schema)")


class FaceChainTxt2ImgResponse(BaseModel):
    images: list[str] = Field(..., description="base64 PNGs, best similarity first when ranking is on")
    parameters: dict[str, Any]
    info: str = Field(..., description="the host's Processed.js() JSON; infotexts follow the returned order")
    scores: list[float | None] = Field(..., description="similarity per returned image; null = no face found")
    order: list[int] = Field(..., description="generation position of each returned image")
    comments: str = ""


class FuseReference(BaseModel):
    identity: str | None = Field(None, description="an identity: its best photo and reference embedding")
    images: list[str] | None = Field(None, description="base64 photos of the person: the first is fused in")


class FuseRequest(BaseModel):
    target: str = Field(..., description="base64 image whose largest face is fused toward the reference")
    reference: FuseReference
    strength: float = Field(0.7, ge=0.0, le=1.0)
    backend: Literal["auto", "blend", "inswapper"] = Field(
        "auto", description="auto = the weight-free blend; inswapper = the learned 128 px swap (its model must be installed)"
    )
    restore_face: Optional[bool] = Field(
        None, description="the host's face restoration (Settings → Face restoration) on the fused face: null = after "
        "learned fusion only (the default of face-swap extensions), true/false = always/never"
    )
    restore_visibility: float = Field(1.0, ge=0.0, le=1.0, description="0..1 blend of the restored face, as Extras' GFPGAN visibility")


class FuseResponse(BaseModel):
    image: str
    similarity_before: float
    similarity_after: float
    applied: bool
    backend: str | None = None
    restored: bool = Field(False, description="the host's face restoration was applied to the fused face")
    restore_note: str | None = Field(None, description="why restoration was asked for but not applied")


class StylesResponse(BaseModel):
    styles: list[dict[str, Any]]
    errors: dict[str, str] = Field(default_factory=dict, description="style file -> why it was skipped")

