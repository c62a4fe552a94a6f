"""FaceChain's fields in the host's infotext ("Key: value" pairs under every image): writing and reading them back.

Written per generation from the arguments (`args_to_infotext`) plus per image (`fusion_text`, `similarity_text`);
read back by the host's "send to txt2img"/PNG-info paste (`args_from_infotext`). Values avoid commas so they survive
the host's quoting unchanged (modules/infotext_utils.py `quote`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

from .errors import FaceChainError
from .prompts import format_number
from .schemas import FaceChainArgs, FusionArgs, RankingArgs, restore_choice, restore_value

if TYPE_CHECKING:
    from .generation_state import GenerationState, ImageRecord

# Keys in the host's "Key: value" infotext. Values avoid commas so they survive the host's quoting unchanged.
KEY_IDENTITY = "FaceChain identity"
KEY_LORA = "FaceChain LoRA"
KEY_LORA_WEIGHT = "FaceChain LoRA weight"
KEY_STYLE = "FaceChain style"
KEY_FUSION = "FaceChain fusion"
KEY_RANKING = "FaceChain ranking"
KEY_SIMILARITY = "FaceChain similarity"
KEY_CONDITIONING = "FaceChain conditioning"  # lora | fact | lora+fact (what was used), none, or auto
KEY_FACT_SCALE = "FaceChain FACT scale"
KEY_FACT_PHOTOS = "FaceChain FACT photos"  # a count (the best by quality) or names joined by "+"
ARG_INFOTEXT_KEYS = (KEY_IDENTITY, KEY_LORA, KEY_LORA_WEIGHT, KEY_STYLE, KEY_FUSION, KEY_RANKING, KEY_CONDITIONING,
                     KEY_FACT_SCALE, KEY_FACT_PHOTOS)
NO_CONDITIONING = "none"  # neither the LoRA nor FACT was used; pasted back as "auto"


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
    """The generation-wide infotext fields of enabled arguments (per-image values: `fusion_text`, `similarity_text`)."""
    if not args.enabled:
        return {}
    params = {KEY_IDENTITY: args.identity or ""}
    if args.lora:
        params[KEY_LORA] = args.lora
    if args.lora_weight is not None:
        params[KEY_LORA_WEIGHT] = format_number(args.lora_weight)
    if args.style:
        params[KEY_STYLE] = args.style
    params[KEY_FUSION] = fusion_text(args.fusion)
    params[KEY_RANKING] = _ranking_text(args.ranking)
    params.update(conditioning_infotext(args, args.conditioning))
    return params


def _fusion_setting_text(fusion: FusionArgs) -> str:
    """The strength, then only the settings that differ from their defaults (so older infotexts read the same)."""
    parts = [format_number(fusion.strength)]
    if fusion.backend != "auto":
        parts.append(f"backend={fusion.backend}")
    if fusion.restore_face is not None:
        parts.append(f"restore={restore_choice(fusion.restore_face)}")
    if fusion.restore_visibility != 1.0:
        parts.append(f"restore_visibility={format_number(fusion.restore_visibility)}")
    return " ".join(parts)


def conditioning_infotext(args: FaceChainArgs, used: str) -> dict[str, str]:
    """`FaceChain conditioning` = `used` (the requested mode, or the one the generation resolved to), plus FACT's
    scale and photos whenever FACT may take part."""
    params = {KEY_CONDITIONING: used}
    if used in ("auto", "fact", "lora+fact"):
        params[KEY_FACT_SCALE] = format_number(args.fact_scale)
        params[KEY_FACT_PHOTOS] = "+".join(args.fact_photos) if args.fact_photos else str(args.fact_photo_count)
    return params


def used_conditioning(state: GenerationState) -> str:
    """What the generation used for the likeness: lora, fact, lora+fact, or none. FACT counts once its hook ran on a
    sampling pass and was not turned off (e.g. by a non-SD1 checkpoint: facechain_ext/webui/fact_hook.py); the host
    evaluates this per image, after sampling."""
    lora = state.lora_name is not None
    fact = state.fact is not None and state.fact.applied and state.fact.off is None
    return {(True, True): "lora+fact", (True, False): "lora", (False, True): "fact"}.get((lora, fact), NO_CONDITIONING)


def _parse_fact(params: Mapping[str, Any]) -> dict[str, Any]:
    """conditioning / fact_scale / fact_photo_count / fact_photos from infotext (absent in older images: defaults)."""
    values: dict[str, Any] = {}
    mode = str(params.get(KEY_CONDITIONING, "")).strip()
    if mode and mode != NO_CONDITIONING:
        values["conditioning"] = mode
    scale = params.get(KEY_FACT_SCALE)
    if scale not in (None, ""):
        values["fact_scale"] = float(scale)
    photos = str(params.get(KEY_FACT_PHOTOS, "")).strip()
    if photos.isdigit():
        values["fact_photo_count"] = int(photos)
    elif photos:
        values["fact_photos"] = [name for name in photos.split("+") if name]
    return values


def fusion_text(fusion: Union[FusionArgs, float, None], record: Optional[ImageRecord] = None) -> str:
    """`FaceChain fusion` value: "off", or the strength and non-default settings, plus for one image whether the host's
    face restoration was applied ("restored") or why the image was not fused ("not-applied-<reason>")."""
    if fusion is None or (isinstance(fusion, FusionArgs) and not fusion.enabled):
        return "off"
    text = _fusion_setting_text(fusion) if isinstance(fusion, FusionArgs) else format_number(fusion)
    if record is not None and record.restored:
        text += " restored"
    if record is not None and not record.fused and record.fusion_note:
        text += f" not-applied-{record.fusion_note}"
    return text


def _parse_fusion(text: str) -> FusionArgs:
    tokens = str(text).split() or ["off"]
    if tokens[0] == "off":
        return FusionArgs(enabled=False)
    values: dict[str, Any] = {"strength": float(tokens[0])}
    for token in tokens[1:]:  # per-image notes ("restored", "not-applied-...") are not settings
        key, _, raw = token.partition("=")
        if key == "backend":
            values["backend"] = raw
        elif key == "restore":
            values["restore_face"] = restore_value(raw)
        elif key == "restore_visibility":
            values["restore_visibility"] = float(raw)
    return FusionArgs(**values)


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
    try:
        fusion = _parse_fusion(str(params.get(KEY_FUSION, "off")))
        weight = params.get(KEY_LORA_WEIGHT)
        return FaceChainArgs(
            identity=str(params[KEY_IDENTITY]),
            lora=params.get(KEY_LORA) or None,
            lora_weight=None if weight in (None, "") else float(weight),
            style=params.get(KEY_STYLE) or None,
            fusion=fusion,
            ranking=_parse_ranking(str(params.get(KEY_RANKING, "off"))),
            **_parse_fact(params),
        )
    except (ValueError, FaceChainError) as exc:  # pydantic's ValidationError is a ValueError on v1 and v2
        raise FaceChainError("invalid_request", f"FaceChain infotext fields are malformed: {exc}") from exc


def similarity_text(record: Optional[ImageRecord]) -> Optional[str]:
    """Infotext value of `FaceChain similarity` for one image."""
    if record is None or (record.score is None and record.score_note is None):
        return None
    return format_number(record.score) if record.score is not None else "none"
