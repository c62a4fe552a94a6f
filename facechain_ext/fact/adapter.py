"""FACT's gated self-attention adapter: one `FactBlock` per SD1.x transformer block.

Equations (FACECHAIN_FACTS.md §5; modelscope/facechain face_adapter/face_attention_processor_v1.py `FaceAttnProcessor`),
for visual tokens x (B, N, h), face tokens c (B, T, 768), scale s and scalar gates a_attn, a_dense:

    f = linear(c)                                             # (B, T, h)
    x = x + s * tanh(a_attn)  * SelfAttn(norm1([x; f]))[:, :N]  # 8 heads, q/k/v h->h no bias, out h->h with bias
    x = x + s * tanh(a_dense) * FF(norm2(x))                  # GEGLU h->8h (value, gate halves), 4h->h

The host block then runs its own norm2 + text cross-attention on the result. The checkpoint also carries `ln`, the
block's norm2 that FaceChain moved into the processor; it is loaded and validated, and the host keeps using its own
norm2 (the two are the same base-model weights). Parameter names equal the checkpoint key suffixes.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .sites import SD15_SITES, Site

FACE_DIM = 768  # width of a face token (the resampler's output; SD1.x text width)
HEADS = 8  # heads of the gated self-attention = the SD1.x block's attention heads (diffusers attn.heads)
DEFAULT_SCALE = 0.5  # FaceChain's txt2img scale (facechain/inference_fact.py `set_scale(0.5)`)
SCALE_RANGE = (0.0, 1.5)  # what the user may choose; above ~1 the face overrides the prompt (our choice)


class _GatedSelfAttention(nn.Module):
    """Multi-head self-attention over (B, L, h): q/k/v without bias, `to_out.0` with bias (checkpoint names)."""

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not divisible by {heads} heads")
        self.heads = heads
        self.to_q = nn.Linear(hidden, hidden, bias=False)
        self.to_k = nn.Linear(hidden, hidden, bias=False)
        self.to_v = nn.Linear(hidden, hidden, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(hidden, hidden)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, hidden = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:  # (B, L, h) -> (B, heads, L, h/heads)
            return t.view(b, length, self.heads, hidden // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.to_q(x)), split(self.to_k(x)), split(self.to_v(x)))
        return self.to_out[0](out.transpose(1, 2).reshape(b, length, hidden))


class _GEGLU(nn.Module):
    """`proj` h -> 2*inner, output value * GELU(gate) (value = first half)."""

    def __init__(self, dim_in: int, inner: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, inner * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class _FeedForward(nn.Module):
    """`net.0` GEGLU h -> 4h, `net.1` (dropout in training; identity here), `net.2` Linear 4h -> h."""

    def __init__(self, hidden: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.ModuleList([_GEGLU(hidden, hidden * mult), nn.Identity(), nn.Linear(hidden * mult, hidden)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class FactBlock(nn.Module):
    """The adapter of one transformer block of width `hidden`; 19 checkpoint tensors (see module docstring)."""

    def __init__(self, hidden: int, face_dim: int = FACE_DIM, heads: int = HEADS) -> None:
        super().__init__()
        self.hidden = hidden
        self.alpha_attn = nn.Parameter(torch.zeros(()))
        self.alpha_dense = nn.Parameter(torch.zeros(()))
        self.linear = nn.Linear(face_dim, hidden)
        self.attn = _GatedSelfAttention(hidden, heads)
        self.ff = _FeedForward(hidden)
        self.norm1 = nn.LayerNorm(hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.ln = nn.LayerNorm(hidden)  # relocated norm2 of the base block: validated, not applied here

    def forward(self, x: torch.Tensor, face: torch.Tensor, scale: float) -> torch.Tensor:
        """x: (B, N, h) visual tokens; face: (B or 1, T, 768) face tokens (T = 16 per photo); same dtype/device.

        Returns (B, N, h). scale 0 returns `x` itself (no computation); zero gates give x + 0 (equal to x).
        """
        if scale == 0.0:
            return x
        if face.shape[0] != x.shape[0]:
            if face.shape[0] != 1:
                raise ValueError(f"face batch {face.shape[0]} does not match visual batch {x.shape[0]}")
            face = face.expand(x.shape[0], -1, -1)
        n = x.shape[1]
        f = self.linear(face)
        attended = self.attn(self.norm1(torch.cat([x, f], dim=1)))[:, :n]
        x = x + scale * torch.tanh(self.alpha_attn) * attended
        return x + scale * torch.tanh(self.alpha_dense) * self.ff(self.norm2(x))


class FactAdapter(nn.Module):
    """One FactBlock per site (default: the 16 SD1.x sites in UNet order); ≈ 208 M parameters at SD1.x widths."""

    def __init__(self, sites: tuple[Site, ...] = SD15_SITES, face_dim: int = FACE_DIM, heads: int = HEADS) -> None:
        super().__init__()
        self.sites = tuple(sites)
        self.blocks = nn.ModuleList([FactBlock(site.hidden, face_dim, heads) for site in self.sites])
        self._index = {site: i for i, site in enumerate(self.sites)}

    def block(self, site: Site) -> FactBlock:
        """The adapter block of `site` (KeyError when the site is not adapted)."""
        return self.blocks[self._index[site]]  # type: ignore[return-value]

    def checkpoint_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every checkpoint key (`<diffusers path>.attn2.processor.<param>`) with its shape, in site order."""
        return {
            site.checkpoint_prefix + name: tuple(tensor.shape)
            for site, block in zip(self.sites, self.blocks, strict=True)
            for name, tensor in block.state_dict().items()
        }

    def load_checkpoint_state(self, state: Mapping[str, torch.Tensor], assign: bool = False) -> None:
        """Load tensors named by checkpoint keys into the blocks; `state` must hold every key (validated earlier).

        assign=True adopts the given tensors instead of copying (for modules built on the meta device).
        """
        for site, block in zip(self.sites, self.blocks, strict=True):
            prefix = site.checkpoint_prefix
            block.load_state_dict({name: state[prefix + name] for name in block.state_dict()}, strict=True, assign=assign)

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """The blocks' tensors under checkpoint keys (what FaceChain's `.ckpt` holds for the adapter part)."""
        return {
            site.checkpoint_prefix + name: tensor
            for site, block in zip(self.sites, self.blocks, strict=True)
            for name, tensor in block.state_dict().items()
        }
