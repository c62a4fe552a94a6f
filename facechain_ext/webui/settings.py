"""FaceChain's page in the host's Settings tab (section "FaceChain"; every key starts with `facechain_`).

Values are read through `host.read_settings()` (paths, backend, downloads) or directly by the views/routes that
use them as defaults (`option_value`). `add_options(opts, on_change)` runs inside the host's on_ui_settings.
"""

from __future__ import annotations

from typing import Any, Callable

from .host import FACE_BACKENDS

SECTION = ("facechain", "FaceChain")

# key -> (default, label, component kind, component args, restrict_api)
OPTIONS: dict[str, tuple[Any, str, str, dict, bool]] = {
    "facechain_face_backend": (
        "auto", "Face analysis backend (auto: insightface when its buffalo_l pack is present, else dlib)",
        "radio", {"choices": list(FACE_BACKENDS)}, False),
    "facechain_allow_downloads": (
        False, "Allow FaceChain to download optional models listed in its manifest (never at start-up; "
        "--facechain-offline forbids it)", "checkbox", {}, False),
    "facechain_lora_weight": (
        0.9, "Default weight of an identity LoRA whose file states no preferred weight", "slider",
        {"minimum": 0.0, "maximum": 1.5, "step": 0.05}, False),
    "facechain_fusion_strength": (
        0.7, "Default face fusion strength after generation (0 = off)", "slider",
        {"minimum": 0.0, "maximum": 1.0, "step": 0.05}, False),
    "facechain_ranking_top_k": (
        0, "Keep only the best K images by face similarity (0 = keep all)", "slider",
        {"minimum": 0, "maximum": 16, "step": 1}, False),
    "facechain_fact_keep_on_gpu": (
        False, "Keep the FACT face adapter on the GPU between generations (faster start, about 0.5 GB of VRAM held)",
        "checkbox", {}, False),
    "facechain_training_preset": (
        "fast", "Default LoRA training preset", "radio", {"choices": ["fast", "quality"]}, False),
    "facechain_styles_dirs": (
        "", "Extra folders with FaceChain style files (comma separated)", "textbox", {}, True),
}

# settings that change which face models are loaded: the context must forget its analyzers
RELOADING_KEYS = ("facechain_face_backend", "facechain_allow_downloads", "facechain_styles_dirs")


def _component(kind: str) -> Callable[..., Any] | None:
    import gradio as gr

    return {"radio": gr.Radio, "checkbox": gr.Checkbox, "slider": gr.Slider, "textbox": gr.Textbox}.get(kind)


def add_options(opts: Any, option_info: Callable[..., Any], on_change: Callable[[], None] | None = None) -> list[str]:
    """Register our options with the host (`opts.add_option(key, OptionInfo(...))`); returns the keys added."""
    for key, (default, label, kind, args, restrict) in OPTIONS.items():
        info = option_info(
            default,
            label,
            _component(kind),
            dict(args) or None,
            onchange=on_change if key in RELOADING_KEYS else None,
            section=SECTION,
            restrict_api=restrict,
        )
        opts.add_option(key, info)
    return list(OPTIONS)


def option_value(opts: Any, key: str) -> Any:
    """Current value of one of our options, or its default when the host has not registered it yet."""
    default = OPTIONS[key][0]
    try:
        value = getattr(opts, key)
    except AttributeError:
        return default
    return default if value is None else value


def ui_default(key: str) -> Any:
    """The user's default for a control (Settings → FaceChain), read when the control is built."""
    from modules import shared

    return option_value(shared.opts, key)
