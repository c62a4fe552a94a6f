"""Stand-in for modules/processing.py: the processing objects with the host's constructor fields (A1111 1.10).

Generation (added by E2): `process_images(p)` runs the Script hooks in A1111 1.10's order (before_process → process →
per batch: before_process_batch → extra-network parsing → process_batch → process_before_every_sampling → "sampling"
(→ process_before_every_sampling → hires "pass" with enable_hr) → postprocess_batch →
postprocess_batch_list → per image: postprocess_image → postprocess_image_after_composite → infotext → save; grid;
Processed → postprocess). "Sampling" asks `fake_sampler` (a FakeSampler the test installs, standing in for the
checkpoint) for a real photo per seed. `create_infotext` follows the host: list values are indexed, callables get
`**locals()`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from modules import shared


@dataclass(repr=False)
class StableDiffusionProcessing:
    sd_model: object = None
    outpath_samples: str = None
    outpath_grids: str = None
    prompt: str = ""
    prompt_for_display: str = None
    negative_prompt: str = ""
    styles: list = None
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0
    seed_resize_from_h: int = -1
    seed_resize_from_w: int = -1
    seed_enable_extras: bool = True
    sampler_name: str = None
    scheduler: str = None
    batch_size: int = 1
    n_iter: int = 1
    steps: int = 50
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    restore_faces: bool = None
    tiling: bool = None
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    extra_generation_params: dict = None
    overlay_images: list = None
    eta: float = None
    do_not_reload_embeddings: bool = False
    denoising_strength: float = None
    override_settings: dict = None
    override_settings_restore_afterwards: bool = True
    sampler_index: int = None
    refiner_checkpoint: str = None
    refiner_switch_at: float = None
    disable_extra_networks: bool = False

    scripts_value: Any = field(default=None, init=False)
    script_args_value: list = field(default=None, init=False)
    scripts_setup_complete: bool = field(default=False, init=False)
    comments: dict = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.sd_model is None:
            self.sd_model = shared.sd_model
        self.styles = self.styles or []
        self.extra_generation_params = self.extra_generation_params or {}
        self.override_settings = self.override_settings or {}
        self.comments = {}
        self.all_prompts: list[str] = []
        self.all_negative_prompts: list[str] = []
        self.all_seeds: list[int] = []
        self.all_subseeds: list[int] = []
        self.prompts: list[str] = []
        self.negative_prompts: list[str] = []
        self.seeds: list[int] = []
        self.subseeds: list[int] = []
        self.iteration = 0
        self.is_api = False
        self.paste_to = None  # (x, y, w, h) of the "only masked" crop (img2img)
        self.color_corrections = None

    @property
    def scripts(self):
        return self.scripts_value

    @scripts.setter
    def scripts(self, value):
        self.scripts_value = value

    @property
    def script_args(self):
        return self.script_args_value

    @script_args.setter
    def script_args(self, value):
        self.script_args_value = value

    def comment(self, text: str) -> None:
        self.comments[text] = 1

    def get_token_merging_ratio(self, for_hr: bool = False) -> float:
        return 0.0

    def init(self, all_prompts, all_seeds, all_subseeds):
        pass

    def save_samples(self) -> bool:
        """Returns whether generated images need to be written to disk"""
        return shared.opts.samples_save and not self.do_not_save_samples and (
            shared.opts.save_incomplete_images or not shared.state.interrupted and not shared.state.skipped)

    def close(self) -> None:
        self.sampler = None


@dataclass(repr=False)
class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    enable_hr: bool = False
    denoising_strength: float = 0.75
    firstphase_width: int = 0
    firstphase_height: int = 0
    hr_scale: float = 2.0
    hr_upscaler: str = None
    hr_second_pass_steps: int = 0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_checkpoint_name: str = None
    hr_sampler_name: str = None
    hr_scheduler: str = None
    hr_prompt: str = ""
    hr_negative_prompt: str = ""


@dataclass(repr=False)
class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    init_images: list = None
    resize_mode: int = 0
    denoising_strength: float = 0.75
    image_cfg_scale: float = None
    mask: Any = None
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    mask_blur: int = None
    mask_round: bool = True
    inpainting_fill: int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = 0
    inpainting_mask_invert: int = 0
    initial_noise_multiplier: float = None
    latent_mask: Any = None
    force_task_id: str = None

    image_mask: Any = field(default=None, init=False)
    mask_for_overlay: Any = field(default=None, init=False)

    def __post_init__(self):
        super().__post_init__()
        self.image_mask = self.mask
        self.mask = None
        self.initial_noise_multiplier = (shared.opts.initial_noise_multiplier if self.initial_noise_multiplier is None
                                         else self.initial_noise_multiplier)

    # as the host: declared as a field above, then this property (so `mask_blur=` sets both directions)
    @property
    def mask_blur(self):  # noqa: F811 - the host redefines the field as a property
        if self.mask_blur_x == self.mask_blur_y:
            return self.mask_blur_x
        return None

    @mask_blur.setter
    def mask_blur(self, value):
        if isinstance(value, int):
            self.mask_blur_x = value
            self.mask_blur_y = value

    def init(self, all_prompts, all_seeds, all_subseeds):
        img2img_init(self)


class Processed:
    def __init__(self, p: StableDiffusionProcessing, images_list: list, seed: int = -1, info: str = "", subseed: int | None = None,
                 all_prompts=None, all_negative_prompts=None, all_seeds=None, all_subseeds=None, index_of_first_image: int = 0,
                 infotexts=None, comments: str = "", extra_images_list=None):
        self.images = images_list
        self.extra_images = extra_images_list or []
        self.prompt = p.prompt
        self.negative_prompt = p.negative_prompt
        self.seed = seed
        self.subseed = subseed
        self.info = info
        self.comments = "".join(f"{comment}\n" for comment in p.comments)
        self.width = p.width
        self.height = p.height
        self.sampler_name = p.sampler_name
        self.cfg_scale = p.cfg_scale
        self.steps = p.steps
        self.batch_size = p.batch_size
        self.index_of_first_image = index_of_first_image
        self.all_prompts = all_prompts or p.all_prompts or [self.prompt]
        self.all_negative_prompts = all_negative_prompts or p.all_negative_prompts or [self.negative_prompt]
        self.all_seeds = all_seeds or p.all_seeds or [self.seed]
        self.all_subseeds = all_subseeds or p.all_subseeds or [self.subseed]
        self.infotexts = infotexts or [info] * len(images_list)
        self.extra_generation_params = p.extra_generation_params

    def js(self) -> str:
        return json.dumps({
            "prompt": self.prompt, "all_prompts": self.all_prompts, "negative_prompt": self.negative_prompt,
            "seed": self.seed, "all_seeds": self.all_seeds, "width": self.width, "height": self.height,
            "sampler_name": self.sampler_name, "cfg_scale": self.cfg_scale, "steps": self.steps,
            "batch_size": self.batch_size, "infotexts": self.infotexts, "extra_generation_params": self.extra_generation_params,
            "index_of_first_image": self.index_of_first_image,
        }, default=lambda o: None)  # as the host (1.8+): callables in extra_generation_params become null


# ---- generation ----------------------------------------------------------------------------------------------------
import random  # noqa: E402
import re  # noqa: E402

from modules import images  # noqa: E402
from modules.infotext_utils import quote  # noqa: E402

_LORA_TAG = re.compile(r"<(\w+):([^>]+)>")


class FakeSampler:
    """Stands in for the checkpoint: each seed "generates" a real photo, cropped to the requested size.

    `photos` are used round-robin by seed (seed % len); `overrides` maps a seed to a specific photo (e.g. one
    without a face). Every call is recorded (seed, prompt, negative prompt, active LoRAs) for assertions.
    """

    def __init__(self, photos, overrides=None, inpaint=None):
        self.photos = [str(x) for x in photos]
        self.overrides = {int(k): str(v) for k, v in (overrides or {}).items()}
        self.inpaint = inpaint  # img2img: callable(p, init_image, mask, seed, networks) -> image (default: the seed's photo)
        self.calls: list[dict] = []
        self.hr_calls: list[dict] = []  # hires-fix second passes (enable_hr)

    def photo_for(self, seed: int) -> str:
        return self.overrides.get(int(seed), self.photos[int(seed) % len(self.photos)])

    def sample(self, p, seed, prompt, negative, networks):
        from PIL import Image, ImageOps

        path = self.photo_for(seed)
        self.calls.append({"seed": seed, "prompt": prompt, "negative_prompt": negative, "networks": networks, "photo": path})
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
            return ImageOps.fit(image, (p.width, p.height), Image.LANCZOS, centering=(0.5, 0.4))


    def sample_img2img(self, p, init_image, mask, seed, prompt, negative, networks):
        """Repaint `init_image` (the "only masked" crop at p.width x p.height): the test's `inpaint`, else the seed's photo."""
        from PIL import Image, ImageOps

        self.calls.append({"seed": seed, "prompt": prompt, "negative_prompt": negative, "networks": networks,
                           "img2img": True, "denoising_strength": p.denoising_strength, "size": (p.width, p.height),
                           "paste_to": p.paste_to, "steps": p.steps, "sampler_name": p.sampler_name})
        if self.inpaint is not None:
            return self.inpaint(p, init_image, mask, seed, networks)
        with Image.open(self.photo_for(seed)) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
            return ImageOps.fit(image, (p.width, p.height), Image.LANCZOS, centering=(0.5, 0.4))


fake_sampler = None  # a FakeSampler; tests install one (like loading a checkpoint)


def get_fixed_seed(seed):
    if seed == "" or seed is None:
        seed = -1
    elif isinstance(seed, str):
        try:
            seed = int(seed)
        except ValueError:
            seed = -1
    if seed == -1:
        return int(random.randrange(4294967294))
    return seed


def create_infotext(p, all_prompts, all_seeds, all_subseeds, comments=None, iteration=0, position_in_batch=0,
                    use_main_prompt=False, index=None, all_negative_prompts=None):
    if use_main_prompt:
        index = 0
    elif index is None:
        index = position_in_batch + iteration * p.batch_size
    if all_negative_prompts is None:
        all_negative_prompts = p.all_negative_prompts
    prompt_text = p.prompt if use_main_prompt else all_prompts[index]
    negative_prompt = p.negative_prompt if use_main_prompt else all_negative_prompts[index]
    generation_params = {
        "Steps": p.steps,
        "Sampler": p.sampler_name,
        "Schedule type": p.scheduler,
        "CFG scale": p.cfg_scale,
        "Seed": p.all_seeds[0] if use_main_prompt else all_seeds[index],
        "Size": f"{p.width}x{p.height}",
        "Variation seed": None if p.subseed_strength == 0 else all_subseeds[index],
        **p.extra_generation_params,
    }
    for key, value in generation_params.items():
        try:
            if isinstance(value, list):
                generation_params[key] = value[index]
            elif callable(value):
                generation_params[key] = value(**locals())
        except Exception:  # noqa: BLE001 - as the host: report and leave the key out
            from modules import errors

            errors.report(f'Error creating infotext for key "{key}"', exc_info=True)
            generation_params[key] = None
    text = ", ".join(k if k == v else f"{k}: {quote(v)}" for k, v in generation_params.items() if v is not None)
    negative_text = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt_text}{negative_text}\n{text}".strip()


def process_images(p):
    if p.scripts is not None:
        p.scripts.before_process(p)
    return process_images_inner(p)


def _setup_prompts(p):
    count = p.batch_size * p.n_iter
    p.all_prompts = list(p.prompt) if isinstance(p.prompt, list) else [p.prompt] * count
    p.all_negative_prompts = list(p.negative_prompt) if isinstance(p.negative_prompt, list) else [p.negative_prompt] * count
    seed, subseed = get_fixed_seed(p.seed), get_fixed_seed(p.subseed)
    p.all_seeds = [int(seed) + (x if p.subseed_strength == 0 else 0) for x in range(len(p.all_prompts))]
    p.all_subseeds = [int(subseed) + x for x in range(len(p.all_prompts))]
    if getattr(p, "enable_hr", False):
        _setup_hr_prompts(p, count)


def _setup_hr_prompts(p, count):
    """As the host's StableDiffusionProcessingTxt2Img.setup_prompts + init (hires fix): separate hr lists (an empty
    hr prompt means "same as the prompt") and infotext callables printing them only where they differ."""
    hr_prompt = p.hr_prompt or p.prompt
    hr_negative = p.hr_negative_prompt or p.negative_prompt
    p.all_hr_prompts = list(hr_prompt) if isinstance(hr_prompt, list) else [hr_prompt] * count
    p.all_hr_negative_prompts = list(hr_negative) if isinstance(hr_negative, list) else [hr_negative] * count

    def get_hr_prompt(p, index, prompt_text, **kwargs):
        hr = p.all_hr_prompts[index]
        return hr if hr != prompt_text else None

    def get_hr_negative_prompt(p, index, negative_prompt, **kwargs):
        hr = p.all_hr_negative_prompts[index]
        return hr if hr != negative_prompt else None

    p.extra_generation_params["Hires prompt"] = get_hr_prompt
    p.extra_generation_params["Hires negative prompt"] = get_hr_negative_prompt


def _parse_extra_networks(prompts):
    """Like extra_networks.parse_prompts: strip <lora:...> tags, return cleaned prompts and the networks found."""
    networks, cleaned = [], []
    for prompt in prompts:
        found = []
        for kind, args in _LORA_TAG.findall(prompt):
            name, *rest = args.split(":")
            found.append((kind, name, float(rest[0]) if rest else 1.0))
        networks.append(found)
        cleaned.append(_LORA_TAG.sub("", prompt))
    return cleaned, networks


def _to_tensor(image):
    import numpy as np
    import torch

    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


def _to_image(sample):
    import numpy as np
    from PIL import Image

    if isinstance(sample, Image.Image):
        return sample
    array = (255.0 * np.moveaxis(sample.cpu().numpy(), 0, 2)).round().clip(0, 255).astype(np.uint8)
    return Image.fromarray(array)


def _forge_reset(p, source):
    """Forge only (modules/processing.py of Forge): before each batch `forge_objects = forge_objects_original
    .shallow_copy()`, and before every sampling pass `= forge_objects_after_applying_lora.shallow_copy()`, so a patch
    set on a UNet clone lasts one sampling pass. An A1111 model has no such fields: nothing happens."""
    objects = getattr(p.sd_model, source, None)
    if objects is not None:
        p.sd_model.forge_objects = objects.shallow_copy()


def _run_batch(p, n, infotexts, output_images):
    from modules import scripts

    _forge_reset(p, "forge_objects_original")
    bs = p.batch_size
    p.prompts = p.all_prompts[n * bs:(n + 1) * bs]
    p.negative_prompts = p.all_negative_prompts[n * bs:(n + 1) * bs]
    p.seeds = p.all_seeds[n * bs:(n + 1) * bs]
    p.subseeds = p.all_subseeds[n * bs:(n + 1) * bs]
    if p.scripts is not None:
        p.scripts.before_process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)
    p.prompts, p.extra_network_data = _parse_extra_networks(p.prompts)
    if getattr(p, "enable_hr", False):  # the host's Txt2Img.parse_extra_network_prompts: hr slice read after the hook
        p.hr_prompts, p.hr_extra_network_data = _parse_extra_networks(p.all_hr_prompts[n * bs:(n + 1) * bs])
        p.hr_negative_prompts = p.all_hr_negative_prompts[n * bs:(n + 1) * bs]
    if p.scripts is not None:
        p.scripts.process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)
    if fake_sampler is None:
        raise RuntimeError("No checkpoint loaded (tests: install processing.fake_sampler)")
    _forge_reset(p, "forge_objects_after_applying_lora")
    if p.scripts is not None:  # the host fires it inside sample(), before the first pass (x = noise)
        p.scripts.process_before_every_sampling(p, x=None, noise=None, c=None, uc=None)
    if isinstance(p, StableDiffusionProcessingImg2Img):
        samples = [_to_tensor(sample_img2img(p, i, seed)) for i, seed in enumerate(p.seeds)]
    else:
        samples = [_to_tensor(fake_sampler.sample(p, seed, p.prompts[i], p.negative_prompts[i], p.extra_network_data[i]))
                   for i, seed in enumerate(p.seeds)]
    _forge_reset(p, "forge_objects_after_applying_lora")
    if getattr(p, "enable_hr", False) and p.scripts is not None:  # and again before the hires pass
        p.scripts.process_before_every_sampling(p, x=None, noise=None, c=None, uc=None)
    if getattr(p, "enable_hr", False):  # the "second pass" only records what it was asked to use
        fake_sampler.hr_calls.extend({"seed": seed, "prompt": p.hr_prompts[i], "negative_prompt": p.hr_negative_prompts[i],
                                      "networks": p.hr_extra_network_data[i]} for i, seed in enumerate(p.seeds))
    shared.state.nextjob()
    if p.scripts is not None:
        p.scripts.postprocess_batch(p, samples, batch_number=n)
        p.prompts = p.all_prompts[n * bs:(n + 1) * bs]
        p.negative_prompts = p.all_negative_prompts[n * bs:(n + 1) * bs]
        batch_params = scripts.PostprocessBatchListArgs(list(samples))
        p.scripts.postprocess_batch_list(p, batch_params, batch_number=n)
        samples = batch_params.images

    def infotext(index=0, use_main_prompt=False):
        return create_infotext(p, p.prompts, p.seeds, p.subseeds, use_main_prompt=use_main_prompt, index=index,
                               all_negative_prompts=p.negative_prompts)

    save_samples = p.save_samples()
    for i, sample in enumerate(samples):
        p.batch_index = i
        image = _to_image(sample)
        if p.scripts is not None:
            pp = scripts.PostprocessImageArgs(image)
            p.scripts.postprocess_image(p, pp)
            image = pp.image
        image = composite_overlay(p, image, i)
        if p.scripts is not None:
            pp = scripts.PostprocessImageArgs(image)
            p.scripts.postprocess_image_after_composite(p, pp)
            image = pp.image
        if save_samples:
            images.save_image(image, p.outpath_samples, "", p.seeds[i], p.prompts[i], shared.opts.samples_format,
                              info=infotext(i), p=p)
        text = infotext(i)
        infotexts.append(text)
        if shared.opts.enable_pnginfo:
            image.info["parameters"] = text
        output_images.append(image)
    return infotext


def process_images_inner(p):
    _setup_prompts(p)
    if p.scripts is not None:
        p.scripts.process(p)
    p.init(p.all_prompts, p.all_seeds, p.all_subseeds)
    infotexts, output_images, infotext = [], [], None
    if shared.state.job_count == -1:
        shared.state.job_count = p.n_iter
    for n in range(p.n_iter):
        p.iteration = n
        if shared.state.interrupted or shared.state.stopping_generation:
            break
        infotext = _run_batch(p, n, infotexts, output_images)
    opts = shared.opts
    index_of_first_image = 0
    unwanted_grid_because_of_img_count = len(output_images) < 2 and opts.grid_only_if_multiple
    if (opts.return_grid or opts.grid_save) and not p.do_not_save_grid and not unwanted_grid_because_of_img_count:
        grid = images.image_grid(output_images, p.batch_size)
        if opts.return_grid:
            text = infotext(use_main_prompt=True)
            infotexts.insert(0, text)
            if opts.enable_pnginfo:
                grid.info["parameters"] = text
            output_images.insert(0, grid)
            index_of_first_image = 1
        if opts.grid_save:
            images.save_image(grid, p.outpath_grids, "grid", p.all_seeds[0], p.all_prompts[0], opts.grid_format,
                              info=infotext(use_main_prompt=True), short_filename=not opts.grid_extended_filename, p=p,
                              grid=True)
    res = Processed(p, images_list=output_images, seed=p.all_seeds[0], info=infotexts[0] if infotexts else "",
                    subseed=p.all_subseeds[0], index_of_first_image=index_of_first_image, infotexts=infotexts)
    if p.scripts is not None:
        p.scripts.postprocess(p, res)
    return res


# ---- img2img inpainting (templates) ----------------------------------------------------------------------------------
# A1111 1.10 StableDiffusionProcessingImg2Img.init / sample and apply_overlay, with the latent step done in pixels:
# the mask is rounded on the 8x8 latent grid (mask_round), generated pixels are kept where it is 1 and the init
# image elsewhere (`samples * nmask + init_latent * mask`), then the original is composited over the result through
# `mask_for_overlay` (the blurred mask), after pasting the "only masked" crop back at `paste_to`.
OPT_F = 8


def create_binary_mask(image, round=True):
    if image.mode == "RGBA" and image.getextrema()[-1] != (255, 255):
        if round:
            image = image.split()[-1].convert("L").point(lambda x: 255 if x > 128 else 0)
        else:
            image = image.split()[-1].convert("L")
    else:
        image = image.convert("L")
    return image


def _blur_mask(p, image_mask):
    import cv2
    import numpy as np
    from PIL import Image

    if p.mask_blur_x > 0:
        kernel_size = 2 * int(2.5 * p.mask_blur_x + 0.5) + 1
        image_mask = Image.fromarray(cv2.GaussianBlur(np.array(image_mask), (kernel_size, 1), p.mask_blur_x))
    if p.mask_blur_y > 0:
        kernel_size = 2 * int(2.5 * p.mask_blur_y + 0.5) + 1
        image_mask = Image.fromarray(cv2.GaussianBlur(np.array(image_mask), (1, kernel_size), p.mask_blur_y))
    if p.mask_blur_x > 0 or p.mask_blur_y > 0:
        p.extra_generation_params["Mask blur"] = p.mask_blur
    return image_mask


def _crop_mask(p, image_mask):
    """Returns (mask at processing size, crop_region or None); sets mask_for_overlay and paste_to like the host."""
    import numpy as np
    from PIL import Image

    from modules import images, masking

    if p.inpaint_full_res:
        p.mask_for_overlay = image_mask
        mask = image_mask.convert("L")
        crop_region = masking.get_crop_region_v2(mask, p.inpaint_full_res_padding)
        if crop_region:
            crop_region = masking.expand_crop_region(crop_region, p.width, p.height, mask.width, mask.height)
            x1, y1, x2, y2 = crop_region
            mask = mask.crop(crop_region)
            image_mask = images.resize_image(2, mask, p.width, p.height)
            p.paste_to = (x1, y1, x2 - x1, y2 - y1)
            p.extra_generation_params["Inpaint area"] = "Only masked"
            p.extra_generation_params["Masked area padding"] = p.inpaint_full_res_padding
            return image_mask, crop_region
        p.mask_for_overlay = None
        p.inpaint_full_res = False
        p.comment('Unable to perform "Inpaint Only mask" because mask is blank, switch to img2img mode.')
        return None, None
    image_mask = images.resize_image(p.resize_mode, image_mask, p.width, p.height)
    np_mask = np.clip(np.array(image_mask).astype(np.float32) * 2, 0, 255).astype(np.uint8)
    p.mask_for_overlay = Image.fromarray(np_mask)
    return image_mask, None


def img2img_init(p):
    from PIL import Image, ImageOps

    from modules import images, masking

    p.extra_generation_params["Denoising strength"] = p.denoising_strength
    crop_region, image_mask = None, p.image_mask
    if image_mask is not None:
        image_mask = create_binary_mask(image_mask, round=p.mask_round)
        if p.inpainting_mask_invert:
            image_mask = ImageOps.invert(image_mask)
            p.extra_generation_params["Mask mode"] = "Inpaint not masked"
        image_mask = _blur_mask(p, image_mask)
        image_mask, crop_region = _crop_mask(p, image_mask)
        if image_mask is not None:
            p.overlay_images = []
    p.latent_mask_image = p.latent_mask if p.latent_mask is not None else image_mask
    p.init_pixels = []
    for img in p.init_images:
        image = img.convert("RGB")  # images.flatten on an RGB image
        if crop_region is None and p.resize_mode != 3:
            image = images.resize_image(p.resize_mode, image, p.width, p.height)
        if image_mask is not None:
            if p.mask_for_overlay.size != (image.width, image.height):
                p.mask_for_overlay = images.resize_image(p.resize_mode, p.mask_for_overlay, image.width, image.height)
            image_masked = Image.new("RGBa", (image.width, image.height))
            image_masked.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(p.mask_for_overlay.convert("L")))
            p.overlay_images.append(image_masked.convert("RGBA"))
        if crop_region is not None:
            image = images.resize_image(2, image.crop(crop_region), p.width, p.height)
        if image_mask is not None and p.inpainting_fill != 1:
            image = masking.fill(image, p.latent_mask_image)
            if p.inpainting_fill == 0:
                p.extra_generation_params["Masked content"] = "fill"
        p.init_pixels.append(image)
    if len(p.init_pixels) == 1:
        p.init_pixels = p.init_pixels * p.batch_size
        if p.overlay_images is not None:
            p.overlay_images = p.overlay_images * p.batch_size
    elif len(p.init_pixels) <= p.batch_size:
        p.batch_size = len(p.init_pixels)
    else:
        raise RuntimeError(f"bad number of images passed: {len(p.init_pixels)}; expecting {p.batch_size} or less")


def sample_img2img(p, i, seed):
    """The "sampler" repaints the init image (FakeSampler.sample_img2img), then the latent-mask blend in pixels."""
    import numpy as np
    from PIL import Image

    if p.scripts is not None:
        p.scripts.process_before_every_sampling(p, x=None, noise=None, c=None, uc=None)
    init = p.init_pixels[i % len(p.init_pixels)]
    generated = fake_sampler.sample_img2img(p, init, p.latent_mask_image, seed, p.prompts[i], p.negative_prompts[i],
                                            p.extra_network_data[i])
    if p.latent_mask_image is None:
        return generated
    grid = (p.width // OPT_F, p.height // OPT_F)
    latmask = np.array(p.latent_mask_image.convert("RGB").resize(grid), dtype=np.float32)[:, :, 0] / 255
    if p.mask_round:
        latmask = np.around(latmask)
    keep = np.array(Image.fromarray((latmask * 255).astype(np.uint8)).resize((p.width, p.height), Image.NEAREST)) / 255.0
    blended = np.asarray(generated, np.float32) * keep[:, :, None] + np.asarray(init, np.float32) * (1 - keep[:, :, None])
    return Image.fromarray(np.round(blended).astype(np.uint8))


def uncrop(image, dest_size, paste_loc):
    from PIL import Image

    from modules import images

    x, y, w, h = paste_loc
    base_image = Image.new("RGBA", dest_size)
    image = images.resize_image(1, image, w, h)
    base_image.paste(image, (x, y))
    return base_image


def apply_overlay(image, paste_loc, overlay):
    if overlay is None:
        return image, image.copy()
    if paste_loc is not None:
        image = uncrop(image, (overlay.width, overlay.height), paste_loc)
    original_denoised_image = image.copy()
    image = image.convert("RGBA")
    image.alpha_composite(overlay)
    return image.convert("RGB"), original_denoised_image


def composite_overlay(p, image, i):
    """The host's per-image overlay step between postprocess_image and postprocess_image_after_composite."""
    overlays = getattr(p, "overlay_images", None)
    if not shared.opts.overlay_inpaint or overlays is None or i >= len(overlays):
        overlay = None
    else:
        overlay = overlays[i]
    image, _ = apply_overlay(image, p.paste_to, overlay)
    return image
