"""FaceChain's fields in the host's infotext ("Key: value" pairs under every image): writing and reading them back.

Written per generation from the arguments (`args_to_infotext`) plus per image (`fusion_text`, `similarity_text`);
read back by the host's "send to txt2img"/PNG-info paste (`args_from_infotext`). Values are worded for people
("0.7 (not applied - no face found)", "on; best 4; min similarity 0.35") and avoid commas and colons, so the host's
quoting leaves them as they are (modules/infotext_utils.py `quote` quotes a value with `,`, `:` or a line break).
Older images' machine tokens ("0.7 not-applied-no_face", "on top_k=4 min_score=0.35 drop_no_face") still paste back.
"""

from __future__ import annotations

import re
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


# why an image was not fused or scored (codes in generation_state.ImageRecord notes) -> words in the infotext
NOTE_WORDS = {
    "no_face": "no face found", "multiple_faces": "several faces", "face_size": "face too small or too large",
    "low_score": "below the minimum similarity", "face_out_of_frame": "face at the image border",
    "zero_strength": "strength 0", "internal_error": "an internal error",
}
RANKING_BEST, RANKING_MIN, RANKING_DROP = "best", "min similarity", "drops no-face images"


def note_words(code: str) -> str:
    """A note code in words (unknown codes with their underscores as spaces)."""
    return NOTE_WORDS.get(code, code.replace("_", " "))


def _ranking_text(ranking: RankingArgs) -> str:
    if not ranking.enabled:
        return "off"
    parts = ["on"]
    if ranking.top_k is not None:
        parts.append(f"{RANKING_BEST} {ranking.top_k}")
    if ranking.min_score is not None:
        parts.append(f"{RANKING_MIN} {format_number(ranking.min_score)}")
    if ranking.drop_no_face:
        parts.append(RANKING_DROP)
    return "; ".join(parts)


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


FUSION_BACKEND_WORDS = "fusion"  # "inswapper fusion"
RESTORE_WORDS, VISIBILITY_WORDS, RESTORED_NOTE = "face restoration", "restoration visibility", "restored"


def _fusion_setting_text(fusion: FusionArgs) -> str:
    """The strength, then only the settings that differ from their defaults (so older infotexts read the same), in
    words: "0.7; inswapper fusion; face restoration on; restoration visibility 0.5"."""
    parts = [format_number(fusion.strength)]
    if fusion.backend != "auto":
        parts.append(f"{fusion.backend} {FUSION_BACKEND_WORDS}")
    if fusion.restore_face is not None:
        parts.append(f"{RESTORE_WORDS} {restore_choice(fusion.restore_face)}")
    if fusion.restore_visibility != 1.0:
        parts.append(f"{VISIBILITY_WORDS} {format_number(fusion.restore_visibility)}")
    return "; ".join(parts)


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
    """`FaceChain fusion` value: "off", or the strength and non-default settings, plus for one image in brackets whether
    the host's face restoration was applied ("(restored)") or why it was not fused ("(not applied - no face found)")."""
    if fusion is None or (isinstance(fusion, FusionArgs) and not fusion.enabled):
        return "off"
    text = _fusion_setting_text(fusion) if isinstance(fusion, FusionArgs) else format_number(fusion)
    if record is not None and not record.fused and record.fusion_note:
        text += f" (not applied - {note_words(record.fusion_note)})"
    elif record is not None and record.restored:
        text += f" ({RESTORED_NOTE})"
    return text


def _parse_fusion(text: str) -> FusionArgs:
    """The settings back from a `FaceChain fusion` value; the per-image note in brackets is not a setting. Older
    images' "0.7 backend=inswapper restore=on restore_visibility=0.5 restored" forms read the same."""
    text = re.sub(r"\s*\([^()]*\)$", "", str(text).strip()) or "off"
    parts = [p.strip() for p in text.split(";")] if ";" in text else text.split()
    if parts[0] == "off":
        return FusionArgs(enabled=False)
    values: dict[str, Any] = {"strength": float(parts[0])}
    for part in parts[1:]:
        key, _, raw = part.partition("=")
        if part.endswith(" " + FUSION_BACKEND_WORDS):
            values["backend"] = part[: -len(FUSION_BACKEND_WORDS) - 1]
        elif part.startswith(RESTORE_WORDS + " "):
            values["restore_face"] = restore_value(part[len(RESTORE_WORDS) + 1:])
        elif part.startswith(VISIBILITY_WORDS + " "):
            values["restore_visibility"] = float(part[len(VISIBILITY_WORDS) + 1:])
        elif key == "backend":
            values["backend"] = raw
        elif key == "restore":
            values["restore_face"] = restore_value(raw)
        elif key == "restore_visibility":
            values["restore_visibility"] = float(raw)
    return FusionArgs(**values)


def _parse_ranking(text: str) -> RankingArgs:
    """The `FaceChain ranking` value back to arguments: "on; best 4; min similarity 0.35; drops no-face images", or
    the older "on top_k=4 min_score=0.35 drop_no_face"."""
    text = str(text).strip()
    if not text or text.split()[0].rstrip(";") == "off":
        return RankingArgs(enabled=False)
    values: dict[str, Any] = {"enabled": True}
    parts = [p.strip() for p in text.split(";")] if ";" in text else text.split()
    for part in parts[1:]:
        key, _, raw = part.partition("=")
        if part.startswith(RANKING_BEST + " "):
            values["top_k"] = int(part[len(RANKING_BEST):])
        elif part.startswith(RANKING_MIN + " "):
            values["min_score"] = float(part[len(RANKING_MIN):])
        elif part == RANKING_DROP or key == "drop_no_face":
            values["drop_no_face"] = True
        elif key == "top_k":
            values["top_k"] = int(raw)
        elif key == "min_score":
            values["min_score"] = float(raw)
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
        raise FaceChainError("invalid_request", "The FaceChain values in these generation parameters cannot be read.",
                             detail=str(exc)) from exc


def similarity_text(record: Optional[ImageRecord]) -> Optional[str]:
    """Infotext value of `FaceChain similarity` for one image."""
    if record is None or (record.score is None and record.score_note is None):
        return None
    if record.score is not None:
        return format_number(record.score)
    return f"none ({note_words(record.score_note)})" if record.score_note else "none"
