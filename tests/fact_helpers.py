"""Synthetic FACT release files with exactly the published key names and shapes (random-ish fp16 weights).

The shapes are written out here from the public sources, independently of facechain_ext/fact:
- TransFace-S (github DanJun6737/TransFace backbones/vit.py = modelscope/facechain face_adapter/vit.py, built with
  img_size 112, patch 9, dim 512, depth 12, heads 8, mlp 4x, qkv_bias False, norm "ln"): backbone + recognition head.
- FACT adapter (FACECHAIN_FACTS.md §5; face_attention_processor_v1.py `FaceAttnProcessor`; face_adapter_v1.py
  `Face_Prj_Resampler`): 16 x 19 processor keys + 51 `local_fac_prj.` keys.
Filling ~340 M parameters with a random generator is slow on a busy CPU, so every tensor is a window of one random
pool (a prime length, so rows do not repeat in lockstep), scaled per key.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

ENCODER_NAME = "ms1mv2_model_TransFace_S.pt"
ADAPTER_NAME = "adapter_maj_mask_large_new_reg001_faceshuffle_00290001.ckpt"
POOL_SIZE = 1_000_003

# (diffusers block path, hidden size) of the 16 SD1.5 transformer blocks, in UNet order.
SD15_BLOCKS = (
    [(f"down_blocks.{b}.attentions.{a}.transformer_blocks.0", (320, 640, 1280)[b]) for b in range(3) for a in range(2)]
    + [("mid_block.attentions.0.transformer_blocks.0", 1280)]
    + [(f"up_blocks.{b}.attentions.{a}.transformer_blocks.0", (1280, 640, 320)[b - 1]) for b in (1, 2, 3) for a in range(3)]
)


def published_encoder_backbone() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {
        "pos_embed": (1, 144, 512),
        "patch_embed.proj.weight": (512, 3, 9, 9),
        "patch_embed.proj.bias": (512,),
    }
    for i in range(12):
        p = f"blocks.{i}."
        shapes.update({
            p + "norm1.weight": (512,), p + "norm1.bias": (512,),
            p + "attn.qkv.weight": (1536, 512),
            p + "attn.proj.weight": (512, 512), p + "attn.proj.bias": (512,),
            p + "norm2.weight": (512,), p + "norm2.bias": (512,),
            p + "mlp.fc1.weight": (2048, 512), p + "mlp.fc1.bias": (2048,),
            p + "mlp.fc2.weight": (512, 2048), p + "mlp.fc2.bias": (512,),
        })  # fmt: skip
    shapes.update({"norm.weight": (512,), "norm.bias": (512,)})
    return shapes


def published_encoder_head() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"mask_token": (1, 1, 512), "feature.0.weight": (512, 144 * 512)}
    for i in (1, 3):
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"feature.{i}.{name}"] = (512,)
        shapes[f"feature.{i}.num_batches_tracked"] = ()
    shapes.update({"feature.2.weight": (512, 512), "senet.0.weight": (144, 144 * 512), "senet.2.weight": (144, 144)})
    return shapes


def published_adapter() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for block, h in SD15_BLOCKS:
        p = f"{block}.attn2.processor."
        shapes.update({
            p + "alpha_attn": (), p + "alpha_dense": (),
            p + "linear.weight": (h, 768), p + "linear.bias": (h,),
            p + "attn.to_q.weight": (h, h), p + "attn.to_k.weight": (h, h), p + "attn.to_v.weight": (h, h),
            p + "attn.to_out.0.weight": (h, h), p + "attn.to_out.0.bias": (h,),
            p + "ff.net.0.proj.weight": (8 * h, h), p + "ff.net.0.proj.bias": (8 * h,),
            p + "ff.net.2.weight": (h, 4 * h), p + "ff.net.2.bias": (h,),
            p + "norm1.weight": (h,), p + "norm1.bias": (h,), p + "norm2.weight": (h,), p + "norm2.bias": (h,),
            p + "ln.weight": (h,), p + "ln.bias": (h,),
        })  # fmt: skip
    r = "local_fac_prj."
    shapes.update({r + "latents": (1, 16, 1024), r + "proj_in.weight": (1024, 512), r + "proj_in.bias": (1024,),
                   r + "proj_out.weight": (768, 1024), r + "proj_out.bias": (768,),
                   r + "norm_out.weight": (768,), r + "norm_out.bias": (768,)})  # fmt: skip
    for i in range(4):
        p = f"{r}layers.{i}."
        shapes.update({
            p + "0.norm1.weight": (1024,), p + "0.norm1.bias": (1024,), p + "0.norm2.weight": (1024,), p + "0.norm2.bias": (1024,),
            p + "0.to_q.weight": (768, 1024), p + "0.to_kv.weight": (1536, 1024), p + "0.to_out.weight": (1024, 768),
            p + "1.0.weight": (1024,), p + "1.0.bias": (1024,), p + "1.1.weight": (4096, 1024), p + "1.3.weight": (1024, 4096),
        })  # fmt: skip
    return shapes


def _is_norm_weight(key: str) -> bool:
    norm_names = ("norm1.weight", "norm2.weight", "norm.weight", "norm_out.weight", "ln.weight", "1.0.weight")
    return key.endswith(norm_names) or key in ("feature.1.weight", "feature.3.weight")


def fill(shapes: dict[str, tuple[int, ...]], seed: int, dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """Deterministic tensors for `shapes`: weights ~ U(-1, 1)/sqrt(fan_in), norms ~ 1 +- 0.1, gates 0.2-0.6."""
    pool = torch.rand(POOL_SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    out: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(1000, dtype=torch.int64)
            continue
        n = max(1, torch.Size(shape).numel())
        start = zlib.crc32(key.encode()) % POOL_SIZE
        reps = (start + n) // POOL_SIZE + 1
        values = (pool.repeat(reps) if reps > 1 else pool)[start : start + n].reshape(shape)
        if key.endswith(("alpha_attn", "alpha_dense")):
            tensor = 0.4 + 0.2 * values
        elif _is_norm_weight(key):
            tensor = 1.0 + 0.1 * values
        elif key.endswith("running_var"):
            tensor = 1.0 + 0.5 * values.abs()
        elif len(shape) >= 2 and key != "pos_embed" and not key.endswith(("latents", "mask_token")):
            fan_in = torch.Size(shape[1:]).numel()
            tensor = values / fan_in**0.5
        else:
            tensor = 0.02 * values
        out[key] = tensor.to(dtype).contiguous()
    return out


@dataclass
class FactRelease:
    folder: Path  # <models_dir>/fact
    encoder: Path
    adapter: Path
    encoder_state: dict[str, torch.Tensor]
    adapter_state: dict[str, torch.Tensor]

    @property
    def models_dir(self) -> Path:
        return self.folder.parent


def write_release(models_dir: Path) -> FactRelease:
    """`<models_dir>/fact/` with the encoder (.pt, backbone + head) and the "maj" adapter (.ckpt), pickled by torch.save."""
    folder = models_dir / "fact"
    folder.mkdir(parents=True, exist_ok=True)
    encoder_state = fill({**published_encoder_backbone(), **published_encoder_head()}, seed=1)
    adapter_state = fill(published_adapter(), seed=2)
    torch.save(encoder_state, folder / ENCODER_NAME)
    torch.save(adapter_state, folder / ADAPTER_NAME)
    return FactRelease(folder, folder / ENCODER_NAME, folder / ADAPTER_NAME, encoder_state, adapter_state)
