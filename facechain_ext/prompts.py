"""Prompt assembly: add the identity's LoRA, trigger/phrase and a style to prompts without repeating the user.

Prompts are compared fragment by fragment (comma-separated parts), case- and whitespace-insensitively and on word
boundaries, so "photo of FCSKS smiling" already contains the trigger "fcsks"; a `<lora:NAME:...>` the user typed wins
over ours. Applying a plan twice changes nothing (pasting a FaceChain infotext back and generating again is safe).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from .styles import IDENTITY_PLACEHOLDER, Style

DEFAULT_LORA_WEIGHT = 0.9  # FaceChain used 0.8-0.95 for the face LoRA


def format_number(value: float, digits: int = 3) -> str:
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


_LORA_TAG = re.compile(r"<lora:([^:>]+)(?::[^>]*)?>", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_COMMA = re.compile(r"\s*,\s*")


@dataclass(frozen=True)
class PromptPlan:
    """What FaceChain adds to every prompt of a job."""

    activation: str = ""  # the identity's trigger + phrase, e.g. "fcsks, a woman"
    face_lora: Optional[str] = None
    face_weight: float = DEFAULT_LORA_WEIGHT  # already scaled by the style's face multiplier
    style_prompt: str = ""
    style_negative: str = ""
    style_lora: Optional[str] = None
    style_weight: float = 0.0


def plan_prompts(
    *,
    activation: str,
    lora_name: Optional[str],
    lora_weight: float,
    style: Optional[Style] = None,
    style_lora_available: bool = False,
) -> PromptPlan:
    """Combine identity, LoRA and style into a PromptPlan (the style's face multiplier scales the LoRA weight)."""
    multiplier = style.face_lora_multiplier if style is not None else 1.0
    use_style_lora = style is not None and style.style_lora is not None and style_lora_available
    return PromptPlan(
        activation=activation.strip(),
        face_lora=lora_name,
        face_weight=lora_weight * multiplier,
        style_prompt=style.prompt if style is not None else "",
        style_negative=style.negative_prompt if style is not None else "",
        style_lora=style.style_lora.prompt_name if use_style_lora else None,  # type: ignore[union-attr]
        style_weight=style.style_multiplier if use_style_lora else 0.0,  # type: ignore[union-attr]
    )


def _normalise(text: str) -> str:
    text = _LORA_TAG.sub(" ", text)
    return _COMMA.sub(", ", _SPACES.sub(" ", text.lower())).strip(" ,")


def fragments(text: str) -> list[str]:
    """Comma-separated parts of a prompt, trimmed, empties dropped."""
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


def _contains(normalised_text: str, fragment: str) -> bool:
    needle = _normalise(fragment)
    if not needle:
        return True
    return re.search(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", normalised_text) is not None


def lora_names(text: str) -> set[str]:
    return {match.group(1).strip().lower() for match in _LORA_TAG.finditer(text)}


def lora_tag(name: str, weight: float) -> str:
    return f"<lora:{name}:{format_number(weight, 2)}>"


def _identity_and_style(user: str, plan: PromptPlan) -> list[str]:
    """Fragments to add for the identity and the style, skipping what `user` already says."""
    existing = _normalise(user)
    missing_identity = [f for f in fragments(plan.activation) if not _contains(existing, f)]
    added: list[str] = []
    if IDENTITY_PLACEHOLDER not in plan.style_prompt:
        added.extend(missing_identity)
    for template in fragments(plan.style_prompt):
        if IDENTITY_PLACEHOLDER in template:
            if _contains(existing, template.replace(IDENTITY_PLACEHOLDER, plan.activation)):
                continue  # the user pasted our earlier prompt: nothing to add here
            # identity words the user already typed are not repeated; "the subject" keeps the sentence readable
            template = template.replace(IDENTITY_PLACEHOLDER, ", ".join(missing_identity) or "the subject")
        added.extend(f for f in fragments(template) if not _contains(existing, f))
    unique: list[str] = []
    for fragment in added:
        if not any(_normalise(fragment) == _normalise(seen) for seen in unique):
            unique.append(fragment)
    return unique


def build_prompt(user_prompt: str, plan: PromptPlan) -> str:
    """The user's prompt plus identity, style and LoRA tags that are not already in it (idempotent)."""
    parts = [user_prompt.strip().rstrip(",")] if user_prompt.strip() else []
    parts.extend(_identity_and_style(user_prompt, plan))
    present = lora_names(user_prompt)
    tags = []
    if plan.face_lora and plan.face_lora.lower() not in present:
        tags.append(lora_tag(plan.face_lora, plan.face_weight))
    if plan.style_lora and plan.style_lora.lower() not in present:
        tags.append(lora_tag(plan.style_lora, plan.style_weight))
    text = ", ".join(parts)
    return " ".join([text] + tags).strip() if tags else text


def build_negative(user_negative: str, plan: PromptPlan) -> str:
    existing = _normalise(user_negative)
    parts = [user_negative.strip().rstrip(",")] if user_negative.strip() else []
    for fragment in fragments(plan.style_negative):
        if not _contains(existing, fragment):
            parts.append(fragment)
            existing = _normalise(", ".join(parts))
    return ", ".join(parts)


def build_prompts(prompts: list[str], negative_prompts: list[str], plan: PromptPlan) -> tuple[list[str], list[str]]:
    """Apply the plan to a batch of prompts and negative prompts (lists of equal length)."""
    return [build_prompt(text, plan) for text in prompts], [build_negative(text, plan) for text in negative_prompts]
