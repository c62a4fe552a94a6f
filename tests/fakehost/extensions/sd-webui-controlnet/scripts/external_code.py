"""Stand-in for sd-webui-controlnet's external API (Mikubill/sd-webui-controlnet `scripts/external_code.py`, which
re-exports `internal_controlnet/external_code.py`; `ControlNetUnit` from `internal_controlnet/args.py`).

Same names, arguments and behaviour for what other extensions use: `ControlNetUnit` (keyword fields with the same
defaults; unknown preprocessor or out-of-range weight/guidance raise ValueError like its validators),
`get_models()` (the model list: "None" plus the titles of the files in its model folder), `get_modules()`
(preprocessor names), `find_cn_script`/`is_cn_script` (by title "controlnet"), `get_all_units*`,
`update_cn_script`/`update_cn_script_in_processing` (writes the units into the runner's argument slice, padded with
disabled units to `control_net_unit_count`, shifting the later scripts' slices), `get_api_version()`.
Tests set `MODELS`/`PREPROCESSORS` (what would be on disk); nothing here runs a network.
"""

from __future__ import annotations

from copy import copy

from modules import shared

MODELS: list[str] = ["None"]
DEFAULT_PREPROCESSORS = ("none", "canny", "openpose", "openpose_face", "openpose_faceonly", "openpose_full",
                         "openpose_hand", "dw_openpose_full", "depth_midas", "reference_only")
PREPROCESSORS: list[str] = list(DEFAULT_PREPROCESSORS)


def get_api_version() -> int:
    return 3


class ControlNetUnit:
    """Fields and defaults of internal_controlnet/args.py `ControlNetUnit` (the ones a caller sets)."""

    FIELDS = {
        "enabled": False, "module": "none", "model": "None", "weight": 1.0, "image": None,
        "resize_mode": "Crop and Resize", "low_vram": False, "processor_res": -1, "threshold_a": -1, "threshold_b": -1,
        "guidance_start": 0.0, "guidance_end": 1.0, "pixel_perfect": False, "control_mode": "Balanced",
        "inpaint_crop_input_image": True, "hr_option": "Both", "save_detected_map": True, "mask": None,
        "advanced_weighting": None, "effective_region_mask": None,
    }

    def __init__(self, **kwargs):
        for name, default in self.FIELDS.items():
            setattr(self, name, kwargs.pop(name, copy(default)))
        # extra = "ignore" in its pydantic config
        if self.module not in PREPROCESSORS:
            raise ValueError(f"module({self.module}) not found in supported modules.")
        if not 0.0 <= float(self.weight) <= 2.0:
            raise ValueError("weight: ensure this value is between 0 and 2")
        if self.guidance_start > self.guidance_end:
            raise ValueError(f"guidance_start({self.guidance_start}) > guidance_end({self.guidance_end})")

    @classmethod
    def from_dict(cls, d):
        return cls(**{k: v for k, v in d.items() if k in cls.FIELDS})


def get_models(update: bool = False) -> list[str]:
    return list(MODELS)


def get_modules(alias_names: bool = False) -> list[str]:
    return list(PREPROCESSORS)


def is_cn_script(script) -> bool:
    return script.title().lower() == "controlnet"


def find_cn_script(script_runner):
    if script_runner is None:
        return None
    for script in script_runner.alwayson_scripts:
        if is_cn_script(script):
            return script
    return None


def to_processing_unit(unit):
    if isinstance(unit, dict):
        return ControlNetUnit.from_dict(unit)
    assert isinstance(unit, ControlNetUnit)
    return unit


def get_all_units_from(script_args):
    return [to_processing_unit(a) for a in script_args if isinstance(a, (ControlNetUnit, dict))]


def get_all_units(script_runner, script_args):
    cn_script = find_cn_script(script_runner)
    if cn_script:
        return get_all_units_from(script_args[cn_script.args_from:cn_script.args_to])
    return []


def get_all_units_in_processing(p):
    return get_all_units(p.scripts, p.script_args)


def update_cn_script(script_runner, script_args, cn_units):
    script_args_type = type(script_args)
    assert script_args_type in (tuple, list), script_args_type
    updated = list(copy(script_args))
    cn_script = find_cn_script(script_runner)
    if cn_script is None or len(script_args) < cn_script.args_from:
        return script_args
    max_models = shared.opts.data.get("control_net_unit_count", 3)
    cn_units = cn_units + [ControlNetUnit(enabled=False)] * max(max_models - len(cn_units), 0)
    diff = 0
    for script in script_runner.alwayson_scripts:
        if script is cn_script:
            diff = len(cn_units) - (cn_script.args_to - cn_script.args_from)
            updated[script.args_from:script.args_to] = cn_units
            script.args_to = script.args_from + len(cn_units)
        else:
            script.args_from += diff
            script.args_to += diff
    return script_args_type(updated)


def update_cn_script_in_processing(p, cn_units, **_kwargs):
    p.script_args = update_cn_script(p.scripts, p.script_args_value, cn_units)
