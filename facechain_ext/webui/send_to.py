""""Send to FaceChain" on the host's result galleries (txt2img, img2img, Extras): the picture becomes a template.

The host builds its send-to buttons in `modules/ui_common.py` (`create_output_panel`: a row of tool buttons with
elem_ids `<tab>_send_to_img2img/_inpaint/_extras` under the gallery `<tab>_gallery`) and connects every registered
`ParamBinding` once the whole UI exists (`infotext_utils.connect_paste_params_buttons`: copy the gallery's selected
image into `paste_fields[tabname]["init_img"]`, then call the page function `switch_to_<tabname>`). We add one button
to each of those rows from an `on_after_component` callback, and bind them only when the Templates view was built
(`bind`), so a view that failed to build never leaves the host a binding to a tab it does not know. The page
function is `switch_to_facechain_template` in javascript/facechain_templates.js.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("facechain")

SOURCES = ("txt2img", "img2img", "extras")
DESTINATION = "facechain_template"  # the paste-fields tab name; the JS function is switch_to_<DESTINATION>


def copypaste_module() -> Any:
    """`modules.infotext_utils` (A1111 >= 1.8, Forge) or its older name `generation_parameters_copypaste`."""
    try:
        from modules import infotext_utils

        return infotext_utils
    except ImportError:
        from modules import generation_parameters_copypaste

        return generation_parameters_copypaste


class SendToTemplates:
    """Buttons in the host's galleries, per registration (kept on the FaceChainExtension, never module-global)."""

    def __init__(self) -> None:
        self.galleries: dict[str, Any] = {}
        self.buttons: dict[str, Any] = {}

    def on_after_component(self, component: Any, **kwargs: Any) -> None:
        elem_id = kwargs.get("elem_id")
        for tab in SOURCES:
            if elem_id == f"{tab}_gallery":
                self.galleries[tab] = component
            elif elem_id == f"{tab}_send_to_extras" and tab not in self.buttons:
                self.buttons[tab] = self._button(tab)  # created in the host's button row, right after its last one

    @staticmethod
    def _button(tab: str) -> Any:
        import gradio as gr

        kwargs = {"elem_id": f"{tab}_send_to_facechain", "visible": False}
        try:
            from modules.ui_components import ToolButton

            return ToolButton("\U0001F464", tooltip="Send the image to FaceChain as a template photo.", **kwargs)
        except (ImportError, TypeError):  # no ToolButton, or a gradio without `tooltip`
            return gr.Button("FaceChain", **kwargs)

    def bind(self, image_component: Any) -> list[str]:
        """Make the buttons copy the selected image into `image_component`; returns the tabs that got one."""
        copypaste = copypaste_module()
        copypaste.add_paste_fields(DESTINATION, image_component, None)
        bound = []
        for tab, button in self.buttons.items():
            gallery = self.galleries.get(tab)
            if gallery is None:
                continue
            copypaste.register_paste_params_button(copypaste.ParamBinding(
                paste_button=button, tabname=DESTINATION, source_image_component=gallery,
            ))
            button.visible = True  # read when the page config is made, after every tab was built
            bound.append(tab)
        return bound
