"""Stand-in for sd-webui-controlnet's AlwaysVisible `Script` (scripts/controlnet.py): title "ControlNet"; `process`
reads the enabled units from its slice of `p.script_args` (as `Script.get_enabled_units(p)` does through
`external_code.get_all_units_in_processing`) and, for "Inpaint only masked" img2img with `inpaint_crop_input_image`,
crops each control image the way it does (`masking.get_crop_region` of the A1111 mask grown by the padding, expanded
to the processing aspect, resized to p.width x p.height). Instead of hooking a UNet it appends what it would apply to
`RECORDED` (tests read it).
"""

from __future__ import annotations

import importlib

import numpy as np
from modules import scripts

RECORDED: list[dict] = []
external_code = importlib.import_module(__package__ + ".external_code")


class Script(scripts.Script):
    def title(self):
        return "ControlNet"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def process(self, p, *args, **kwargs):
        units = [u for u in external_code.get_all_units_in_processing(p) if u.enabled]
        if not units:
            return
        RECORDED.append({"p": p, "units": units, "inputs": [self._input(p, u) for u in units]})

    @staticmethod
    def _input(p, unit):
        from modules import images, masking, processing
        from PIL import Image

        image = np.asarray(unit.image)
        mask = getattr(p, "image_mask", None)
        if not (isinstance(p, processing.StableDiffusionProcessingImg2Img) and p.inpaint_full_res and mask is not None
                and unit.inpaint_crop_input_image):
            return image
        mask = mask.convert("L")
        crop = masking.get_crop_region(np.array(mask), p.inpaint_full_res_padding)
        crop = masking.expand_crop_region(crop, p.width, p.height, mask.width, mask.height)
        cropped = Image.fromarray(image).resize(mask.size).crop(crop)
        return np.asarray(images.resize_image(2, cropped, p.width, p.height))
