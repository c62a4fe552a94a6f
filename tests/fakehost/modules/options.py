"""Stand-in for modules/options.py: OptionInfo and the Options store behind `shared.opts`."""

from __future__ import annotations

import os
from typing import Any, Callable

options_builtin_fields = {"data_labels", "data", "restricted_opts", "typemap"}


class OptionInfo:
    """Same constructor as the host's (A1111 1.10)."""

    def __init__(self, default=None, label="", component=None, component_args=None, onchange=None, section=None,
                 refresh=None, comment_before="", comment_after="", infotext=None, restrict_api=False, category_id=None):
        self.default = default
        self.label = label
        self.component = component
        self.component_args = component_args
        self.onchange = onchange
        self.section = section
        self.category_id = category_id
        self.refresh = refresh
        self.do_not_save = False
        self.comment_before = comment_before
        self.comment_after = comment_after
        self.infotext = infotext
        self.restrict_api = restrict_api

    def link(self, label: str, url: str) -> OptionInfo:
        self.comment_before += f"[<a href='{url}' target='_blank'>{label}</a>]"
        return self

    def info(self, info: str) -> OptionInfo:
        self.comment_after += f"<span class='info'>({info})</span>"
        return self

    def html(self, html: str) -> OptionInfo:
        self.comment_after += html
        return self

    def needs_restart(self) -> OptionInfo:
        self.comment_after += " <span class='info'>(requires restart)</span>"
        return self

    def needs_reload_ui(self) -> OptionInfo:
        self.comment_after += " <span class='info'>(requires Reload UI)</span>"
        return self


class OptionHTML(OptionInfo):
    def __init__(self, text: str) -> None:
        super().__init__(str(text).strip(), label="")
        self.do_not_save = True


def options_section(section_identifier: tuple, options_dict: dict[str, OptionInfo]) -> dict[str, OptionInfo]:
    for v in options_dict.values():
        if len(section_identifier) == 2:
            v.section = section_identifier
        elif len(section_identifier) == 3:
            v.section = section_identifier[0:2]
            v.category_id = section_identifier[2]
    return options_dict


class Options:
    """Attribute access to values (`opts.key`), defaults from `data_labels`, like the host."""

    typemap = {int: float}

    def __init__(self, data_labels: dict[str, OptionInfo], restricted_opts: set[str]) -> None:
        self.data_labels = data_labels
        self.data = {k: v.default for k, v in self.data_labels.items() if not v.do_not_save}
        self.restricted_opts = restricted_opts

    def __setattr__(self, key: str, value: Any) -> None:
        if key in options_builtin_fields:
            return super().__setattr__(key, value)
        if self.data is not None and (key in self.data or key in self.data_labels):
            info = self.data_labels.get(key)
            if info is not None and info.do_not_save:
                return None
            comp_args = info.component_args if info else None
            if isinstance(comp_args, dict) and comp_args.get("visible", True) is False:
                raise RuntimeError(f"not possible to set '{key}' because it is restricted")
            self.data[key] = value
            return None
        return super().__setattr__(key, value)

    def __getattr__(self, item: str) -> Any:
        if item in options_builtin_fields:
            return super().__getattribute__(item)
        if self.data is not None and item in self.data:
            return self.data[item]
        if item in self.data_labels:
            return self.data_labels[item].default
        return super().__getattribute__(item)

    def set(self, key: str, value: Any, is_api: bool = False, run_callbacks: bool = True) -> bool:
        oldval = self.data.get(key, None)
        if oldval == value:
            return False
        option = self.data_labels[key]
        if option.do_not_save or (is_api and option.restrict_api):
            return False
        try:
            setattr(self, key, value)
        except RuntimeError:
            return False
        if run_callbacks and option.onchange is not None:
            try:
                option.onchange()
            except Exception:  # noqa: BLE001 - the host reports and restores the old value
                setattr(self, key, oldval)
                return False
        return True

    def get_default(self, key: str) -> Any:
        info = self.data_labels.get(key)
        return None if info is None else info.default

    def add_option(self, key: str, info: OptionInfo) -> None:
        self.data_labels[key] = info
        if key not in self.data and not info.do_not_save:
            self.data[key] = info.default

    def onchange(self, key: str, func: Callable[[], None], call: bool = True) -> None:
        self.data_labels[key].onchange = func
        if call:
            func()

    def cast_value(self, key: str, value: Any) -> Any | None:
        if value is None:
            return None
        default_value = self.data_labels[key].default
        if default_value is None:
            return None
        expected_type = type(default_value)
        if expected_type is bool and value == "False":
            return False
        return expected_type(value)


def builtin_options() -> dict[str, OptionInfo]:
    """The few host options our code or the host helpers read (defaults as in A1111 1.10 modules/shared_options.py;
    output folders under <data>/outputs as paths_internal.default_output_dir)."""
    from modules import paths

    outputs = os.path.join(paths.data_path, "outputs")
    return {
        "samples_save": OptionInfo(True, "Always save all generated images"),
        "samples_format": OptionInfo("png", "File format for images"),
        "save_incomplete_images": OptionInfo(False, "Save incomplete images"),
        "grid_save": OptionInfo(True, "Always save all generated image grids"),
        "grid_format": OptionInfo("png", "File format for grids"),
        "grid_extended_filename": OptionInfo(False, "Add extended info (seed, prompt) to filename when saving grid"),
        "grid_only_if_multiple": OptionInfo(True, "Do not save grids consisting of one picture"),
        "grid_prevent_empty_spots": OptionInfo(False, "Prevent empty spots in grid (when set to autodetect)"),
        "n_rows": OptionInfo(-1, "Grid row count; use -1 for autodetect and 0 for it to be same as batch size"),
        "enable_pnginfo": OptionInfo(True, "Save text information about generation parameters as chunks to png files"),
        "return_grid": OptionInfo(True, "Show grid in gallery"),
        "outdir_samples": OptionInfo("", "Output directory for images; if empty, defaults to three directories below"),
        "outdir_txt2img_samples": OptionInfo(os.path.join(outputs, "txt2img-images"), "Output directory for txt2img images"),
        "outdir_img2img_samples": OptionInfo(os.path.join(outputs, "img2img-images"), "Output directory for img2img images"),
        "outdir_grids": OptionInfo("", "Output directory for grids; if empty, defaults to two directories below"),
        "outdir_txt2img_grids": OptionInfo(os.path.join(outputs, "txt2img-grids"), "Output directory for txt2img grids"),
        "outdir_img2img_grids": OptionInfo(os.path.join(outputs, "img2img-grids"), "Output directory for img2img grids"),
        "jpeg_quality": OptionInfo(80, "Quality for saved jpeg and avif images"),
        "memmon_poll_rate": OptionInfo(8, "VRAM usage polls per second during generation."),
        "live_previews_enable": OptionInfo(True, "Show live previews of the created image"),
        "api_enable_requests": OptionInfo(True, "Allow http:// and https:// URLs for input images in API"),
        "api_forbid_local_requests": OptionInfo(True, "Forbid URLs to local resources"),
        "sd_model_checkpoint": OptionInfo(None, "Stable Diffusion checkpoint"),
        "sd_lora": OptionInfo("None", "Add network to prompt"),
        "lora_preferred_name": OptionInfo("Alias from file", "When adding to prompt, refer to Lora by"),
        # modules/shared_options.py, section "Face restoration"
        "face_restoration": OptionInfo(False, "Restore faces"),
        "face_restoration_model": OptionInfo("CodeFormer", "Face restoration model"),
        "code_former_weight": OptionInfo(0.5, "CodeFormer weight"),
        "face_restoration_unload": OptionInfo(False, "Move face restoration model from VRAM into RAM after processing"),
        # sampler parameters the CFG denoiser reads (modules/shared_options.py, A1111 1.10 defaults)
        "batch_cond_uncond": OptionInfo(True, "Batch cond/uncond"),
        "pad_cond_uncond": OptionInfo(False, "Pad prompt/negative prompt"),
        "pad_cond_uncond_v0": OptionInfo(False, "Pad prompt/negative prompt (v0)"),
        "s_min_uncond": OptionInfo(0.0, "Negative Guidance minimum sigma"),
        "s_min_uncond_all": OptionInfo(False, "Negative Guidance minimum sigma all steps"),
        "skip_early_cond": OptionInfo(0.0, "Ignore negative prompt during early sampling"),
        # img2img / inpainting (templates)
        "overlay_inpaint": OptionInfo(True, "Overlay original for inpaint"),
        "img2img_color_correction": OptionInfo(False, "Apply color correction to img2img results to match original colors."),
        "initial_noise_multiplier": OptionInfo(1.0, "Noise multiplier for img2img"),
    }
