"""FACT inside Forge: the adapter runs as a `middle_patch` of a per-job clone of Forge's UNet patcher.

Forge facts (lllyasviel/stable-diffusion-webui-forge, main branch):
- backend/nn/unet.py `BasicTransformerBlock._forward`: after `x += attn1(norm1(x))` and before `norm2`/attn2 it runs
  every `transformer_options["patches"]["middle_patch"]` as `x = patch(x, extra_options)` — exactly where FACT's gated
  self-attention sits (FACECHAIN_FACTS §5). `extra_options` carries `block` = ("input", i) / ("middle", 0) /
  ("output", i) set by `IntegratedUNet2DConditionModel.forward`, `block_index` (the transformer's index inside its
  SpatialTransformer, set by `SpatialTransformer.forward`) and `cond_or_uncond`.
- backend/sampling/sampling_function.py `calc_cond_uncond_batch`: the UNet batch is made of chunks of equal size, one
  per entry of `cond_or_uncond` (0 = cond, 1 = uncond; [uncond; cond] when both run): cond rows get the identity's
  face tokens, uncond rows FACT's "no face" tokens.
- backend/patcher/base.py `ModelPatcher.clone()` deep-copies `model_options` and `set_model_patch(fn, "middle_patch")`
  appends to the clone only; backend/patcher/unet.py `add_extra_torch_module_during_sampling(m)` makes Forge's memory
  management load `m` with the UNet at every sampling; modules/processing.py resets `sd_model.forge_objects` from
  `forge_objects_after_applying_lora` before every batch, so a patch on the clone ends with the job and nothing is
  left on the UNet.
A site is found from the tag: SD1's SpatialTransformer is layer 1 of its input/middle/output block, so ("input", 1)
with block_index 0 is `input_blocks.1.1.transformer_blocks.0` (fact/sites.py). Gates at 0 (or scale 0) add exactly 0:
the output is bit-identical to Forge's without FACT. Host-free: duck-typed over Forge's objects.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from facechain_ext.diffusion.family import require_family
from facechain_ext.errors import FaceChainError
from facechain_ext.fact.adapter import FactAdapter
from facechain_ext.fact.sites import SD15_SITES, Site

COND, UNCOND = 0, 1  # Forge's values in cond_or_uncond (sampling_function.py)
_BLOCKS = {"input": "input_blocks.{}.1", "middle": "middle_block.1", "output": "output_blocks.{}.1"}


def compvis_path(block: Sequence[Any], block_index: int) -> Optional[str]:
    """Forge's block tag + transformer index → the ldm path of that SD1 transformer block (None for other tags)."""
    template = _BLOCKS.get(block[0]) if block else None
    if template is None:
        return None
    return f"{template.format(block[1])}.transformer_blocks.{int(block_index)}"


def face_rows(face: torch.Tensor, no_face: torch.Tensor, cond_or_uncond: Sequence[int], rows: int) -> torch.Tensor:
    """(rows, T, 768) face tokens for a UNet batch of `rows`: chunk i gets `face` if cond_or_uncond[i] is cond, else
    `no_face` (both (1, T, 768))."""
    if not cond_or_uncond or rows % len(cond_or_uncond):
        raise ValueError(f"a batch of {rows} rows cannot be split into {len(cond_or_uncond)} cond/uncond chunks")
    chunk = rows // len(cond_or_uncond)
    return torch.cat([(face if kind == COND else no_face).expand(chunk, -1, -1) for kind in cond_or_uncond])


class ForgeFactPatch:
    """The `middle_patch` callable: `patch(x, extra_options) -> x` with x (B, N, h). No `.to()` method on purpose:
    Forge's `model_patches_to` would call it with the device and with a dtype of None; tokens follow x per call."""

    def __init__(self, adapter: FactAdapter, face: torch.Tensor, no_face: torch.Tensor, scale: float,
                 sites: Sequence[Site] = SD15_SITES) -> None:
        self.adapter, self.face, self.no_face, self.scale = adapter, face, no_face, float(scale)
        self.sites = {site.compvis: site for site in sites}

    def __call__(self, x: torch.Tensor, extra_options: dict) -> torch.Tensor:
        site = self.sites.get(compvis_path(extra_options.get("block"), extra_options.get("block_index", 0)) or "")
        if site is None or self.scale == 0.0:
            return x
        # A UNet call outside Forge's CFG batching carries no cond_or_uncond: every row is a conditional one.
        rows = face_rows(self.face, self.no_face, extra_options.get("cond_or_uncond") or [COND], x.shape[0])
        return self.adapter.block(site)(x, rows.to(device=x.device, dtype=x.dtype), self.scale)


def _check_sites(unet: torch.nn.Module, sites: Sequence[Site]) -> None:
    modules = dict(unet.named_modules())
    for site in sites:
        block = modules.get(site.compvis)
        width = getattr(getattr(block, "norm1", None), "normalized_shape", (None,))[0]
        if width != site.hidden:
            raise FaceChainError("unsupported_model", f"The loaded UNet has no {site.hidden}-wide transformer block at "
                                 f"{site.compvis}: FACT needs an SD1.x UNet.", site=site.compvis)


def install_forge_fact(sd_model: Any, adapter: FactAdapter, face: torch.Tensor, no_face: torch.Tensor, scale: float,
                       *, sites: Sequence[Site] = SD15_SITES) -> Any:
    """Put FACT on this job's UNet: clone `sd_model.forge_objects.unet`, register the adapter for sampling, add the
    middle patch, assign the clone back (call from `process_before_every_sampling`). Returns the clone.

    face / no_face: (1, T, 768) tokens (FactModel.face_tokens / no_face_tokens with the same photo count).
    Raises FaceChainError `unsupported_model` for a non-SD1 checkpoint, `invalid_request` for mismatched tokens.
    """
    require_family(sd_model, ("sd1",), purpose="FACT face adapters")
    if face.ndim != 3 or face.shape[0] != 1 or face.shape != no_face.shape:
        raise FaceChainError("invalid_request", f"FACT tokens must both be (1, T, 768); got {tuple(face.shape)} and "
                             f"{tuple(no_face.shape)}.")
    unet = sd_model.forge_objects.unet.clone()
    kmodel = unet.model
    _check_sites(kmodel.diffusion_model, sites)
    # Forge's cast_to_unet_dtype would use the *storage* dtype (fp8 possible): cast to the computation dtype instead.
    adapter.to(dtype=getattr(kmodel, "computation_dtype", None) or next(adapter.parameters()).dtype)
    unet.add_extra_torch_module_during_sampling(adapter, cast_to_unet_dtype=False)
    unet.set_model_patch(ForgeFactPatch(adapter, face, no_face, scale, sites), "middle_patch")
    sd_model.forge_objects.unet = unet
    return unet
