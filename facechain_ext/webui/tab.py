"""The FaceChain tab: a status line about missing dependencies, the models (with Download buttons, `tab_models`), then
the Identities, Train and Generate views.

Each view is a module with `build(ctx) -> gr.Blocks`, imported only here, when the host builds its UI. A view that
is missing or fails to build is replaced by a Markdown note saying why, so the tab always appears (a top
complaint about FaceChain's own plugin was a tab that vanished or blocked start-up).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from typing import Any

import gradio as gr

from .tab_models import ModelDownloads, build_models  # noqa: F401 - ModelDownloads: the handler's old home

log = logging.getLogger("facechain")

# (title, module under facechain_ext.webui, element id)
VIEWS = (
    ("Identities", "tab_identities", "facechain_identities"),
    ("Train", "tab_train", "facechain_train"),
    ("Generate", "tab_generate", "facechain_generate"),
    ("Templates", "tab_templates", "facechain_templates"),
)

# what each feature imports, and the pip line that provides it (install.py installs these at start-up)
FEATURE_MODULES: dict[str, list[tuple[str, str]]] = {
    "Face analysis": [("numpy", "numpy"), ("cv2", "opencv-python")],
    "Training and generation": [("torch", "torch"), ("safetensors", "safetensors"), ("peft", "peft<=0.13.2"),
                                ("diffusers", "diffusers<=0.31.0")],
}


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def dependency_problems(settings: Any) -> list[str]:
    """Human-readable lines for everything missing, each with its fix; empty when all is in place."""
    problems = []
    for feature, modules in FEATURE_MODULES.items():
        missing = [pip for module, pip in modules if not _has(module)]
        if missing:
            problems.append(f"**{feature}** needs `{' '.join(missing)}`: restart the webui so FaceChain's install.py "
                            f"installs it, or run `pip install {' '.join(missing)}` in the webui's Python environment.")
    problems.extend(_backend_problems(settings))
    return problems


def _backend_problems(settings: Any) -> list[str]:
    try:
        from ..faces import backend_status

        status = backend_status(settings)
    except Exception as exc:  # noqa: BLE001 - a broken face package is itself the problem to show
        return [f"**Face analysis** cannot start: {type(exc).__name__}: {exc}"]
    if any(entry["available"] for entry in status.values()):
        return []
    reasons = "; ".join(f"{name}: {entry['reason']}" for name, entry in status.items())
    return [f"**No face backend is available** ({reasons})."]


def build_tab(ctx: Any, send_to: Any = None) -> gr.Blocks:
    """The tab; `send_to` (webui/send_to.py) gets the Templates view's image for the host galleries' buttons."""
    with gr.Blocks(analytics_enabled=False) as tab:
        problems = dependency_problems(ctx.settings)
        if problems:
            gr.Markdown("### Some FaceChain features are unavailable\n" + "\n".join(f"- {p}" for p in problems),
                        elem_id="facechain_dependency_status")
        with gr.Accordion("Models and face backends", open=False, elem_id="facechain_models"):
            build_models(ctx)
        with gr.Tabs(elem_id="facechain_views"):
            for title, module, elem_id in VIEWS:
                with gr.Tab(title, elem_id=elem_id):
                    options = {"send_to": send_to} if module == "tab_templates" else {}
                    build_view(module, ctx, **options)
    return tab


def build_view(module_name: str, ctx: Any, **options: Any) -> bool:
    """Build one view in the current gradio context; on failure show why instead. Returns True when built."""
    from gradio.context import Context

    saved = (Context.block, Context.root_block)
    before = _snapshot(Context.root_block)
    try:
        module = importlib.import_module(f"{__package__}.{module_name}")
        module.build(ctx, **options)
        return True
    except Exception as exc:  # noqa: BLE001 - one broken view must not take the tab down
        # a gradio Blocks left by an exception resets the global build context: put ours back, drop the half view
        Context.block, Context.root_block = saved
        _discard_since(before, Context.root_block, Context.block)
        if _is_absent(module_name, exc):
            log.info("FaceChain: the %s view is not part of this version", module_name)
        else:
            log.exception("FaceChain: the %s view could not be built", module_name)
        gr.Markdown(view_failure_text(module_name, exc))
        return False


def _snapshot(root: Any) -> tuple[set, set]:
    if root is None:
        return set(), set()
    fns = root.fns if isinstance(root.fns, dict) else dict(enumerate(root.fns))  # gradio 4: dict, gradio 3: list
    return set(root.blocks), set(fns)


def _discard_since(before: tuple[set, set], root: Any, parent: Any) -> None:
    """Forget components and events a failed view created, so the page config stays consistent."""
    if root is None:
        return
    block_ids, fn_keys = before
    new_ids = set(root.blocks) - block_ids
    for block_id in new_ids:
        del root.blocks[block_id]
    if parent is not None:
        parent.children = [child for child in parent.children if getattr(child, "_id", None) not in new_ids]
    if isinstance(root.fns, dict):
        for key in set(root.fns) - fn_keys:
            del root.fns[key]
    else:
        del root.fns[len(fn_keys):]


def _is_absent(module_name: str, exc: BaseException) -> bool:
    return isinstance(exc, ModuleNotFoundError) and exc.name == f"{__package__}.{module_name}"


def view_failure_text(module_name: str, exc: BaseException) -> str:
    if _is_absent(module_name, exc):
        return "This part of FaceChain is not included in this version."
    if isinstance(exc, ModuleNotFoundError):
        return (f"This view needs the Python package `{exc.name}`, which is not installed. Restart the webui so "
                "FaceChain's install.py can install it (see the console for its one-line report).")
    return f"This view could not be built ({type(exc).__name__}: {exc}). The console log has the details."
