"""Stand-in for modules/images.py (A1111 1.10): `image_grid` (rows from `opts.n_rows`, as processing.process_images
lays out the batch grid), `resize_image` (the three resize modes; LANCZOS, no upscaler) and
`save_image` (numbered files in the folder, the infotext as the PNG `parameters` chunk, written through a temp file and
`os.replace`, `before_image_saved`/`image_saved` callbacks, `image.already_saved_as`). Returns `(fullfn, None)`.
"""

from __future__ import annotations

import math
import os

from PIL import Image, PngImagePlugin

LANCZOS = Image.Resampling.LANCZOS if hasattr(Image, "Resampling") else Image.LANCZOS


def resize_image(resize_mode, im, width, height, upscaler_name=None):
    def resize(im, w, h):
        return im.resize((w, h), resample=LANCZOS)

    if resize_mode == 0:
        return resize(im, width, height)
    ratio = width / height
    src_ratio = im.width / im.height
    if resize_mode == 1:
        src_w = width if ratio > src_ratio else im.width * height // im.height
        src_h = height if ratio <= src_ratio else im.height * width // im.width
        resized = resize(im, src_w, src_h)
        res = Image.new("RGB", (width, height))
        res.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
        return res
    src_w = width if ratio < src_ratio else im.width * height // im.height
    src_h = height if ratio >= src_ratio else im.height * width // im.width
    resized = resize(im, src_w, src_h)
    res = Image.new("RGB", (width, height))
    res.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
    if ratio < src_ratio:
        fill_height = height // 2 - src_h // 2
        res.paste(resized.resize((width, fill_height), box=(0, 0, width, 0)), box=(0, 0))
        res.paste(resized.resize((width, fill_height), box=(0, resized.height, width, resized.height)), box=(0, fill_height + src_h))
    elif ratio > src_ratio:
        fill_width = width // 2 - src_w // 2
        res.paste(resized.resize((fill_width, height), box=(0, 0, 0, height)), box=(0, 0))
        res.paste(resized.resize((fill_width, height), box=(resized.width, 0, resized.width, height)), box=(fill_width + src_w, 0))
    return res


def image_grid(imgs, batch_size=1, rows=None):
    from modules.shared import opts

    if rows is None:
        if opts.n_rows > 0:
            rows = opts.n_rows
        elif opts.n_rows == 0:
            rows = batch_size
        elif opts.grid_prevent_empty_spots:
            rows = math.floor(math.sqrt(len(imgs)))
            while len(imgs) % rows != 0:
                rows -= 1
        else:
            rows = round(math.sqrt(len(imgs)))
    if rows > len(imgs):
        rows = len(imgs)
    cols = math.ceil(len(imgs) / rows)
    w, h = map(max, zip(*(img.size for img in imgs), strict=True))
    grid = Image.new("RGB", size=(cols * w, rows * h), color="#ffffff")
    for i, img in enumerate(imgs):
        img_w, img_h = img.size
        w_offset, h_offset = 0 if img_w == w else (w - img_w) // 2, 0 if img_h == h else (h - img_h) // 2
        grid.paste(img, box=(i % cols * w + w_offset, i // cols * h + h_offset))
    return grid


def get_next_sequence_number(path, basename):
    result = -1
    if basename != "":
        basename = basename + "-"
    for name in os.listdir(path):
        if name.startswith(basename):
            parts = os.path.splitext(name[len(basename):])[0].split("-")
            try:
                result = max(int(parts[0]), result)
            except ValueError:
                pass
    return result + 1


def save_image(image, path, basename, seed=None, prompt=None, extension="png", info=None, short_filename=False,
               no_prompt=False, grid=False, pnginfo_section_name="parameters", p=None, existing_info=None,
               forced_filename=None, suffix="", save_to_dirs=None):
    from modules import script_callbacks

    os.makedirs(path, exist_ok=True)
    decoration = "" if short_filename or seed is None else f"-{seed}"
    if forced_filename is None:
        count = get_next_sequence_number(path, basename)
        stem = f"{count:05}" if basename == "" else f"{basename}-{count:04}"
        fullfn = os.path.join(path, f"{stem}{decoration}{suffix}.{extension}")
    else:
        fullfn = os.path.join(path, f"{forced_filename}.{extension}")
    pnginfo = existing_info or {}
    if info is not None:
        pnginfo[pnginfo_section_name] = info
    params = script_callbacks.ImageSaveParams(image, p, fullfn, pnginfo)
    script_callbacks.before_image_saved_callback(params)
    image, fullfn = params.image, params.filename
    stem, ext = os.path.splitext(fullfn)
    temp = stem + ".tmp"
    data = PngImagePlugin.PngInfo()
    for key, value in params.pnginfo.items():
        data.add_text(key, str(value))
    image.save(temp, format=Image.registered_extensions()[ext], pnginfo=data)
    os.replace(temp, fullfn)
    image.already_saved_as = fullfn
    script_callbacks.image_saved_callback(params)
    return fullfn, None
