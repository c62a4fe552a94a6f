"""Forge's SD1 UNet (`backend/nn/unet.py`, `IntegratedUNet2DConditionModel`) on ldm's module tree.

Forge's UNet has ldm's layout and parameter names (`input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight`, ...), so
the stand-in builds ldm's real `UNetModel` and gives its containers Forge's forward passes (classes re-bound to the
subclasses below; no new state). What follows Forge, read from backend/nn/unet.py:
- `forward(x, timesteps, context, y, control, transformer_options)`: writes `original_shape`, `transformer_index`
  and `block` = ("input", i) / ("middle", 0) / ("output", i) into the caller's `transformer_options`, runs the
  `input_block_patch` / `output_block_patch` / `block_modifiers` hooks.
- `TimestepEmbedSequential.forward`: a SpatialTransformer gets `transformer_options`; `transformer_index` += 1 after it.
- `SpatialTransformer.forward`: sets `transformer_options["block_index"]` to the block's index before each block.
- `BasicTransformerBlock._forward`: `extra_options` = every transformer option except `patches`/`patches_replace`,
  plus `n_heads`, `dim_head`; `attn1_patch`, attn1, `attn1_output_patch`, `x += n` (in place), **`middle_patch`**
  (`x = p(x, extra_options)`), norm2, `attn2_patch`, attn2, `attn2_output_patch`, `x += n`, then ff; the residual adds
  are in place, as in Forge (so autograd through a block fails where Forge's would).
- `CrossAttention.forward(x, context, value, mask, transformer_options)`: `attention_pytorch` = torch SDPA.
Not mimicked: `patches_replace`, ControlNet `control`, `group_norm_wrapper`, `block_inner_modifiers`.
"""

from __future__ import annotations

import torch
from einops import rearrange
from ldm.modules import attention as ldm_attention
from ldm.modules.diffusionmodules import openaimodel as ldm_unet
from torch import nn


class CrossAttention(ldm_attention.CrossAttention):
    def forward(self, x, context=None, value=None, mask=None, transformer_options={}):  # noqa: B006 - Forge's signature
        q = self.to_q(x)
        context = x if context is None else context
        k = self.to_k(context)
        v = self.to_v(value if value is not None else context)
        b, _, inner = q.shape
        heads, dim_head = self.heads, inner // self.heads
        q, k, v = (t.view(b, -1, heads, dim_head).transpose(1, 2) for t in (q, k, v))
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)
        return self.to_out(out.transpose(1, 2).reshape(b, -1, heads * dim_head))


class BasicTransformerBlock(ldm_attention.BasicTransformerBlock):
    def forward(self, x, context=None, transformer_options={}):  # noqa: B006
        if self.checkpoint:  # Forge: backend/nn/unet.py checkpoint() raises for enable=True
            raise NotImplementedError("Gradient Checkpointing is not implemented.")
        return self._forward(x, context, transformer_options)

    def _forward(self, x, context=None, transformer_options={}):  # noqa: B006
        patches = transformer_options.get("patches", {})
        extra_options = {k: v for k, v in transformer_options.items() if k not in ("patches", "patches_replace")}
        extra_options["n_heads"] = self.n_heads
        extra_options["dim_head"] = self.d_head
        n = self.norm1(x)
        context_attn1 = context if self.disable_self_attn else None
        value_attn1 = None
        if "attn1_patch" in patches:
            context_attn1 = n if context_attn1 is None else context_attn1
            value_attn1 = context_attn1
            for p in patches["attn1_patch"]:
                n, context_attn1, value_attn1 = p(n, context_attn1, value_attn1, extra_options)
        n = self.attn1(n, context=context_attn1, value=value_attn1, transformer_options=extra_options)
        for p in patches.get("attn1_output_patch", []):
            n = p(n, extra_options)
        x += n
        for p in patches.get("middle_patch", []):
            x = p(x, extra_options)
        n = self.norm2(x)
        context_attn2, value_attn2 = context, None
        if "attn2_patch" in patches:
            value_attn2 = context_attn2
            for p in patches["attn2_patch"]:
                n, context_attn2, value_attn2 = p(n, context_attn2, value_attn2, extra_options)
        n = self.attn2(n, context=context_attn2, value=value_attn2, transformer_options=extra_options)
        for p in patches.get("attn2_output_patch", []):
            n = p(n, extra_options)
        x += n
        x_skip = x
        x = self.ff(self.norm3(x))
        x += x_skip
        return x


class SpatialTransformer(ldm_attention.SpatialTransformer):
    def forward(self, x, context=None, transformer_options={}):  # noqa: B006
        if not isinstance(context, list):
            context = [context] * len(self.transformer_blocks)
        b, c, h, w = x.shape
        x_in = x
        x = self.norm(x)
        if not self.use_linear:
            x = self.proj_in(x)
        x = rearrange(x, "b c h w -> b (h w) c").contiguous()
        if self.use_linear:
            x = self.proj_in(x)
        for i, block in enumerate(self.transformer_blocks):
            transformer_options["block_index"] = i
            x = block(x, context=context[i], transformer_options=transformer_options)
        if self.use_linear:
            x = self.proj_out(x)
        x = rearrange(x, "b (h w) c -> b c h w", h=h, w=w).contiguous()
        if not self.use_linear:
            x = self.proj_out(x)
        return x + x_in


class TimestepEmbedSequential(ldm_unet.TimestepEmbedSequential):
    def forward(self, x, emb, context=None, transformer_options={}, output_shape=None):  # noqa: B006
        for layer in self:
            if isinstance(layer, ldm_unet.TimestepBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context, transformer_options)
                if "transformer_index" in transformer_options:
                    transformer_options["transformer_index"] += 1
            else:
                x = layer(x)
        return x


_REBIND = {
    ldm_attention.CrossAttention: CrossAttention,
    ldm_attention.BasicTransformerBlock: BasicTransformerBlock,
    ldm_attention.SpatialTransformer: SpatialTransformer,
    ldm_unet.TimestepEmbedSequential: TimestepEmbedSequential,
}


class IntegratedUNet2DConditionModel(ldm_unet.UNetModel):
    """`IntegratedUNet2DConditionModel(**unet_config)`; `.config` holds the constructor arguments (Forge: ConfigMixin)."""

    def __init__(self, **config) -> None:
        super().__init__(**config)
        self.config = dict(config)
        for module in self.modules():
            cls = _REBIND.get(type(module))
            if cls is not None:
                module.__class__ = cls
            if isinstance(module, BasicTransformerBlock):
                module.n_heads = module.attn1.heads
                module.d_head = module.attn1.to_q.out_features // module.attn1.heads
                module.checkpoint = False  # Forge's SD1 config builds the UNet with use_checkpoint=False

    def forward(self, x, timesteps=None, context=None, y=None, control=None, transformer_options={}, **kwargs):  # noqa: B006
        transformer_options["original_shape"] = list(x.shape)
        transformer_options["transformer_index"] = 0
        patches = transformer_options.get("patches", {})
        modifiers = transformer_options.get("block_modifiers", [])
        emb = self.time_embed(ldm_unet.timestep_embedding(timesteps, self.model_channels, repeat_only=False).to(x.dtype))
        if self.num_classes is not None:
            emb = emb + self.label_emb(y)
        hs, h = [], x
        for index, module in enumerate(self.input_blocks):
            transformer_options["block"] = ("input", index)
            h = _run_block(module, h, emb, context, transformer_options, modifiers)
            for p in patches.get("input_block_patch", []):
                h = p(h, transformer_options)
            hs.append(h)
            for p in patches.get("input_block_patch_after_skip", []):
                h = p(h, transformer_options)
        transformer_options["block"] = ("middle", 0)
        h = _run_block(self.middle_block, h, emb, context, transformer_options, modifiers)
        for index, module in enumerate(self.output_blocks):
            transformer_options["block"] = ("output", index)
            hsp = hs.pop()
            for p in patches.get("output_block_patch", []):
                h, hsp = p(h, hsp, transformer_options)
            h = _run_block(module, torch.cat([h, hsp], dim=1), emb, context, transformer_options, modifiers)
        transformer_options["block"] = ("last", 0)
        return self.out(h).type(x.dtype)


def _run_block(module: nn.Module, h, emb, context, transformer_options: dict, modifiers: list):
    for modifier in modifiers:
        h = modifier(h, "before", transformer_options)
    h = module(h, emb, context, transformer_options)
    for modifier in modifiers:
        h = modifier(h, "after", transformer_options)
    return h
