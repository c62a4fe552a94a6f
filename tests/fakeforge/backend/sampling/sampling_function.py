"""Forge `backend/sampling/sampling_function.py`: how one CFG step calls the UNet (the rows patches see).

Followed from Forge:
- `sampling_prepare(unet, x)`: `load_models_gpu([unet] + unet.extra_model_patchers_during_sampling)`.
- `calc_cond_uncond_batch`: the cond and the uncond entries are batched together and popped in reverse, so the UNet
  batch is [uncond rows; cond rows] and `cond_or_uncond = [1, 0]` (COND = 0, UNCOND = 1; each chunk has the batch size
  of x); `transformer_options` = a shallow copy of `model_options["transformer_options"]` plus `cond_or_uncond`,
  `sigmas` (σ of the chunk), `cond_mark`, `cond_indices`, `uncond_indices`; the model is `KModel.apply_model`.
- `sampling_function_inner`: `uncond + (cond − uncond) · cond_scale`; with `cond_scale == 1` the uncond pass is skipped
  (unless `disable_cfg1_optimization`).
Not mimicked: areas/masks, ControlNet, `model_function_wrapper`, pre/post CFG functions, memory-based batch splitting.
"""

from __future__ import annotations

import math

import torch

from backend import memory_management

COND, UNCOND = 0, 1


def sampling_prepare(unet, x) -> None:
    memory_management.load_models_gpu([unet] + unet.extra_model_patchers_during_sampling)


def calc_cond_uncond_batch(model, cond, uncond, x_in, timestep, model_options):
    to_run = [(cond, COND)] + ([(uncond, UNCOND)] if uncond is not None else [])
    order = list(reversed(range(len(to_run))))
    batch = [to_run.pop(i) for i in order]
    cond_or_uncond = [kind for _, kind in batch]
    size = int(timestep.shape[0])
    to = dict(model_options.get("transformer_options", {}))
    to["cond_or_uncond"] = cond_or_uncond[:]
    to["sigmas"] = timestep
    to["cond_mark"] = torch.Tensor([kind for kind in cond_or_uncond for _ in range(size)]).to(timestep)
    to["cond_indices"] = [i * size + j for i, kind in enumerate(cond_or_uncond) if kind == COND for j in range(size)]
    to["uncond_indices"] = [i * size + j for i, kind in enumerate(cond_or_uncond) if kind == UNCOND for j in range(size)]
    x = torch.cat([x_in] * len(batch))
    context = torch.cat([c for c, _ in batch])
    output = model.apply_model(x, torch.cat([timestep] * len(batch)), c_crossattn=context,
                               transformer_options=to).chunk(len(batch))
    outs = dict(zip(cond_or_uncond, output, strict=True))
    return outs[COND], outs.get(UNCOND)


def sampling_function_inner(model, x, timestep, uncond, cond, cond_scale, model_options={}):  # noqa: B006
    if math.isclose(cond_scale, 1.0) and not model_options.get("disable_cfg1_optimization", False):
        uncond = None
    cond_pred, uncond_pred = calc_cond_uncond_batch(model, cond, uncond, x, timestep, model_options)
    if uncond_pred is None:
        return cond_pred
    return uncond_pred + (cond_pred - uncond_pred) * cond_scale


def sampling_function(unet_patcher, x, sigma, cond, uncond, cond_scale):
    """One denoiser call as Forge's sampler makes it on `forge_objects.unet` (σ per row of x)."""
    return sampling_function_inner(unet_patcher.model, x, sigma, uncond, cond, cond_scale, unet_patcher.model_options)
