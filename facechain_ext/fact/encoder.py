"""TransFace ViT-S, the face encoder of FACT: an aligned 112x112 face -> 144 tokens x 512.

Architecture (TransFace, github DanJun6737/TransFace backbones/vit.py, copied into modelscope/facechain as
face_adapter/vit.py and face_module/TransFace/backbones/vit.py; FaceChain builds it with img_size=112, patch_size=9,
embed_dim=512, depth=12, num_heads=8, norm_layer="ln", mlp ReLU6 x4, qkv without bias):

    x = Conv2d(3, 512, k=9, s=9)(img) -> (B, 144, 512) + pos_embed     # 112 // 9 = 12 -> 12 x 12 patches
    12 x [x = x + Attn(LN(x)); x = x + MLP(LN(x))]                     # pre-norm blocks
    tokens = LN(x)                                                     # in >= float32, as TransFace does

FACT feeds all 144 tokens after the final LayerNorm to the resampler (face_adapter_v1.py `Face_Transformer` takes the
"local rep", not the pooled ID embedding). The published file also holds TransFace's recognition head (`feature.*`,
an SE weighting `senet.*` and the training-time `mask_token`); FACT never runs them, so they are optional here
(`HEAD_KEY_SHAPES`), shape-checked when present and dropped by `fact convert`. Backbone ≈ 38.0 M parameters,
with the head ≈ 86.7 M (the whole published file).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMAGE_SIZE = 112
PATCH = 9
GRID = IMAGE_SIZE // PATCH  # 12
NUM_TOKENS = GRID * GRID  # 144
DIM = 512
DEPTH = 12
HEADS = 8
MLP_RATIO = 4
FLAT = NUM_TOKENS * DIM  # 73728: the flattened token map TransFace's head reads

# TransFace's recognition head, present in ms1mv2_model_TransFace_S.pt and unused by FACT (vit.py `feature`, `senet`,
# `mask_token`; BatchNorm1d eps 2e-5 with running statistics and its `num_batches_tracked` counter).
HEAD_KEY_SHAPES: dict[str, tuple[int, ...]] = {
    "mask_token": (1, 1, DIM),
    "feature.0.weight": (DIM, FLAT),
    **{f"feature.{i}.{name}": (DIM,) for i in (1, 3) for name in ("weight", "bias", "running_mean", "running_var")},
    "feature.1.num_batches_tracked": (),
    "feature.2.weight": (DIM, DIM),
    "feature.3.num_batches_tracked": (),
    "senet.0.weight": (NUM_TOKENS, FLAT),
    "senet.2.weight": (NUM_TOKENS, NUM_TOKENS),
}


class _PatchEmbed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, DIM, kernel_size=PATCH, stride=PATCH)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.proj(img).flatten(2).transpose(1, 2)  # (B, 512, 12, 12) -> (B, 144, 512), row-major patches


class _Attention(nn.Module):
    """`qkv` (3*512, 512) without bias, `proj` with bias; softmax attention in >= float32 (as TransFace)."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(DIM, DIM * 3, bias=False)
        self.proj = nn.Linear(DIM, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        wide = torch.promote_types(x.dtype, torch.float32)  # at least float32, as TransFace (autocast off)
        q, k, v = self.qkv(x).reshape(b, n, 3, HEADS, c // HEADS).permute(2, 0, 3, 1, 4).to(wide)
        out = F.scaled_dot_product_attention(q, k, v)  # scale (c / heads) ** -0.5, TransFace's default
        return self.proj(out.transpose(1, 2).reshape(b, n, c).to(x.dtype))


class _Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(DIM, DIM * MLP_RATIO)
        self.act = nn.ReLU6()
        self.fc2 = nn.Linear(DIM * MLP_RATIO, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(DIM)
        self.attn = _Attention()
        self.norm2 = nn.LayerNorm(DIM)
        self.mlp = _Mlp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TransFaceViT(nn.Module):
    """`forward(img (B, 3, 112, 112) in [-1, 1], RGB) -> (B, 144, 512)` tokens after the final LayerNorm.

    Parameter names equal the published state-dict keys of the backbone (`patch_embed.proj.*`, `pos_embed`,
    `blocks.{0..11}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*`, `norm.*`). Output dtype = parameter dtype.
    """

    def __init__(self) -> None:
        super().__init__()
        self.patch_embed = _PatchEmbed()
        self.pos_embed = nn.Parameter(torch.zeros(1, NUM_TOKENS, DIM))
        self.blocks = nn.ModuleList([_Block() for _ in range(DEPTH)])
        self.norm = nn.LayerNorm(DIM)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if img.ndim != 4 or tuple(img.shape[1:]) != (3, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"TransFace expects (B, 3, {IMAGE_SIZE}, {IMAGE_SIZE}) images, got {tuple(img.shape)}")
        x = self.patch_embed(img) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        norm, wide = self.norm, torch.promote_types(x.dtype, torch.float32)
        out = F.layer_norm(x.to(wide), (DIM,), norm.weight.to(wide), norm.bias.to(wide), norm.eps)
        return out.to(self.pos_embed.dtype)
