"""Which Stable Diffusion family a model belongs to (SD1, SD2, SDXL): the ONE check training, generation and FACT ask.

Sources, first match wins:
1. our adapters' `family` attribute (`LdmModel`, `DiffusersModel`);
2. the host's flags on every checkpoint it loads (`is_sdxl`, `is_sd2`, `is_sd1`; A1111 modules/sd_models.py
   `load_model_weights`, same names in Forge). A host model with `is_sd1` present but no flag set is another
   architecture (SD3, Flux, ...): "unknown";
3. the width of the cross-attention context: diffusers `unet.config.cross_attention_dim`, else the `in_features`
   of the first `attn2.to_k` projection (CLIP ViT-L/14 = 768 for SD1, OpenCLIP ViT-H = 1024 for SD2, 2048 for SDXL's
   two text encoders concatenated).
No torch import at module level.
"""

from __future__ import annotations

from typing import Any, Iterable, Literal, Optional

from facechain_ext.errors import FaceChainError

ModelFamily = Literal["sd1", "sd2", "sdxl", "unknown"]
FAMILIES: tuple[ModelFamily, ...] = ("sd1", "sd2", "sdxl")
CONTEXT_DIMS: dict[int, ModelFamily] = {768: "sd1", 1024: "sd2", 2048: "sdxl"}
LABELS = {"sd1": "Stable Diffusion 1.x", "sd2": "Stable Diffusion 2.x", "sdxl": "SDXL", "unknown": "an unknown architecture"}


def family_from_context_dim(width: Optional[int]) -> ModelFamily:
    return CONTEXT_DIMS.get(int(width), "unknown") if width else "unknown"


def _host_flags(model: Any) -> Optional[ModelFamily]:
    for family in ("sdxl", "sd2", "sd1"):
        if getattr(model, f"is_{family}", None) is True:
            return family  # type: ignore[return-value]
    return "unknown" if getattr(model, "is_sd1", None) is not None else None


def _unet_of(model: Any) -> Any:
    inner = getattr(getattr(model, "model", None), "diffusion_model", None)  # ldm LatentDiffusion
    return inner if inner is not None else getattr(model, "unet", model)


def context_width(unet: Any) -> Optional[int]:
    """Cross-attention context width of a UNet (diffusers config, else the first attn2.to_k Linear)."""
    config = getattr(unet, "config", None)
    width = getattr(config, "cross_attention_dim", None) if config is not None else None
    if isinstance(width, int):
        return width
    named = getattr(unet, "named_modules", None)
    if named is None:
        return None
    for name, module in named():
        if name.endswith("attn2.to_k") and hasattr(module, "in_features"):
            return int(module.in_features)
    return None


def model_family(model: Any) -> ModelFamily:
    """The family of an adapter, a host checkpoint object, a diffusers UNet or an ldm UNet (see module doc)."""
    family = getattr(model, "family", None)
    if family in FAMILIES or family == "unknown":
        return family
    flagged = _host_flags(model)
    if flagged is not None:
        return flagged
    return family_from_context_dim(context_width(_unet_of(model)))


def require_family(
    model_or_family: Any, supported: Iterable[str] = ("sd1",), *, purpose: str = "FaceChain face LoRAs",
    checkpoint: str | None = None,
) -> ModelFamily:
    """The family, or FaceChainError `unsupported_model` (HTTP 422) naming the checkpoint, its family and what works."""
    family = model_or_family if isinstance(model_or_family, str) else model_family(model_or_family)
    allowed = tuple(supported)
    if family in allowed:
        return family  # type: ignore[return-value]
    name = checkpoint or getattr(model_or_family, "checkpoint_name", None) or "the loaded checkpoint"
    wanted = " or ".join(LABELS[f] for f in allowed)
    hint = " Load an SD1.5-based checkpoint and try again." if "sd1" in allowed else ""
    raise FaceChainError(
        "unsupported_model",
        f"Checkpoint '{name}' is {LABELS.get(family, family)}, not {wanted}: {purpose} need {wanted}.{hint}",
        checkpoint=name, family=family, supported=list(allowed),
    )
