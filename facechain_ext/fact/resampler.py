"""FACT's perceiver resampler: 144 TransFace tokens x 512 -> 16 face tokens x 768 per photo.

Layout and equations: FACECHAIN_FACTS.md §5; modelscope/facechain face_adapter/face_adapter_v1.py
(`Face_Prj_Resampler(dim=1024, depth=4, dim_head=64, heads=12, num_queries=16, embedding_dim=512, output_dim=768,
ff_mult=4)`, loaded strictly from the adapter checkpoint's `local_fac_prj.*` keys). Parameter names here equal the
checkpoint keys without that prefix. ≈ 47.5 M parameters.
"""

from __future__ import annotations

import torch
from torch import nn

CHECKPOINT_PREFIX = "local_fac_prj."
NUM_QUERIES = 16  # face tokens per photo
TOKEN_DIM = 512  # TransFace-S token width
WIDTH = 1024  # perceiver width
OUT_DIM = 768  # face-token width (SD1.x text width)
DEPTH = 4
HEADS = 12
DIM_HEAD = 64


class PerceiverAttention(nn.Module):
    """Latents attend to concat(tokens, latents): q from norm2(latents), k/v from [norm1(x); norm2(latents)]."""

    def __init__(self, dim: int = WIDTH, heads: int = HEADS, dim_head: int = DIM_HEAD) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """x: (B, L, dim) projected tokens; latents: (B, Q, dim). Returns (B, Q, dim) (residual not added)."""
        x = self.norm1(x)
        latents = self.norm2(latents)
        b, q_len, _ = latents.shape
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat([x, latents], dim=1)).chunk(2, dim=-1)

        def split(t: torch.Tensor) -> torch.Tensor:  # (B, L, inner) -> (B, heads, L, dim_head)
            return t.reshape(b, t.shape[1], self.heads, self.dim_head).transpose(1, 2)

        # Scale q and k by dim_head^-1/4 each before the product and take the softmax in >= float32: keeps fp16 finite.
        root = self.dim_head**-0.25
        weights = (split(q) * root) @ (split(k) * root).transpose(-2, -1)
        weights = torch.softmax(weights.to(torch.promote_types(weights.dtype, torch.float32)), dim=-1).to(weights.dtype)
        out = (weights @ split(v)).transpose(1, 2).reshape(b, q_len, -1)
        return self.to_out(out)


def _feed_forward(dim: int = WIDTH, mult: int = 4) -> nn.Sequential:
    """Keys `0` LayerNorm, `1` Linear dim->4dim no bias, `2` GELU, `3` Linear 4dim->dim no bias."""
    return nn.Sequential(
        nn.LayerNorm(dim), nn.Linear(dim, dim * mult, bias=False), nn.GELU(), nn.Linear(dim * mult, dim, bias=False)
    )


class Resampler(nn.Module):
    """`forward(tokens (B, 144, 512)) -> (B, 16, 768)`; float dtype follows the parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.latents = nn.Parameter(torch.randn(1, NUM_QUERIES, WIDTH) / WIDTH**0.5)
        self.proj_in = nn.Linear(TOKEN_DIM, WIDTH)
        self.proj_out = nn.Linear(WIDTH, OUT_DIM)
        self.norm_out = nn.LayerNorm(OUT_DIM)
        self.layers = nn.ModuleList([nn.ModuleList([PerceiverAttention(), _feed_forward()]) for _ in range(DEPTH)])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: (B, L, 512) (L = 144 for TransFace-S). Returns (B, 16, 768)."""
        x = self.proj_in(tokens)
        latents = self.latents.expand(tokens.shape[0], -1, -1)
        for attn, ff in self.layers:  # type: ignore[misc]
            latents = latents + attn(x, latents)
            latents = latents + ff(latents)
        return self.norm_out(self.proj_out(latents))

    def checkpoint_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every `local_fac_prj.*` checkpoint key with its shape."""
        return {CHECKPOINT_PREFIX + name: tuple(t.shape) for name, t in self.state_dict().items()}
