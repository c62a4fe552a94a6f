"""Stand-in for modules/devices.py (A1111 1.10) on this CPU-only machine.

Precision follows the host: half precision by default, `--no-half` (and `--no-half-vae`, `--precision full`) for
float32, set at start-up as modules/shared_init.py does (`fakehost.reset_host` calls `apply_cmd_opts`). torch has no
half-precision matmul/conv on CPU, so a CPU host, real or stand-in, computes only with `--no-half`; the default
half-precision host is what most users run on a GPU (see `fakehost.load_model`).
"""

from __future__ import annotations

import contextlib
import gc

import torch

cpu = torch.device("cpu")
fp8 = False
force_fp16 = False


def get_optimal_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else cpu  # the host also looks for MPS/XPU/NPU


device = get_optimal_device()
device_interrogate = device_gfpgan = device_esrgan = device_codeformer = device
dtype = torch.float16
dtype_vae = torch.float16
dtype_unet = torch.float16
dtype_inference = torch.float16
unet_needs_upcast = False


def apply_cmd_opts(cmd_opts) -> None:
    """modules/shared_init.py initialize(): the dtypes from --no-half / --no-half-vae / --precision."""
    global dtype, dtype_vae, dtype_unet, dtype_inference, unet_needs_upcast
    dtype = torch.float32 if cmd_opts.no_half else torch.float16
    dtype_vae = torch.float32 if cmd_opts.no_half or cmd_opts.no_half_vae else torch.float16
    dtype_unet = dtype
    dtype_inference = torch.float32 if cmd_opts.precision == "full" else dtype
    unet_needs_upcast = False


def torch_gc() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def cond_cast_unet(input):
    if force_fp16:
        return input.to(torch.float16)
    return input.to(dtype_unet) if unet_needs_upcast else input


def cond_cast_float(input):
    return input.float() if unet_needs_upcast else input


def autocast(disable: bool = False):
    if disable or force_fp16:
        return contextlib.nullcontext()
    if dtype == torch.float32 or dtype_inference == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast("cuda")  # the host's default (CUDA); torch disables it, with a warning, without CUDA


def without_autocast(disable: bool = False):
    return torch.autocast("cuda", enabled=False) if torch.is_autocast_enabled() and not disable else contextlib.nullcontext()
