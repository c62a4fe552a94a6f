"""Stand-in for modules/script_callbacks.py (A1111 1.10): registration `on_<x>(fn, *, name=None)` and the host's
firing functions (`app_started_callback(demo, app)`, `ui_tabs_callback()`, ...), which report callback errors to
`modules.errors` instead of raising, like the host. `clear_callbacks()` is what `load_scripts()` runs on Reload UI.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from typing import Any, Callable

from modules import errors


class ImageSaveParams:
    def __init__(self, image, p, filename, pnginfo):
        self.image = image
        self.p = p
        self.filename = filename
        self.pnginfo = pnginfo


class CFGDenoiserParams:
    def __init__(self, x, image_cond, sigma, sampling_step, total_sampling_steps, text_cond, text_uncond, denoiser=None):
        self.x = x
        self.image_cond = image_cond
        self.sigma = sigma
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps
        self.text_cond = text_cond
        self.text_uncond = text_uncond
        self.denoiser = denoiser


class CFGDenoisedParams:
    def __init__(self, x, sampling_step, total_sampling_steps, inner_model):
        self.x = x
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps
        self.inner_model = inner_model


@dataclasses.dataclass
class ScriptCallback:
    script: str
    callback: Callable
    name: str | None = None


callback_map: dict[str, list[ScriptCallback]] = dict(
    callbacks_app_started=[],
    callbacks_model_loaded=[],
    callbacks_ui_tabs=[],
    callbacks_ui_settings=[],
    callbacks_before_image_saved=[],
    callbacks_image_saved=[],
    callbacks_cfg_denoiser=[],
    callbacks_cfg_denoised=[],
    callbacks_script_unloaded=[],
    callbacks_before_ui=[],
    callbacks_after_component=[],
)


def add_callback(callbacks: list[ScriptCallback], fun: Callable, *, name: str | None = None, category: str = "unknown") -> None:
    stack = [x for x in inspect.stack() if x.filename != __file__]
    filename = stack[0].filename if stack else "unknown file"
    callback_name = f"{os.path.basename(filename)}/{category}" + (f"/{name}" if name is not None else "")
    unique = callback_name
    for index in range(1000):
        if not any(x.name == unique for x in callbacks):
            break
        unique = f"{callback_name}-{index + 1}"
    callbacks.append(ScriptCallback(filename, fun, unique))


def clear_callbacks() -> None:
    for callback_list in callback_map.values():
        callback_list.clear()


def _report(c: ScriptCallback, job: str) -> None:
    errors.report(f"Error executing callback {job} for {c.script}", exc_info=True)


def _fire(key: str, job: str, *args: Any) -> None:
    for c in callback_map[key]:
        try:
            c.callback(*args)
        except Exception:  # noqa: BLE001 - the host reports callback errors and goes on
            _report(c, job)


def app_started_callback(demo, app) -> None:
    _fire("callbacks_app_started", "app_started_callback", demo, app)


def model_loaded_callback(sd_model) -> None:
    _fire("callbacks_model_loaded", "model_loaded_callback", sd_model)


def ui_tabs_callback() -> list:
    res: list = []
    for c in callback_map["callbacks_ui_tabs"]:
        try:
            res += c.callback() or []
        except Exception:  # noqa: BLE001
            _report(c, "ui_tabs_callback")
    return res


def after_component_callback(component, **kwargs) -> None:
    """Fired by the host's patched gradio component __init__ (modules/gradio_extensons.py) after every component."""
    for c in callback_map["callbacks_after_component"]:
        try:
            c.callback(component, **kwargs)
        except Exception:  # noqa: BLE001
            _report(c, "after_component_callback")


def ui_settings_callback() -> None:
    _fire("callbacks_ui_settings", "ui_settings_callback")


def before_image_saved_callback(params: ImageSaveParams) -> None:
    _fire("callbacks_before_image_saved", "before_image_saved_callback", params)


def image_saved_callback(params: ImageSaveParams) -> None:
    _fire("callbacks_image_saved", "image_saved_callback", params)


def cfg_denoiser_callback(params: CFGDenoiserParams) -> None:
    _fire("callbacks_cfg_denoiser", "cfg_denoiser_callback", params)


def cfg_denoised_callback(params: CFGDenoisedParams) -> None:
    _fire("callbacks_cfg_denoised", "cfg_denoised_callback", params)


def script_unloaded_callback() -> None:
    for c in reversed(callback_map["callbacks_script_unloaded"]):
        try:
            c.callback()
        except Exception:  # noqa: BLE001
            _report(c, "script_unloaded")


def before_ui_callback() -> None:
    for c in reversed(callback_map["callbacks_before_ui"]):
        try:
            c.callback()
        except Exception:  # noqa: BLE001
            _report(c, "before_ui")


def remove_callbacks_for_function(callback_func: Callable) -> None:
    for callback_list in callback_map.values():
        for callback_to_remove in [cb for cb in callback_list if cb.callback == callback_func]:
            callback_list.remove(callback_to_remove)


def on_app_started(callback, *, name=None):
    add_callback(callback_map["callbacks_app_started"], callback, name=name, category="app_started")


def on_model_loaded(callback, *, name=None):
    add_callback(callback_map["callbacks_model_loaded"], callback, name=name, category="model_loaded")


def on_ui_tabs(callback, *, name=None):
    add_callback(callback_map["callbacks_ui_tabs"], callback, name=name, category="ui_tabs")


def on_ui_settings(callback, *, name=None):
    add_callback(callback_map["callbacks_ui_settings"], callback, name=name, category="ui_settings")


def on_before_image_saved(callback, *, name=None):
    add_callback(callback_map["callbacks_before_image_saved"], callback, name=name, category="before_image_saved")


def on_image_saved(callback, *, name=None):
    add_callback(callback_map["callbacks_image_saved"], callback, name=name, category="image_saved")


def on_cfg_denoiser(callback, *, name=None):
    add_callback(callback_map["callbacks_cfg_denoiser"], callback, name=name, category="cfg_denoiser")


def on_cfg_denoised(callback, *, name=None):
    add_callback(callback_map["callbacks_cfg_denoised"], callback, name=name, category="cfg_denoised")


def on_script_unloaded(callback, *, name=None):
    add_callback(callback_map["callbacks_script_unloaded"], callback, name=name, category="script_unloaded")


def on_after_component(callback, *, name=None):
    add_callback(callback_map["callbacks_after_component"], callback, name=name, category="after_component")


def on_before_ui(callback, *, name=None):
    add_callback(callback_map["callbacks_before_ui"], callback, name=name, category="before_ui")
