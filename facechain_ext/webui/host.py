"""Everything FaceChain reads from the host: which host it is (A1111 or Forge) and the Settings it implies.

`host_variant()` is the ONE host-variant detection the rest of the glue asks. Feature detection only
(HOST_CONTRACT §9): Forge is the host that ships the `modules_forge` package.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Literal

from ..config import Settings, modelscope_endpoint_from_env

FACE_BACKENDS = ("auto", "insightface", "dlib")


HostVariant = Literal["a1111", "forge"]


def host_variant() -> HostVariant:
    """"forge" when the `modules_forge` package is importable, else "a1111" (the /version `host` field)."""
    try:
        found = importlib.util.find_spec("modules_forge") is not None
    except (ImportError, ValueError):
        found = False
    return "forge" if found else "a1111"


def is_forge() -> bool:
    return host_variant() == "forge"


def js_kwargs(function_name: str) -> dict[str, str]:
    """The event argument that runs a JS function first: `_js=` on gradio 3 (A1111), `js=` on gradio 4 (Forge)."""
    return {"js": function_name} if gradio_major() >= 4 else {"_js": function_name}


def gradio_major() -> int:
    try:
        from importlib.metadata import version

        return int(version("gradio").split(".")[0])
    except Exception:  # noqa: BLE001 - unknown gradio: assume the A1111 one
        return 3


def api_enabled(cmd_opts: Any) -> bool:
    """The host adds its API only with --api or --nowebui; so do we (issue 2 §5)."""
    return bool(getattr(cmd_opts, "api", False) or getattr(cmd_opts, "nowebui", False))


def _opt(opts: Any, key: str, default: Any) -> Any:
    """An option value even before our on_ui_settings ran (then config.json's value, or our default)."""
    try:
        value = getattr(opts, key)
    except AttributeError:
        return default
    return default if value is None else value


def _dirs(value: str) -> tuple[Path, ...]:
    parts = [p.strip() for chunk in str(value or "").splitlines() for p in chunk.split(",")]
    return tuple(Path(os.path.expanduser(p)) for p in parts if p)


def settings_from(paths_models: str, cmd_opts: Any, opts: Any) -> Settings:
    """Settings from the host's models path, command line and options (pure: testable with plain objects)."""
    models_dir = getattr(cmd_opts, "facechain_models_dir", None) or os.path.join(paths_models, "facechain")
    lora_dir: str | None = getattr(cmd_opts, "lora_dir", None) or os.path.join(paths_models, "Lora")
    backend = str(_opt(opts, "facechain_face_backend", "auto"))
    return Settings(
        models_dir=Path(models_dir),
        insightface_root=Path(paths_models) / "insightface",
        lora_dir=Path(lora_dir),
        face_backend=backend if backend in FACE_BACKENDS else "auto",
        offline=bool(getattr(cmd_opts, "facechain_offline", False)),
        allow_downloads=bool(_opt(opts, "facechain_allow_downloads", False)),
        styles_dirs=_dirs(_opt(opts, "facechain_styles_dirs", "")),
        modelscope_endpoint=modelscope_endpoint_from_env(),
    )


def read_settings() -> Settings:
    from modules import paths, shared

    return settings_from(paths.models_path, shared.cmd_opts, shared.opts)
