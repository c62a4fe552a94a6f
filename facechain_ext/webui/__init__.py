"""Host glue: the only package (with scripts/) that imports `modules`, `gradio` or `launch`.

`scripts/facechain.py` calls `register()` every time the host loads scripts (start-up and every "Reload UI", after
the host cleared all callbacks). `register()` builds one FaceChainContext from the host's paths and options and
wires the settings page, the FaceChain tab, the /facechain/v1 routes and the unload cleanup to it. Importing this
package is cheap; the heavy modules load inside the callbacks, and the face models on first use.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Callable

from ..context import FaceChainContext
from .send_to import SendToTemplates

log = logging.getLogger("facechain")

# route modules under facechain_ext.webui, each with `add_routes(app, ctx, auth)`
ROUTE_MODULES = ("api_system", "api_faces", "api_identities", "api_training", "api_generate", "api_templates")


class FaceChainExtension:
    """The callbacks of one registration, bound to its context (no module-global state)."""

    def __init__(self, ctx: FaceChainContext) -> None:
        self.ctx = ctx
        self.route_errors: dict[str, str] = {}  # module -> why its routes are missing (shown by /version)
        self._cleanups: list[Callable[[], None]] = []
        self.send_to = SendToTemplates()  # "Send to FaceChain" buttons under the host's galleries

    def add_cleanup(self, fn: Callable[[], None]) -> None:
        """Run `fn` when the host unloads scripts (Reload UI / shutdown): undo hooks and patches there."""
        self._cleanups.append(fn)

    def refresh_settings(self) -> None:
        """A FaceChain option changed in the Settings tab: re-read settings, drop loaded face models."""
        from .host import read_settings

        self.ctx.settings = read_settings()
        self.ctx.reset_analyzers()

    def on_ui_settings(self) -> None:
        from modules import shared

        from .settings import add_options

        add_options(shared.opts, shared.OptionInfo, on_change=self.refresh_settings)
        self.refresh_settings()  # values saved in config.json are now known

    def on_ui_tabs(self) -> list[tuple[Any, str, str]]:
        from .tab import build_tab

        return [(build_tab(self.ctx, send_to=self.send_to), "FaceChain", "facechain")]

    def on_app_started(self, demo: Any | None, app: Any) -> None:
        from modules import shared

        from .api_common import API_PREFIX, auth_dependency
        from .host import api_enabled

        try:
            self.ctx.recover_leftovers()  # a killed earlier session's half-written files, before anyone reads them
        except Exception:  # noqa: BLE001 - recovery must never keep the UI from starting; the next write retries
            log.exception("FaceChain: recovering leftovers of an interrupted write failed")

        if not api_enabled(shared.cmd_opts):
            return  # like the host's own API: routes only with --api / --nowebui
        if any(getattr(route, "path", None) == f"{API_PREFIX}/version" for route in app.routes):
            return  # this app already has them (a second registration in the same process)
        auth = auth_dependency(shared.cmd_opts)
        for name in ROUTE_MODULES:
            self._add_module_routes(name, app, auth)

    def _add_module_routes(self, name: str, app: Any, auth: Any) -> None:
        qualified = f"{__name__}.{name}"
        try:
            module = importlib.import_module(qualified)
            module.add_routes(app, self.ctx, auth)
        except ModuleNotFoundError as exc:
            reason = f"missing Python module {exc.name!r}" if exc.name != qualified else "not part of this version"
            self._route_failure(name, reason)
        except Exception as exc:  # noqa: BLE001 - one broken route module must not take the others down
            log.exception("FaceChain: could not add the %s routes", name)
            self._route_failure(name, f"{type(exc).__name__}: {exc}")

    def _route_failure(self, name: str, reason: str) -> None:
        self.route_errors[name] = reason
        print(f"FaceChain: the {name} routes are unavailable ({reason}).")

    def on_cfg_denoiser(self, params: Any) -> None:
        """Every sampling step: FACT's row router learns the step's conditionings (cheap when FACT is unused)."""
        if vars(self.ctx).get("fact") is None:
            return
        from .fact_hook import on_cfg_denoiser

        on_cfg_denoiser(self.ctx, params)

    def on_model_loaded(self, sd_model: Any) -> None:
        """A checkpoint (re)loaded: no FACT hook survives on it."""
        if vars(self.ctx).get("fact") is None:
            return
        from .fact_hook import on_model_loaded

        on_model_loaded(self.ctx, sd_model)

    def on_script_unloaded(self) -> None:
        if vars(self.ctx).get("fact") is not None:
            from .fact_hook import unload

            unload(self.ctx)
        for fn in reversed(self._cleanups):
            try:
                fn()
            except Exception:  # noqa: BLE001 - every cleanup gets its chance
                log.exception("FaceChain: cleanup %r failed", fn)
        self._cleanups.clear()
        jobs = vars(self.ctx).get("jobs")  # only if it was ever created (cached_property)
        if jobs is not None and hasattr(jobs, "shutdown"):
            jobs.shutdown()
        self.ctx.reset_analyzers()


def register() -> FaceChainExtension:
    """Wire FaceChain into the host. Safe to call again after the host cleared its callbacks."""
    from modules import script_callbacks

    from .host import read_settings

    extension = FaceChainExtension(FaceChainContext(read_settings()))
    script_callbacks.on_ui_settings(extension.on_ui_settings, name="facechain_settings")
    script_callbacks.on_ui_tabs(extension.on_ui_tabs, name="facechain_tab")
    script_callbacks.on_after_component(extension.send_to.on_after_component, name="facechain_send_to")
    script_callbacks.on_app_started(extension.on_app_started, name="facechain_routes")
    script_callbacks.on_script_unloaded(extension.on_script_unloaded, name="facechain_unload")
    script_callbacks.on_cfg_denoiser(extension.on_cfg_denoiser, name="facechain_fact_rows")
    script_callbacks.on_model_loaded(extension.on_model_loaded, name="facechain_fact_model")
    return extension
