"""What a template job asks for: the models shared by the Templates view, `POST /facechain/v1/template` and infotext.

pydantic 1 and 2 alike (plain fields, `Field(ge=, le=)`, `extra = "forbid"`); checks that need the template itself
(face indices, duplicates, face sizes) are done in `templates.plan` and raise FaceChainError with a named code.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, Field

from ..schemas import FusionArgs  # the accordion's fusion arguments: strength, backend, face restoration

# FaceChain's fixed-template mode inpainted at strength 0.65 (modelscope/facechain v3.0.0 app.py and
# run_inference_inpaint.py: `strength = 0.65`); its useful range was about 0.5-0.65.
DEFAULT_STRENGTH = 0.65
# Conditioning per identity, the accordion's vocabulary (FaceChainArgs.conditioning, fact_runtime.resolve_conditioning):
# "auto" = the identity's LoRA when it has one, else FACT when installed; "lora" (tag + trigger + phrase), "fact",
# "lora+fact". FACT fields as the accordion's, except the scale's default (templates/run.py FACT_INPAINT_SCALE).
CONDITIONINGS = ("auto", "lora", "fact", "lora+fact")
FACT_CONDITIONINGS = ("fact", "lora+fact")
MAX_CANDIDATES = 16


class TemplateFaceChoice(BaseModel):
    """One face of the template to replace, and who goes there."""

    index: int = Field(..., description="0-based, faces numbered left to right (the tab shows index + 1)")
    identity: str = Field(..., description="a prepared FaceChain identity")
    conditioning: str = Field("auto", description="auto | lora | fact | lora+fact (as the accordion's)")
    lora_weight: Optional[float] = Field(None, ge=0.0, le=2.0, description="default: the LoRA's preferred weight")
    fact_scale: Optional[float] = Field(None, ge=0.0, le=1.5, description="FACT adapter scale (default 0.55, FaceChain's for inpainting)")
    fact_photo_count: int = Field(1, ge=1, le=4, description="FACT: how many of the identity's best photos (by quality)")
    fact_photos: Optional[list[str]] = Field(None, description="FACT: 1-4 of the identity's photos by name (e.g. photos/02.png)")

    class Config:
        extra = "forbid"


class TemplateGuidance(BaseModel):
    """Pose and edge guidance through the host's ControlNet (used only when it and suitable models are installed)."""

    pose: bool = Field(True, description="openpose computed from the template (FaceChain: weight 1.0)")
    canny: bool = Field(True, description="canny edges of the template outside the faces (FaceChain: weight 0.2)")

    class Config:
        extra = "forbid"


class TemplateArgs(BaseModel):
    """The FaceChain part of a template job (the tab and the route fill it the same way)."""

    faces: list[TemplateFaceChoice] = Field(..., description="faces to replace; each index at most once")
    strength: float = Field(DEFAULT_STRENGTH, ge=0.05, le=1.0, description="img2img denoising strength of each face pass")
    n: int = Field(1, ge=1, le=MAX_CANDIDATES, description="candidates to make; returned best mean similarity first")
    seed: int = Field(-1, description="-1: random; candidate k uses seed + k for all its face passes")
    guidance: TemplateGuidance = TemplateGuidance()
    fusion: FusionArgs = FusionArgs()
    padding: Optional[int] = Field(None, ge=0, le=1024, description="inpaint_full_res_padding in px (default: from the face size)")

    class Config:
        extra = "forbid"


class TemplateRequest(BaseModel):
    """Body of POST /facechain/v1/template: the template, the FaceChain arguments and the host's img2img fields."""

    template: str = Field(..., description="base64 photo with one or more faces")
    faces: list[TemplateFaceChoice]
    strength: float = Field(DEFAULT_STRENGTH, ge=0.05, le=1.0)
    n: int = Field(1, ge=1, le=MAX_CANDIDATES)
    seed: int = -1
    guidance: TemplateGuidance = TemplateGuidance()
    fusion: FusionArgs = FusionArgs()
    padding: Optional[int] = Field(None, ge=0, le=1024)
    # host img2img fields (same names and meaning as /sdapi/v1/img2img)
    prompt: str = ""
    negative_prompt: str = ""
    sampler_name: Optional[str] = None
    scheduler: Optional[str] = None
    steps: int = Field(30, ge=1, le=150)
    cfg_scale: float = Field(7.0, ge=1.0, le=30.0)
    width: int = Field(512, ge=64, le=2048, description="working resolution of each face pass (multiple of 8)")
    height: int = Field(512, ge=64, le=2048, description="working resolution of each face pass (multiple of 8)")
    override_settings: Optional[dict[str, Any]] = None
    override_settings_restore_afterwards: bool = True
    send_images: bool = True
    save_images: bool = False

    class Config:
        extra = "forbid"


HOST_FIELDS = ("prompt", "negative_prompt", "sampler_name", "scheduler", "steps", "cfg_scale", "width", "height",
               "override_settings", "override_settings_restore_afterwards")
ARG_FIELDS = ("faces", "strength", "n", "seed", "guidance", "fusion", "padding")


class TemplateFaceResult(BaseModel):
    index: int
    identity: str
    score: Optional[float] = Field(None, description="similarity to the identity after fusion; null: face not found")
    score_before_fusion: Optional[float] = None
    fused: bool = False
    restored: bool = False
    note: Optional[str] = None


class TemplateResponse(BaseModel):
    images: list[str] = Field(..., description="base64 PNGs, best mean similarity of the replaced faces first")
    scores: list[list[Optional[float]]] = Field(..., description="per image: similarity of each replaced face, in `faces` order")
    faces: list[list[TemplateFaceResult]] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=list, description="seed of each returned image")
    info: str = Field("", description="JSON: infotexts of the returned images, guidance used, comments")
    comments: str = ""


class TemplateFacesRequest(BaseModel):
    template: str


class TemplateFacesResponse(BaseModel):
    faces: list[dict[str, Any]] = Field(..., description="index, bbox, score, kps, left to right")
    width: int
    height: int
    rotation: int = Field(0, description="degrees that turned the faces upright (0: an upright template)")
    backend: str
