"""Stand-in for modules/devices.py on a CPU-only machine."""

from __future__ import annotations

import contextlib
import gc

import torch

cpu = torch.device("cpu")
device = cpu
device_interrogate = cpu
device_gfpgan = cpu
device_esrgan = cpu
device_codeformer = cpu
dtype = torch.float32
dtype_vae = torch.float32
dtype_unet = torch.float32
dtype_inference = torch.float32
unet_needs_upcast = False


def torch_gc() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def cond_cast_unet(tensor):
    return tensor.to(dtype_unet) if unet_needs_upcast else tensor


def cond_cast_float(tensor):
    return tensor.float() if unet_needs_upcast else tensor


def autocast(disable: bool = False):
    # the host returns a no-op context for float32 or when disabled; on CPU it always is
    return contextlib.nullcontext()


def without_autocast(disable: bool = False):
    return contextlib.nullcontext()
