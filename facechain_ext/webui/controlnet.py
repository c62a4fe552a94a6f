"""Pose and edge guidance through the host's ControlNet extension (Mikubill/sd-webui-controlnet), when it is there.

Found the way other extensions find it: an active extension with `scripts/external_code.py`, imported as
`extensions.<folder>.scripts.external_code` (the webui root is on sys.path and `extensions` is a namespace package;
ADetailer and others do the same). We use only its documented external API (`internal_controlnet/external_code.py`):
`get_models()` (its own model list: we never download a model), `get_modules()` (preprocessors), `find_cn_script`,
`ControlNetUnit`, `update_cn_script_in_processing`. Each face pass gets its own ScriptRunner holding a *shallow copy*
of the img2img runner's ControlNet script: its argument slice is set on the copy, so the host's runner (which the
img2img tab and API use) is never touched, and no second instance registers ControlNet's batch callbacks.

Absent extension, missing models or a missing preprocessor never raise: `find_guidance` returns no units and a
sentence saying what is missing, which the job shows once as a comment (and the tab shows as its status line).
"""

from __future__ import annotations

import copy
import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PIL import Image

from ..templates.guidance import CANNY_WEIGHT, POSE_WEIGHT, GuidanceRequest, canny_map, is_pose_skeleton

log = logging.getLogger("facechain")

EXTERNAL_CODE = ("scripts", "external_code.py")
# FaceChain ran openpose with hands and without face keypoints (controlnet_aux `include_hand=True, include_face=False`);
# the closest preprocessors of sd-webui-controlnet, best first.
POSE_PREPROCESSORS = ("openpose_hand", "openpose", "dw_openpose_full", "openpose_full")
INSTALL_HINT = ("install the sd-webui-controlnet extension (Extensions -> Available) and put the ControlNet 1.1 "
                "models control_v11p_sd15_openpose and control_v11p_sd15_canny in its model folder")


@dataclass
class ControlNetBridge:
    external_code: Any
    script: Any  # the ControlNet script of the host's img2img runner (read only: passes use a shallow copy)
    models: list[str]
    preprocessors: list[str]


@dataclass
class GuidanceUnits:
    """The units every face pass of one job gets, and what to tell the user about guidance."""

    bridge: Optional[ControlNetBridge]
    units: list[Any] = field(default_factory=list)
    used: list[str] = field(default_factory=list)  # e.g. ["openpose", "canny"]
    note: str = ""  # visible once per job when guidance was asked for but is (partly) unavailable

    @property
    def label(self) -> str:
        return "+".join(self.used) if self.used else "none"


def find_controlnet(runner_name: str = "scripts_img2img") -> tuple[Optional[ControlNetBridge], str]:
    """The host's ControlNet, or None and why not (a sentence naming what to install)."""
    from modules import extensions, scripts

    active = extensions.active()
    ext = next((e for e in active if (Path(e.path).joinpath(*EXTERNAL_CODE)).is_file()), None)
    if ext is None:
        forge = next((e for e in active if (Path(e.path) / "lib_controlnet" / "external_code.py").is_file()), None)
        if forge is not None:  # Forge's built-in ControlNet: another external API, not supported yet
            return None, f"{forge.name} (Forge's built-in ControlNet) is not supported by FaceChain's guidance yet."
        return None, f"ControlNet is not installed: {INSTALL_HINT}."
    folder = Path(ext.path)
    module_name = f"{folder.parent.name}.{folder.name}.scripts.external_code"
    try:
        external_code = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - a broken extension must not break FaceChain
        log.warning("FaceChain: could not import %s: %s", module_name, exc)
        return None, f"ControlNet ({ext.name}) could not be loaded ({type(exc).__name__}: {exc})."
    needed = ("get_models", "get_modules", "find_cn_script", "ControlNetUnit", "update_cn_script_in_processing")
    missing = [name for name in needed if not hasattr(external_code, name)]
    if missing:
        return None, f"ControlNet ({ext.name}) is too old: its external API lacks {', '.join(missing)}; update it."
    script = external_code.find_cn_script(getattr(scripts, runner_name, None))
    if script is None:
        return None, f"ControlNet ({ext.name}) is installed but its script is not active in img2img."
    try:
        models, preprocessors = list(external_code.get_models()), list(external_code.get_modules())
    except Exception as exc:  # noqa: BLE001
        return None, f"ControlNet ({ext.name}) could not list its models ({type(exc).__name__}: {exc})."
    return ControlNetBridge(external_code, script, models, preprocessors), ""


def pick_model(models: list[str], kind: str, *, sdxl: bool = False) -> Optional[str]:
    """A model of ControlNet's own list whose name says `kind` ("openpose", "canny") and matches the checkpoint
    family (names with "xl" are SDXL models); ControlNet 1.1 (`v11`) names first."""
    matching = [m for m in models if kind in m.lower() and m != "None" and ("xl" in m.lower()) == sdxl]
    return sorted(matching, key=lambda m: ("v11" not in m.lower(), m.lower()))[0] if matching else None


def find_guidance(request: GuidanceRequest, template: Image.Image, blank: np.ndarray, *, sdxl: bool = False) -> GuidanceUnits:
    """ControlNet units for FaceChain's template guidance (see templates.guidance), or none and a note saying why."""
    if not request.any:
        return GuidanceUnits(None)
    bridge, reason = find_controlnet()
    if bridge is None:
        return GuidanceUnits(None, note=f"FaceChain: no pose/edge guidance ({reason}).")
    out, missing = GuidanceUnits(bridge), []
    pixels = np.asarray(template.convert("RGB"))
    if request.pose:
        model = pick_model(bridge.models, "openpose", sdxl=sdxl)
        module = next((m for m in POSE_PREPROCESSORS if m in bridge.preprocessors), None)
        if model and module:
            out.units.append(_unit(bridge, module, model, POSE_WEIGHT, pixels))
            out.used.append("openpose")
        else:
            missing.append("an openpose model" if not model else "an openpose preprocessor")
    if request.canny:
        model = pick_model(bridge.models, "canny", sdxl=sdxl)
        if model and "none" in bridge.preprocessors:
            out.units.append(_unit(bridge, "none", model, CANNY_WEIGHT, canny_map(template, blank)))
            out.used.append("canny")
        else:
            missing.append("a canny model")
    if missing:
        listed = ", ".join(m for m in bridge.models if m != "None") or "none"
        out.note = (f"FaceChain: ControlNet lacks {' and '.join(missing)} (its models: {listed}); the face passes run "
                    "without that guidance. FaceChain uses control_v11p_sd15_openpose and control_v11p_sd15_canny.")
    return out


def find_pose_guidance(pose: Image.Image, *, sdxl: bool = False, runner_name: str = "scripts_txt2img") -> GuidanceUnits:
    """One openpose unit for a txt2img pose image: a skeleton render is used as is (preprocessor "none"), a photo
    goes through ControlNet's openpose preprocessor when it has one. Otherwise no unit and a note saying why."""
    bridge, reason = find_controlnet(runner_name)
    if bridge is None:
        return GuidanceUnits(None, note=f"FaceChain: the pose image is not used ({reason}).")
    model = pick_model(bridge.models, "openpose", sdxl=sdxl)
    if model is None:
        listed = ", ".join(m for m in bridge.models if m != "None") or "none"
        return GuidanceUnits(bridge, note=f"FaceChain: the pose image is not used: ControlNet has no openpose model "
                                          f"(its models: {listed}); add control_v11p_sd15_openpose.")
    skeleton = is_pose_skeleton(pose)
    module = "none" if skeleton else next((m for m in POSE_PREPROCESSORS if m in bridge.preprocessors), None)
    if module is None:
        return GuidanceUnits(bridge, note="FaceChain: the pose image looks like a photo and ControlNet has no openpose "
                                          "preprocessor; give an openpose skeleton image instead.")
    unit = _unit(bridge, module, model, POSE_WEIGHT, np.asarray(pose.convert("RGB")))
    return GuidanceUnits(bridge, units=[unit], used=["openpose skeleton" if skeleton else "openpose from photo"])


def _unit(bridge: ControlNetBridge, module: str, model: str, weight: float, image: np.ndarray) -> Any:
    # The control image is the whole template: for "only masked" img2img ControlNet crops it to the host's crop
    # itself (`inpaint_crop_input_image`, scripts/controlnet.py `choose_input_image`).
    return bridge.external_code.ControlNetUnit(
        enabled=True, module=module, model=model, weight=float(weight), image=np.ascontiguousarray(image),
        resize_mode="Crop and Resize", pixel_perfect=True, guidance_start=0.0, guidance_end=1.0,
        control_mode="Balanced", inpaint_crop_input_image=True,
    )


def attach_units(p: Any, guidance: GuidanceUnits) -> None:
    """Add a copy of ControlNet's script to `p.scripts` (after the scripts already there) with the job's units."""
    if guidance.bridge is None or not guidance.units:
        return
    runner = p.scripts
    cn = copy.copy(guidance.bridge.script)
    cn.args_from = cn.args_to = len(p.script_args or [])
    runner.scripts = [*runner.scripts, cn]
    runner.alwayson_scripts = [*runner.alwayson_scripts, cn]
    guidance.bridge.external_code.update_cn_script_in_processing(p, list(guidance.units))


def status_markdown() -> str:
    """One line for the Templates view: is ControlNet there, and which of FaceChain's models does it have."""
    bridge, reason = find_controlnet()
    if bridge is None:
        return f"Pose/edge guidance: **off**. {reason} Templates work without it."
    pose, canny = pick_model(bridge.models, "openpose"), pick_model(bridge.models, "canny")
    have = ", ".join(f"{kind}: `{name}`" for kind, name in (("openpose", pose), ("canny", canny)) if name)
    lacking = [kind for kind, name in (("control_v11p_sd15_openpose", pose), ("control_v11p_sd15_canny", canny)) if not name]
    text = f"Pose/edge guidance through ControlNet: {have or 'no suitable model'}."
    if lacking:
        text += f" Missing from its model list: {', '.join(lacking)} (put them in ControlNet's model folder)."
    return text
