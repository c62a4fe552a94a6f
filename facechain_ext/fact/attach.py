"""Attach FACT adapter blocks to an ldm `UNetModel` instance with torch hooks, and take them off again.

Design (issue 8 §2, choice (a)): nothing in the host's UNet is replaced or patched. For each adapted
`BasicTransformerBlock` (ldm/modules/attention.py: `x = attn2(norm2(x), context) + x`) two hooks go on the block's
own submodule instances:
- a forward pre-hook on `norm2` computes x' = FactBlock(x, face, scale), keeps δ = x' − x and hands x' to norm2;
- a forward hook on `attn2` returns attn2(norm2(x')) + δ, so the block's residual add gives x' + attn2(norm2(x')),
  exactly FACT's "adapter between self-attention and text cross-attention" (FACECHAIN_FACTS.md §5).
One forward pre-hook on the UNet itself reads each call's cross-attention context and decides, per row, whether the
row gets the face tokens (conditional rows) or the "no face" tokens (unconditional rows), see `RowRouter`.

Why hooks and not an instance `_forward` wrapper (sd-webui-controlnet's reference-only convention): hooks live in
`Module.__call__`, so they work whatever `forward`/`_forward` is: the host's class-level attention optimisations
(modules/sd_hijack_optimizations.py), the Lora extension's class-level Linear/LayerNorm forwards, ToMe's block
class swap and ControlNet's own `_forward` replacement (its hacked forward still calls `self.norm2` and `self.attn2`)
all keep working, and nobody can restore a stale wrapper of ours later. A `_forward` wrapper would re-implement the
block body (ignoring whatever else patched it) and fight ControlNet over one attribute. Detaching removes our hook
handles; every module object, attribute and forward stays what it was.

Host-free: works on any ldm UNetModel instance; no `modules` import.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from ..errors import FaceChainError
from .adapter import FactBlock
from .sites import Site

HOOK_MARK = "facechain_fact_hook"  # attribute set on every hook callable we register (lets a sweep find strays)
_HOOK_DICTS = ("_forward_pre_hooks", "_forward_hooks")
_HOOK_SIDE_SETS = ("_forward_pre_hooks_with_kwargs", "_forward_hooks_with_kwargs", "_forward_hooks_always_called")


@dataclass(frozen=True)
class FaceTokens:
    """The two token sets of one job: `face` for conditional rows, `no_face` (resampler(zeros)) for unconditional rows.

    Both (1, T, 768) with T = 16 per photo (FACECHAIN_FACTS.md §5, "cfg_face").
    """

    face: torch.Tensor
    no_face: torch.Tensor

    def __post_init__(self) -> None:
        if self.face.dim() != 3 or self.face.shape[0] != 1 or self.face.shape != self.no_face.shape:
            raise ValueError(
                f"face tokens must be two (1, T, 768) tensors of one shape, got {tuple(self.face.shape)} "
                f"and {tuple(self.no_face.shape)}"
            )


def _crossattn(cond: Any) -> Optional[torch.Tensor]:
    """The cross-attention tensor of a host conditioning (a tensor, or SDXL's dict with 'crossattn')."""
    if isinstance(cond, dict):
        cond = cond.get("crossattn")
    return cond if isinstance(cond, torch.Tensor) else None


def _matches(context: torch.Tensor, refs: torch.Tensor) -> list[bool]:
    """Per row of `context` (B, L, D): equal to some row of `refs` (N, L', D) over their common token prefix.

    A prefix because the host pads a shorter conditioning with empty-prompt chunks (`pad_cond_uncond`) or repeats /
    truncates the uncond (`pad_cond_uncond_v0`) after the on_cfg_denoiser callback (modules/sd_samplers_cfg_denoiser.py).
    """
    length = min(context.shape[1], refs.shape[1])
    if context.shape[-1] != refs.shape[-1] or length == 0:
        return [False] * context.shape[0]
    refs = refs[:, :length].to(device=context.device, dtype=context.dtype)
    hits = [bool((refs == row[:length]).flatten(1).all(1).any()) for row in context]
    return hits


class RowRouter:
    """Which rows of a UNet call are conditional (face tokens) and which unconditional ("no face" tokens).

    The host's CFG denoiser (A1111 modules/sd_samplers_cfg_denoiser.py `CFGDenoiser.forward`) lays one sampling step
    out as x_in = [cond rows (one per prompt of each image, `AND` gives several); uncond rows (one per image)] and
    feeds it in one call (batch_cond_uncond), in chunks of batch_size, cond chunks then one uncond call (cond and
    uncond of different lengths), or cond rows only (skip_uncond: "Negative Guidance minimum sigma", skip_early_cond).
    `begin_step` gets the step's `text_cond`/`text_uncond` from `on_cfg_denoiser`; each call's rows are then
    classified by content: a row equal to an uncond row and to no cond row is unconditional, and vice versa, in
    whatever chunks and order the host (or another extension) calls the UNet. Only a row equal to both (the prompt
    equals the negative prompt) or to neither (another callback changed the conditioning) falls back to its position
    in the host's layout, counted over the step's calls. Without step information (a caller that does no CFG) every
    row is conditional.
    """

    def __init__(self) -> None:
        self._cond: Optional[torch.Tensor] = None
        self._uncond: Optional[torch.Tensor] = None
        self._cursor = 0

    @property
    def has_step(self) -> bool:
        return self._cond is not None

    def begin_step(self, text_cond: Any, text_uncond: Any) -> None:
        """A new sampling step: the conditionings the denoiser is about to feed (either may be None)."""
        self._cond, self._uncond = _crossattn(text_cond), _crossattn(text_uncond)
        if self._cond is None or self._uncond is None:
            self._cond = self._uncond = None
        self._cursor = 0

    def clear(self) -> None:
        self._cond = self._uncond = None
        self._cursor = 0

    def route(self, context: Optional[torch.Tensor], batch: int) -> tuple[bool, ...]:
        """True (face tokens) / False (no-face tokens) for each of the `batch` rows of one UNet call."""
        offset, self._cursor = self._cursor, self._cursor + batch
        context = _crossattn(context)
        if self._cond is None or self._uncond is None or context is None or context.dim() != 3:
            return (True,) * batch
        is_cond, is_uncond = _matches(context, self._cond), _matches(context, self._uncond)
        n_cond = self._cond.shape[0]
        return tuple(c if c != u else offset + r < n_cond for r, (c, u) in enumerate(zip(is_cond, is_uncond, strict=True)))


class _Hook:
    """A marked hook callable (HOOK_MARK), so `remove_fact_hooks` can find ours among the host's hooks."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        setattr(self, HOOK_MARK, True)

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


@dataclass
class _SiteHooks:
    path: str
    host_block: nn.Module
    fact: FactBlock
    delta: Optional[torch.Tensor] = None


def host_block(unet: nn.Module, site: Site) -> nn.Module:
    """The host's BasicTransformerBlock at `site.compvis`, checked to have FACT's insertion points and width."""
    try:
        block = unet.get_submodule(site.compvis)
    except AttributeError as exc:
        raise FaceChainError(
            "unsupported_model", f"The UNet has no transformer block at {site.compvis}: it is not an SD1.x UNet.",
            path=site.compvis,
        ) from exc
    norm2, attn2 = getattr(block, "norm2", None), getattr(block, "attn2", None)
    width = getattr(norm2, "normalized_shape", (None,))[0]
    if not isinstance(norm2, nn.LayerNorm) or not isinstance(attn2, nn.Module) or width != site.hidden:
        raise FaceChainError(
            "unsupported_model",
            f"The UNet block at {site.compvis} is not an SD1.x transformer block of width {site.hidden} "
            f"(norm2 width {width}).",
            path=site.compvis, expected=site.hidden, found=width,
        )
    return block


class FactAttachment:
    """FACT hooked into one UNet instance for one job. `detach()` (idempotent) takes every hook off again.

    unet: an ldm UNetModel (`sd_model.model.diffusion_model`). blocks: (site, FactBlock) pairs, e.g.
    `[(s, adapter.block(s)) for s in adapter.sites]`. tokens: the job's FaceTokens. scale: FACT's scale s (0 = off).
    offload_device: where each FactBlock goes back to after its call (the CPU under `--lowvram`, where the host keeps
    one UNet block at a time on the GPU, modules/lowvram.py); None keeps the blocks wherever they were last used.
    Each FactBlock is moved to the device of the tokens it processes at call time, and fed in its own dtype.
    """

    def __init__(
        self, unet: nn.Module, blocks: Sequence[tuple[Site, FactBlock]], tokens: FaceTokens, *, scale: float,
        router: Optional[RowRouter] = None, offload_device: Optional[torch.device] = None,
    ) -> None:
        if has_fact_hooks(unet):
            raise ValueError("this UNet still carries FACT hooks; call remove_fact_hooks(unet) first")
        self.unet = unet
        self.tokens = tokens
        self.scale = float(scale)
        self.router = router if router is not None else RowRouter()
        self.offload_device = offload_device
        self.calls = 0  # UNet calls seen (tests, diagnostics)
        self.block_calls = 0  # adapter blocks run: 0 after UNet calls means something bypassed the blocks
        self._rows: Optional[tuple[bool, ...]] = None
        self._face_cache: dict[tuple, torch.Tensor] = {}
        # validate every site before the first hook goes on: all or nothing
        self._sites = [_SiteHooks(site.compvis, host_block(unet, site), fact) for site, fact in blocks]
        for entry in self._sites:
            if getattr(entry.fact, "hidden", None) != entry.host_block.norm2.normalized_shape[0]:
                raise ValueError(f"FACT block for {entry.path} has width {getattr(entry.fact, 'hidden', None)}, "
                                 f"the UNet block {entry.host_block.norm2.normalized_shape[0]}")
        self._handles: list[Any] = [unet.register_forward_pre_hook(_Hook(self._on_unet_call), with_kwargs=True)]
        for entry in self._sites:
            self._handles.append(entry.host_block.norm2.register_forward_pre_hook(_Hook(self._norm2_hook(entry))))
            self._handles.append(entry.host_block.attn2.register_forward_hook(_Hook(self._attn2_hook(entry))))

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def detach(self) -> None:
        """Remove every hook this attachment registered and forget per-call state (safe to call twice)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for entry in self._sites:
            entry.delta = None
        self._rows = None
        self._face_cache.clear()
        self.router.clear()

    def __enter__(self) -> FactAttachment:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.detach()

    # ---- hooks ---------------------------------------------------------------------------------------------------
    def _on_unet_call(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        # UNetModel.forward(x, timesteps=None, context=None, ...): ldm's DiffusionWrapper passes context by keyword
        x = args[0] if args else kwargs.get("x")
        context = kwargs["context"] if "context" in kwargs else (args[2] if len(args) > 2 else None)
        self.calls += 1
        self._rows = self.router.route(context, int(x.shape[0]))
        return None

    def _face_rows(self, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """(batch, T, 768): face tokens on conditional rows, no-face tokens on unconditional rows."""
        rows = self._rows if self._rows is not None else (True,) * batch
        if len(rows) != batch:
            if len(set(rows)) != 1:
                raise RuntimeError(f"FACT: a transformer block ran on {batch} rows but its UNet call had {len(rows)}")
            rows = (rows[0],) * batch
        key = (rows, device, dtype)
        face = self._face_cache.get(key)
        if face is None:
            cond = self.tokens.face.to(device=device, dtype=dtype)
            uncond = self.tokens.no_face.to(device=device, dtype=dtype)
            face = torch.cat([cond if row else uncond for row in rows])
            if len(self._face_cache) > 32:  # a handful of layouts per job; never grow without bound
                self._face_cache.clear()
            self._face_cache[key] = face
        return face

    def _norm2_hook(self, entry: _SiteHooks) -> Any:
        def before_norm2(module: nn.Module, args: tuple) -> Optional[tuple]:
            entry.delta = None
            x = args[0]
            self.block_calls += 1
            if self.scale == 0.0:
                return None
            fact = _placed(entry.fact, x.device)
            dtype = next(fact.parameters()).dtype
            out = fact(x.to(dtype), self._face_rows(x.shape[0], x.device, dtype), self.scale).to(x.dtype)
            if self.offload_device is not None:
                fact.to(self.offload_device)
            entry.delta = out - x
            return (out, *args[1:])

        return before_norm2

    def _attn2_hook(self, entry: _SiteHooks) -> Any:
        def after_attn2(module: nn.Module, args: tuple, output: torch.Tensor) -> Optional[torch.Tensor]:
            delta, entry.delta = entry.delta, None
            if delta is None:
                return None
            if delta.shape != output.shape:
                raise RuntimeError(
                    f"FACT: cross-attention at {entry.path} returned {tuple(output.shape)} for an input of "
                    f"{tuple(delta.shape)} (token merging on cross-attention?); FACT cannot run with it."
                )
            return output + delta

        return after_attn2


def _placed(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` on `device` (moved in place only when it is elsewhere)."""
    first = next(module.parameters())
    if first.device != device:
        module.to(device)
    return module


def attach(
    unet: nn.Module, blocks: Sequence[tuple[Site, FactBlock]], tokens: FaceTokens, *, scale: float,
    router: Optional[RowRouter] = None, offload_device: Optional[torch.device] = None,
) -> FactAttachment:
    """Hook FACT into `unet` (see FactAttachment); FaceChainError `unsupported_model` when a site does not fit."""
    return FactAttachment(unet, blocks, tokens, scale=scale, router=router, offload_device=offload_device)


def _marked(fn: Any) -> bool:
    return bool(getattr(fn, HOOK_MARK, False))


def has_fact_hooks(unet: nn.Module) -> bool:
    """Whether any module of `unet` carries a hook registered by this module."""
    return any(_marked(fn) for module in unet.modules() for name in _HOOK_DICTS for fn in getattr(module, name).values())


def remove_fact_hooks(unet: nn.Module) -> int:
    """Take every FACT hook off `unet` even when its FactAttachment is lost (a crashed job); returns how many.

    Host hooks (e.g. `--lowvram`'s forward pre-hooks) are left alone.
    """
    removed = 0
    for module in unet.modules():
        for name in _HOOK_DICTS:
            hooks = getattr(module, name)
            for key in [key for key, fn in hooks.items() if _marked(fn)]:
                del hooks[key]
                for side in _HOOK_SIDE_SETS:
                    getattr(module, side, {}).pop(key, None)
                removed += 1
    return removed
