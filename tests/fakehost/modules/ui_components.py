"""Stand-in for modules/ui_components.py (A1111 >= 1.7, Forge): the host's small gradio component classes.

`ToolButton`: a gr.Button with the "tool" class (the 🔄/📂 icon buttons). `InputAccordion(value, **kwargs)`: an
accordion that is also an input: a hidden gr.Checkbox (elem_id `<id>-checkbox`) whose value is "enabled"; the host's
javascript/inputAccordion.js puts a visible checkbox into the accordion header and keeps both, and the accordion's
open state, in step. `extra()` gives a column the JS moves into the header. The `tooltip` keyword every host
component accepts (modules/gradio_extensions.py) is accepted and kept as `webui_tooltip`.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

GRADIO4 = int(gr.__version__.split(".")[0]) >= 4


class FormComponent:
    def get_expected_parent(self) -> Any:
        return gr.components.Form


class ToolButton(gr.Button, FormComponent):
    """Small button with a single emoji as text, fits inside gradio forms."""

    def __init__(self, value: str = "", *args: Any, elem_classes: list[str] | None = None, tooltip: str | None = None,
                 **kwargs: Any) -> None:
        self.webui_tooltip = tooltip
        super().__init__(value, *args, elem_classes=["tool", *(elem_classes or [])], **kwargs)

    def get_block_name(self) -> str:
        return "button"


class FormRow(gr.Row, FormComponent):
    def get_block_name(self) -> str:
        return "row"


class InputAccordionImpl(gr.Checkbox):
    """A gr.Accordion usable as an input: its value is the hidden checkbox's (True = enabled)."""

    global_index = 0

    def __init__(self, value: Any = None, setup: bool = False, **kwargs: Any) -> None:
        self.webui_tooltip = kwargs.pop("tooltip", None)
        if not setup:
            super().__init__(value=value, **kwargs)
            return
        self.accordion_id = kwargs.get("elem_id")
        if self.accordion_id is None:
            self.accordion_id = f"input-accordion-{InputAccordionImpl.global_index}"
            InputAccordionImpl.global_index += 1
        super().__init__(value=value, **{**kwargs, "elem_id": f"{self.accordion_id}-checkbox", "visible": False})
        js = 'function(checked){ inputAccordionChecked("' + self.accordion_id + '", checked); }'
        self.change(fn=None, inputs=[self], **({"js": js} if GRADIO4 else {"_js": js}))
        self.accordion = gr.Accordion(label=kwargs.get("label", "Accordion"), open=value, elem_id=self.accordion_id,
                                      elem_classes=["input-accordion"])

    def extra(self) -> Any:
        """A column shown in the accordion's header (moved there by the host's JS)."""
        return gr.Column(elem_id=f"{self.accordion_id}-extra", elem_classes="input-accordion-extra", min_width=0)

    def __enter__(self) -> InputAccordionImpl:
        self.accordion.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self.accordion.__exit__(exc_type, exc_val, exc_tb)

    def get_block_name(self) -> str:
        return "checkbox"


def InputAccordion(value: Any = None, **kwargs: Any) -> InputAccordionImpl:  # noqa: N802 - the host's name
    return InputAccordionImpl(value=value, setup=True, **kwargs)
