"""Test helpers for the FACT hook: the real ldm UNetModel at SD1.5 shapes (or narrower), filled cheaply, a real
FactAdapter with open gates, an ldm-like LatentDiffusion around a UNet, and a snapshot of everything a hook could
leave behind.

Random init of ~860 M parameters with torch's initialisers takes minutes on two busy cores: the modules are built on
the meta device, materialised with `to_empty`, then filled from one pool of random numbers (a prime-sized pool, so
rows of a matrix do not repeat in step), scaled by fan-in so activations stay O(1) through the UNet.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import nn

from facechain_ext.fact.adapter import FactAdapter
from facechain_ext.fact.sites import SD15_SITES, Site

# ldm's v1-inference.yaml unet_config (SD1.x)
SD15_UNET = dict(
    image_size=32, in_channels=4, out_channels=4, model_channels=320, attention_resolutions=[4, 2, 1],
    num_res_blocks=2, channel_mult=[1, 2, 4, 4], num_heads=8, use_spatial_transformer=True, transformer_depth=1,
    context_dim=768, use_checkpoint=True, legacy=False,
)
POOL_SIZE = 1_000_003
OPEN = 0.6  # the gates' value in tests with an open adapter (tanh 0.6 ≈ 0.54)


def narrow_unet_config(model_channels: int = 32, in_channels: int = 4) -> dict:
    """The SD1.x UNet topology (16 transformer sites, context 768) at a fraction of the width."""
    return {**SD15_UNET, "model_channels": model_channels, "in_channels": in_channels}


def sites_for(model_channels: int) -> tuple[Site, ...]:
    """SD15_SITES with the widths of a UNet of `model_channels` (320 for SD1.x itself)."""
    return tuple(Site(s.diffusers, s.compvis, s.hidden * model_channels // 320) for s in SD15_SITES)


def _copy_from_pool(flat: torch.Tensor, pool: torch.Tensor, start: int) -> None:
    """flat[:] = pool[start:], pool, pool, ... (chunked in-place copies: no big temporaries)."""
    done = 0
    while done < flat.numel():
        count = min(pool.numel() - start, flat.numel() - done)
        flat[done:done + count].copy_(pool[start:start + count])
        done, start = done + count, 0


def cheap_fill(module: nn.Module, seed: int = 0) -> nn.Module:
    """Fill every parameter/buffer: weights ~ U(-1, 1)·sqrt(3/fan_in), norm scales ≈ 1, biases small."""
    pool = torch.rand(POOL_SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    with torch.no_grad():
        for index, (name, tensor) in enumerate(list(module.named_parameters()) + list(module.named_buffers())):
            _copy_from_pool(tensor.view(-1), pool, (index * 7919 + seed * 104729) % POOL_SIZE)
            if tensor.dim() >= 2:
                tensor.mul_(math.sqrt(3.0 / tensor[0].numel()))
            elif name.endswith("weight"):
                tensor.mul_(0.1).add_(1.0)
            else:
                tensor.mul_(0.02)
    return module


def build_unet(config: Optional[dict] = None, seed: int = 0) -> nn.Module:
    from ldm.modules.diffusionmodules.openaimodel import UNetModel

    with torch.device("meta"):
        unet = UNetModel(**(config or SD15_UNET))
    return cheap_fill(unet.to_empty(device="cpu"), seed).eval().requires_grad_(False)


def build_adapter(sites: tuple[Site, ...] = SD15_SITES, seed: int = 1, gate: float = OPEN) -> FactAdapter:
    """A real FactAdapter, filled, with both gates of every block at `gate` (0 = closed, FACT's initial state)."""
    with torch.device("meta"):
        adapter = FactAdapter(sites)
    adapter = cheap_fill(adapter.to_empty(device="cpu"), seed).eval().requires_grad_(False)
    set_gates(adapter, gate)
    return adapter


def set_gates(adapter: FactAdapter, gate: float) -> None:
    with torch.no_grad():
        for block in adapter.blocks:
            block.alpha_attn.fill_(gate)
            block.alpha_dense.fill_(gate)


def pairs(adapter: FactAdapter) -> list[tuple[Site, Any]]:
    return [(site, adapter.block(site)) for site in adapter.sites]


def tokens(seed: int, photos: int = 1) -> torch.Tensor:
    """(1, 16·photos, 768) token-like values (the resampler ends in a LayerNorm: O(1) entries)."""
    return torch.randn(1, 16 * photos, 768, generator=torch.Generator().manual_seed(seed))


def text_cond(seed: int, chunks: int = 1) -> torch.Tensor:
    """(77·chunks, 768) values standing for one prompt's CLIP encoding."""
    return torch.randn(77 * chunks, 768, generator=torch.Generator().manual_seed(seed))


def bits(tensor: torch.Tensor) -> torch.Tensor:
    """The raw bit patterns of a float32 tensor, for bit-identity checks (also tells -0.0 from 0.0)."""
    return tensor.detach().contiguous().view(torch.int32)


def snapshot(unet: nn.Module) -> dict[str, Any]:
    """Everything a hook could leave behind: module objects, their instance attributes (forward/_forward
    included) and the contents of every hook dict."""
    state = {}
    for name, module in unet.named_modules():
        state[name] = (
            id(module),
            type(module),
            tuple(sorted(k for k in vars(module) if not k.startswith("_") or k in ("_forward",))),
            {k: id(v) for k, v in vars(module).items() if k in ("forward", "_forward")},
            tuple(module._forward_pre_hooks.items()),
            tuple(module._forward_hooks.items()),
            tuple(sorted(getattr(module, "_forward_pre_hooks_with_kwargs", {}))),
            tuple(sorted(getattr(module, "_forward_hooks_with_kwargs", {}))),
        )
    return state


class DiffusionWrapper(nn.Module):
    """ldm.models.diffusion.ddpm.DiffusionWrapper.forward for the keys SD1 models use ('crossattn' and the
    inpainting models' 'hybrid'); the real class cannot be imported here (its module needs torchvision)."""

    def __init__(self, diffusion_model: nn.Module, conditioning_key: str = "crossattn") -> None:
        super().__init__()
        self.diffusion_model = diffusion_model
        self.conditioning_key = conditioning_key

    def forward(self, x: torch.Tensor, t: torch.Tensor, c_concat: list = None, c_crossattn: list = None) -> torch.Tensor:
        if self.conditioning_key == "crossattn":
            return self.diffusion_model(x, t, context=torch.cat(c_crossattn, 1))
        if self.conditioning_key == "hybrid":
            return self.diffusion_model(torch.cat([x] + c_concat, dim=1), t, context=torch.cat(c_crossattn, 1))
        raise NotImplementedError(self.conditioning_key)


class FakeLatentDiffusion(nn.Module):
    """The parts of ldm's LatentDiffusion (+ webui fields) the sampling path and our hook touch."""

    def __init__(self, unet: nn.Module, conditioning_key: str = "crossattn", *, is_sd1: bool = True, title: str = "sd15-test") -> None:
        super().__init__()
        self.model = DiffusionWrapper(unet, conditioning_key)
        self.is_sd1, self.is_sd2, self.is_sdxl = is_sd1, False, False
        self.cond_stage_key = "txt"
        self.lowvram = False
        self.sd_checkpoint_info = type("CheckpointInfo", (), {"title": title, "name": title})()
        self.cond_stage_model_empty_prompt = text_cond(999)[None]  # (1, 77, 768): the empty prompt's encoding

    def apply_model(self, x_noisy: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        # webui's sd_hijack_unet casts the conditioning to the UNet dtype; LatentDiffusion.apply_model unpacks the dict
        return self.model(x_noisy, t, **cond)
