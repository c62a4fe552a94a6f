"""register(): settings, tab, routes and unload wired through the fake host, and again after a "Reload UI"."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
from fastapi import FastAPI

from facechain_ext.webui import FaceChainExtension, register
from facechain_ext.webui.host import settings_from
from facechain_ext.webui.settings import OPTIONS, SECTION


def callback_counts() -> dict[str, int]:
    from modules import script_callbacks

    return {key: len(value) for key, value in script_callbacks.callback_map.items() if value}


def facechain_routes(app: FastAPI) -> list[str]:
    return sorted({route.path for route in app.routes if route.path.startswith("/facechain/")})


def test_register_wires_settings_tab_routes_and_unload(fake_host, tmp_path):
    from modules import script_callbacks, shared

    fake_host.reset_host(tmp_path / "webui", ["--api"])
    extension = register()
    assert callback_counts() == {"callbacks_ui_settings": 1, "callbacks_ui_tabs": 1, "callbacks_app_started": 1,
                                 "callbacks_script_unloaded": 1, "callbacks_cfg_denoiser": 1, "callbacks_model_loaded": 1,
                                 "callbacks_after_component": 1}

    script_callbacks.ui_settings_callback()
    for key in OPTIONS:
        assert key.startswith("facechain_") and shared.opts.data_labels[key].section == SECTION
        assert getattr(shared.opts, key) == OPTIONS[key][0]
    assert shared.opts.data_labels["facechain_styles_dirs"].restrict_api is True  # paths stay out of /sdapi/v1/options

    tabs = script_callbacks.ui_tabs_callback()
    assert [(type(block), title, elem_id) for block, title, elem_id in tabs] == [(gr.Blocks, "FaceChain", "facechain")]

    app = FastAPI()
    script_callbacks.app_started_callback(None, app)
    assert {"/facechain/v1/version", "/facechain/v1/face/detect", "/facechain/v1/identities/{name}"} <= set(
        facechain_routes(app))
    assert fake_host.reported_errors() == []
    assert isinstance(extension, FaceChainExtension)


def test_settings_come_from_the_host_paths_flags_and_options(fake_host, tmp_path):
    from modules import script_callbacks, shared

    models = tmp_path / "elsewhere"
    fake_host.reset_host(tmp_path / "webui", ["--facechain-models-dir", str(models), "--facechain-offline",
                                              "--lora-dir", str(tmp_path / "loras")])
    settings = register().ctx.settings
    assert settings.models_dir == models and settings.offline is True
    assert settings.lora_dir == tmp_path / "loras" and settings.facechain_lora_dir == tmp_path / "loras" / "FaceChain"
    assert settings.insightface_root == tmp_path / "webui" / "models" / "insightface"

    fake_host.reset_host(tmp_path / "webui")
    extension = register()
    assert extension.ctx.settings.models_dir == tmp_path / "webui" / "models" / "facechain"  # preload's default
    script_callbacks.ui_settings_callback()
    extension.ctx._analyzers["dlib"] = object()  # a loaded analyzer that a backend change must drop
    assert shared.opts.set("facechain_face_backend", "dlib") is True  # runs the onchange like the Settings tab
    assert extension.ctx.settings.face_backend == "dlib" and extension.ctx._analyzers == {}
    shared.opts.set("facechain_styles_dirs", f"{tmp_path / 'a'}, {tmp_path / 'b'}")
    assert extension.ctx.settings.styles_dirs == (tmp_path / "a", tmp_path / "b")


def test_settings_from_ignores_unknown_backend_and_uses_defaults():
    class Opts:
        facechain_face_backend = "something-old"

    class Cmd:
        pass

    settings = settings_from("/m", Cmd(), Opts())
    assert settings.face_backend == "auto" and settings.models_dir == Path("/m/facechain")
    assert settings.lora_dir == Path("/m/Lora") and settings.offline is False and settings.allow_downloads is False


def test_reload_ui_registers_again_cleanly(fake_host, tmp_path):
    from modules import script_callbacks

    fake_host.reset_host(tmp_path / "webui", ["--api"])
    first = register()
    script_callbacks.script_unloaded_callback()  # the host unloads, then load_scripts() clears and re-runs the entry file
    script_callbacks.clear_callbacks()
    second = register()
    assert second is not first
    assert callback_counts() == {"callbacks_ui_settings": 1, "callbacks_ui_tabs": 1, "callbacks_app_started": 1,
                                 "callbacks_script_unloaded": 1, "callbacks_cfg_denoiser": 1, "callbacks_model_loaded": 1,
                                 "callbacks_after_component": 1}
    script_callbacks.ui_settings_callback()
    assert len(script_callbacks.ui_tabs_callback()) == 1
    app = FastAPI()
    script_callbacks.app_started_callback(None, app)
    script_callbacks.app_started_callback(None, app)  # a second start on the same app adds nothing twice
    routes = [route.path for route in app.routes if route.path == "/facechain/v1/version"]
    assert routes == ["/facechain/v1/version"]
    assert fake_host.reported_errors() == []


def test_unload_runs_every_cleanup_and_frees_models(fake_host, tmp_path):
    from modules import script_callbacks

    fake_host.reset_host(tmp_path / "webui")
    extension = register()
    calls: list[str] = []

    class Jobs:
        def shutdown(self) -> None:
            calls.append("jobs")

    def failing() -> None:
        calls.append("failing")
        raise RuntimeError("cleanup bug")

    extension.add_cleanup(lambda: calls.append("first"))
    extension.add_cleanup(failing)
    extension.ctx.__dict__["jobs"] = Jobs()  # as if the job queue had been created
    extension.ctx._analyzers["dlib"] = object()
    script_callbacks.script_unloaded_callback()
    assert calls == ["failing", "first", "jobs"]  # reverse order; one failure does not stop the rest
    assert extension.ctx._analyzers == {}
    assert fake_host.reported_errors() == []  # handled inside FaceChain, not thrown at the host


def test_broken_route_module_does_not_take_the_others_down(fake_host, tmp_path, monkeypatch):
    from modules import script_callbacks

    import facechain_ext.webui as webui

    fake_host.reset_host(tmp_path / "webui", ["--api"])
    monkeypatch.setattr(webui, "ROUTE_MODULES", ("api_does_not_exist", "api_system"))
    extension = register()
    app = FastAPI()
    script_callbacks.app_started_callback(None, app)
    assert "/facechain/v1/version" in facechain_routes(app)
    assert extension.route_errors == {"api_does_not_exist": "not part of this version"}


def test_host_detection(monkeypatch):
    import importlib.util

    from facechain_ext.webui import host

    assert host.is_forge() is False
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "modules_forge" else real(name, *a))
    assert host.is_forge() is True
    from importlib.metadata import version

    assert host.gradio_major() == int(version("gradio").split(".")[0])  # 3 on the A1111 stack, 4 on Forge's
    assert host.js_kwargs("f") == ({"js": "f"} if host.gradio_major() >= 4 else {"_js": "f"})
