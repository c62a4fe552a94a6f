"""Test helpers around the fake host (not part of the host API): a fresh host per test, like a restart.

`reset_host(tmp, argv)` points `modules.paths` at `tmp`, re-parses `cmd_opts` in place (with extensions' preload
flags), rebuilds `opts`/`state`, clears callbacks (as `load_scripts()` does) and forgets reported errors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from modules import paths as _paths

ORIGINAL_DATA_DIR = _paths.data_path  # where the fake host started; `fake_host` returns there after each test


def reset_host(data_dir: os.PathLike | None = None, argv: Sequence[str] = ()) -> None:
    from modules import (
        devices,
        errors,
        extensions,
        infotext_utils,
        options,
        paths,
        progress,
        script_callbacks,
        scripts,
        shared,
        shared_cmd_options,
    )

    if data_dir is not None:
        paths.data_path = str(data_dir)
        paths.models_path = str(Path(data_dir) / "models")
    fresh = shared_cmd_options.parse(list(argv))
    namespace = shared_cmd_options.cmd_opts
    vars(namespace).clear()
    vars(namespace).update(vars(fresh))
    devices.apply_cmd_opts(namespace)
    # in place: host modules bind `opts`/`state` once (`from modules.shared import opts`). Setting an option that is
    # not registered yet makes a plain attribute (as Options.__setattr__ does in the host): a fresh host has none.
    for name in [key for key in vars(shared.opts) if key not in options.options_builtin_fields]:
        delattr(shared.opts, name)
    shared.opts.__init__(options.builtin_options(), shared.restricted_opts)
    vars(shared.state).clear()
    shared.state.__init__()
    shared.sd_model = None
    shared.face_restorers.clear()
    script_callbacks.clear_callbacks()
    errors.exception_records.clear()
    progress.current_task = None
    progress.pending_tasks.clear()
    progress.finished_tasks.clear()
    extensions.extensions.clear()
    infotext_utils.registered_param_bindings.clear()
    infotext_utils.paste_fields.clear()
    scripts.scripts_txt2img = scripts.scripts_img2img = None


def start_app(app, demo=None):
    """Start the host's app as webui.py does: with --nowebui, `api_only()` (create_api, then app_started callbacks with
    demo=None); otherwise `webui()` (create_api only with --api, then app_started callbacks). create_api raises for a
    malformed --api-auth, exactly where the real host stops starting. Returns the `Api` object or None."""
    from modules import call_queue, script_callbacks, shared
    from modules.api.api import Api

    api = None
    if shared.cmd_opts.nowebui or shared.cmd_opts.api:
        api = Api(app, call_queue.queue_lock)
    script_callbacks.app_started_callback(None if shared.cmd_opts.nowebui else demo, app)
    return api


def load_model(model, device=None):
    """Make `model` the loaded checkpoint as modules/sd_models.py load_model_weights does: weights in half precision
    unless --no-half (the VAE in float32 with --no-half-vae), moved to `device` (default devices.device), then the
    model_loaded callbacks. Returns the model (changed in place, like the host's)."""
    import torch
    from modules import devices, script_callbacks, shared

    if shared.cmd_opts.no_half:
        model.float()
    else:
        vae = getattr(model, "first_stage_model", None)
        if shared.cmd_opts.no_half_vae:
            model.first_stage_model = None  # the host keeps the VAE out of model.half()
        model.half()
        if shared.cmd_opts.no_half_vae:
            model.first_stage_model = vae
    if getattr(model, "first_stage_model", None) is not None:
        model.first_stage_model.to(devices.dtype_vae)
    alphas = getattr(model, "alphas_cumprod", None)
    if isinstance(alphas, torch.Tensor):  # sd_models keeps the noise schedule in float32
        model.alphas_cumprod = alphas.float()
    model.to(device or devices.device)
    shared.sd_model = model
    script_callbacks.model_loaded_callback(model)
    return model


def reported_errors() -> list[dict]:
    from modules import errors

    return list(errors.exception_records)


def install_controlnet(models: Sequence[str] = (), preprocessors: Sequence[str] | None = None):
    """Install the sd-webui-controlnet stand-in (tests/fakehost/extensions) as the host would find it: listed in
    `modules.extensions`, its AlwaysVisible script in the img2img and txt2img runners (after one other script, so
    argument slices do not start at 0), `models` in its model list. Returns its external_code module."""
    import importlib

    from modules import extensions, scripts

    name = "sd-webui-controlnet"
    path = Path(__file__).resolve().parent / "extensions" / name
    extensions.extensions.append(extensions.Extension(name, str(path)))
    external_code = importlib.import_module(f"extensions.{name}.scripts.external_code")
    controlnet = importlib.import_module(f"extensions.{name}.scripts.controlnet")
    external_code.MODELS[:] = ["None", *models]
    external_code.PREPROCESSORS[:] = list(external_code.DEFAULT_PREPROCESSORS if preprocessors is None else preprocessors)
    controlnet.RECORDED.clear()
    for attr in ("scripts_txt2img", "scripts_img2img"):
        runner = scripts.ScriptRunner()
        other, cn = scripts.Script(), controlnet.Script()
        other.title = lambda: "Other"  # an unrelated always-on script before ControlNet, as in a real host
        other.args_from, other.args_to = 0, 2
        cn.args_from, cn.args_to = 2, 5
        other.alwayson = cn.alwayson = True
        runner.scripts = runner.alwayson_scripts = [other, cn]
        setattr(scripts, attr, runner)
    return external_code
