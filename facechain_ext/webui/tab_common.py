"""What every view of the FaceChain tab shares: messages, tables, the run/Interrupt/Skip buttons, list refreshing.

Messages: plain sentences for people. A FaceChainError shows its message only; its code (for the API and the tests)
rides along as an invisible `data-code` attribute. Cancelled work is a neutral note, never an error box.

Run buttons follow the host's txt2img generate box (modules/ui_toprow.py): Interrupt and Skip sit over the main
button (classes `generate-box-interrupt` / `generate-box-skip`, placed by the host's style.css) and are shown only
while the task runs (javascript/facechain.js, the host's `showSubmitButtons`
behaviour). They call `shared.state.interrupt()` / `skip()` like the host's, for the view's own task only
(`host_task.interrupt_host_task`).
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import gradio as gr

from ..errors import FaceChainError
from .host import js_kwargs
from .host_task import interrupt_host_task


def message_html(text: str, *, kind: str = "info") -> str:
    """`text` (already HTML) in a box: kind "info" (neutral), "error" (red) or "note" (subdued, no box)."""
    css = {"info": "facechain-info", "error": "facechain-error", "note": "facechain-note"}[kind]
    return f"<div class='{css}'>{text}</div>"


def error_html(err: FaceChainError) -> str:
    """A FaceChainError for people: its message; a cancel is neutral. The code stays machine-readable in data-code."""
    css = "facechain-info" if err.code == "cancelled" else "facechain-error"
    return f"<div class='{css}' data-code='{html.escape(err.code)}'>{html.escape(err.message)}</div>"


def internal_error_html(exc: BaseException) -> str:
    """An unexpected failure: one sentence; the traceback is in the console log (the caller logs it)."""
    return message_html(
        f"Something went wrong inside FaceChain ({html.escape(type(exc).__name__)}: {html.escape(str(exc))}). "
        "The console log has the details.", kind="error")


def table_value(headers: Sequence[str], rows: list[list[Any]]) -> dict[str, Any]:
    """A Dataframe value that keeps its headers when empty (gradio 3 replaces them with 1, 2, 3... for `[]`)."""
    return {"headers": list(headers), "data": rows or [["" for _ in headers]]}


def with_tables(fn: Any, tables: dict[int, Sequence[str]]) -> Any:
    """Wrap a handler so the outputs at these positions (lists of rows) reach gradio as `table_value`s."""

    @functools.wraps(fn)
    def wrapped(*args: Any) -> tuple[Any, ...]:
        outputs = list(fn(*args))
        for position, headers in tables.items():
            if isinstance(outputs[position], list):  # a gr.update() (leave the table as it is) passes unchanged
                outputs[position] = table_value(headers, outputs[position])
        return tuple(outputs)

    return wrapped


def choices_update(choices: Sequence[Any], current: Any, *, keep_missing: bool = False) -> Any:
    """A Dropdown/CheckboxGroup update with fresh choices. The value stays when it is still a choice (or always with
    `keep_missing`, for a pasted value not listed); otherwise it is cleared."""
    values = [c[1] if isinstance(c, (tuple, list)) else c for c in choices]
    if isinstance(current, list):
        value: Any = [v for v in current if v in values]
    elif current in values or keep_missing:
        value = current
    else:
        value = None
    return gr.update(choices=list(choices), value=value)


@dataclass
class RunButtons:
    run: Any
    interrupt: Any
    skip: Optional[Any]
    interrupting: Any


def run_buttons(prefix: str, label: str, *, skip: bool) -> RunButtons:
    """The main button with Interrupt (and Skip) over it, hidden until the task runs; element ids `<prefix>_run`,
    `<prefix>_interrupt`, `<prefix>_skip`, `<prefix>_interrupting` (what javascript/facechain.js shows and hides)."""
    classes = ["generate-box", "facechain-generate-box"] + ([] if skip else ["facechain-no-skip"])
    with gr.Row(elem_id=f"{prefix}_generate_box", elem_classes=classes):
        interrupt = gr.Button("Interrupt", elem_id=f"{prefix}_interrupt", elem_classes=["generate-box-interrupt"])
        skip_button = gr.Button("Skip", elem_id=f"{prefix}_skip", elem_classes=["generate-box-skip"]) if skip else None
        interrupting = gr.Button("Interrupting...", elem_id=f"{prefix}_interrupting",
                                 elem_classes=["generate-box-interrupting"])
        run = gr.Button(label, variant="primary", elem_id=f"{prefix}_run")
    return RunButtons(run, interrupt, skip_button, interrupting)


def wire_stop_buttons(buttons: RunButtons, prefix: str, task_id: Any, interrupt_fn: Optional[Callable[..., Any]] = None,
                      inputs: Optional[list] = None, outputs: Optional[list] = None) -> None:
    """Interrupt/Skip for the task whose id javascript/facechain.js stored for `prefix` (`facechain_task_of`).

    `interrupt_fn(task_id, *inputs) -> outputs` replaces the plain host interrupt (the Train view cancels its job)."""
    task_js = js_kwargs(f"function(){{ return facechain_stopping('{prefix}', arguments); }}")
    fn = interrupt_fn or interrupt_task
    for button in (buttons.interrupt, buttons.interrupting):
        button.click(fn=fn, inputs=[task_id, *(inputs or [])], outputs=outputs or [], show_progress="hidden", **task_js)
    if buttons.skip is not None:
        buttons.skip.click(fn=skip_task, inputs=[task_id], outputs=[], show_progress="hidden",
                           **js_kwargs(f"function(){{ return facechain_skipping('{prefix}', arguments); }}"))


def interrupt_task(task_id: Optional[str], *_: Any) -> None:
    interrupt_host_task(task_id)


def skip_task(task_id: Optional[str]) -> None:
    interrupt_host_task(task_id, skip=True)


def on_view_open(fn: Callable[..., Any], inputs: list, outputs: list) -> None:
    """Run `fn` when the page loads and whenever the view's tab is opened, so lists are never older than the view.

    Page load: the `load` event of the root Blocks being built (the FaceChain tab's own Blocks, or the host's
    txt2img/img2img Blocks for the accordion); gradio fires it on every browser page load (a reload included), also
    after the Blocks was rendered into the host's page. View opened: the `select` event of the enclosing gr.Tab.
    """
    from gradio.context import Context

    root = Context.root_block
    if root is not None:
        root.load(fn=fn, inputs=inputs, outputs=outputs, show_progress="hidden")
    tab = enclosing_tab()
    if tab is not None:
        tab.select(fn=fn, inputs=inputs, outputs=outputs, show_progress="hidden")


def enclosing_tab() -> Optional[Any]:
    """The gr.Tab the components being built go into (walking up from gradio's current block), or None."""
    from gradio.context import Context

    block = Context.block
    while block is not None:
        if isinstance(block, gr.Tab):
            return block
        block = getattr(block, "parent", None)
    return None


REFRESH_SYMBOL = "\U0001f504"  # the host's refresh_symbol (modules/ui_common.py)


def refresh_button(elem_id: str, tooltip: str) -> Any:
    """A small 🔄 button like the host's refresh buttons (`ui_common.create_refresh_button`: a ToolButton)."""
    try:
        from modules.ui_components import ToolButton
    except ImportError:  # a host without it: the same look from the "tool" class
        return gr.Button(REFRESH_SYMBOL, elem_id=elem_id, elem_classes=["tool"], scale=0, min_width=40)
    return ToolButton(REFRESH_SYMBOL, elem_id=elem_id, tooltip=tooltip)
