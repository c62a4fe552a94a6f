"""FACT's modules against equation-level references written here with plain torch ops (float64).

References follow the published equations (FACECHAIN_FACTS.md §5; modelscope/facechain face_adapter/*.py; TransFace
backbones/vit.py), reading the weights from each module's state dict by checkpoint name, so a wrong name, order,
split, scale or norm placement in facechain_ext/fact makes them disagree. Real shapes, one adapter block.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facechain_ext.fact.adapter import FactBlock
from facechain_ext.fact.encoder import TransFaceViT
from facechain_ext.fact.model import FactModel
from facechain_ext.fact.resampler import Resampler


def _ln(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w + b


def _gelu(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _mha(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v per head; q (B, Lq, C), k/v (B, Lk, C)."""
    b, lq, c = q.shape
    d = c // heads
    out = torch.zeros_like(q)
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        scores = q[:, :, sl] @ k[:, :, sl].transpose(1, 2) / math.sqrt(d)
        weights = torch.exp(scores - scores.amax(-1, keepdim=True))
        out[:, :, sl] = (weights / weights.sum(-1, keepdim=True)) @ v[:, :, sl]
    return out


def reference_fact_block(s: dict, x: torch.Tensor, face: torch.Tensor, scale: float) -> torch.Tensor:
    n = x.shape[1]
    f = face @ s["linear.weight"].T + s["linear.bias"]
    h = _ln(torch.cat([x, f], 1), s["norm1.weight"], s["norm1.bias"])
    q, k, v = (h @ s[f"attn.to_{p}.weight"].T for p in "qkv")
    att = _mha(q, k, v, 8) @ s["attn.to_out.0.weight"].T + s["attn.to_out.0.bias"]
    x = x + scale * math.tanh(float(s["alpha_attn"])) * att[:, :n]
    proj = _ln(x, s["norm2.weight"], s["norm2.bias"]) @ s["ff.net.0.proj.weight"].T + s["ff.net.0.proj.bias"]
    inner = proj.shape[-1] // 2
    geglu = proj[..., :inner] * _gelu(proj[..., inner:])
    ff = geglu @ s["ff.net.2.weight"].T + s["ff.net.2.bias"]
    return x + scale * math.tanh(float(s["alpha_dense"])) * ff


def _randomised(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            base = 1.0 if name.endswith("weight") and p.ndim == 1 else 0.0  # norms around 1
            p.copy_(base + torch.randn(p.shape, generator=gen, dtype=p.dtype) / math.sqrt(p.shape[-1] if p.ndim else 1))
    return module.eval()


@pytest.fixture(scope="module")
def block() -> FactBlock:
    return _randomised(FactBlock(640).double(), 1)


def test_zero_gates_return_x_bit_for_bit(block: FactBlock) -> None:
    closed = FactBlock(640)
    closed.load_state_dict({k: v.float() for k, v in block.state_dict().items()})
    with torch.no_grad():
        closed.alpha_attn.zero_()
        closed.alpha_dense.zero_()
        x, face = torch.randn(2, 256, 640), torch.randn(2, 32, 768)
        assert torch.equal(closed(x, face, 0.5), x)
        assert torch.equal(block(x.double(), face.double(), 0.0), x.double())  # scale 0: x itself


def test_gated_block_matches_the_equations(block: FactBlock) -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 96, 640, generator=gen, dtype=torch.float64)
    face = torch.randn(1, 32, 768, generator=gen, dtype=torch.float64)  # 2 photos, broadcast over the batch
    state = block.state_dict()
    with torch.no_grad():
        got = block(x, face, 0.7)
        want = reference_fact_block(state, x, face.expand(2, -1, -1), 0.7)
        other = block(x, torch.randn(1, 32, 768, generator=gen, dtype=torch.float64), 0.7)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    assert (got - x).abs().max() > 0.1  # the adapter does act
    assert (other - got).abs().max() > 1e-3  # and another face gives another result


def reference_resampler(s: dict, tokens: torch.Tensor) -> torch.Tensor:
    x = tokens @ s["proj_in.weight"].T + s["proj_in.bias"]
    lat = s["latents"].expand(tokens.shape[0], -1, -1)
    for i in range(4):
        p = f"layers.{i}."
        xn = _ln(x, s[p + "0.norm1.weight"], s[p + "0.norm1.bias"])
        ln = _ln(lat, s[p + "0.norm2.weight"], s[p + "0.norm2.bias"])
        q = ln @ s[p + "0.to_q.weight"].T
        kv = torch.cat([xn, ln], 1) @ s[p + "0.to_kv.weight"].T
        k, v = kv[..., :768], kv[..., 768:]
        lat = lat + _mha(q, k, v, 12) @ s[p + "0.to_out.weight"].T
        h = _ln(lat, s[p + "1.0.weight"], s[p + "1.0.bias"]) @ s[p + "1.1.weight"].T
        lat = lat + _gelu(h) @ s[p + "1.3.weight"].T
    out = lat @ s["proj_out.weight"].T + s["proj_out.bias"]
    return _ln(out, s["norm_out.weight"], s["norm_out.bias"])


def test_resampler_matches_the_equations_and_no_face_is_resampler_of_zeros() -> None:
    resampler = _randomised(Resampler().double(), 3)
    tokens = torch.randn(2, 144, 512, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        got = resampler(tokens)
        torch.testing.assert_close(got, reference_resampler(resampler.state_dict(), tokens), rtol=1e-9, atol=1e-9)
        assert got.shape == (2, 16, 768) and (got[0] - got[1]).abs().max() > 0.1
        with torch.device("meta"):  # no_face_tokens never runs the encoder
            encoder = TransFaceViT()
        model = FactModel(encoder, resampler, _tiny_adapter())
        zeros_out = resampler(torch.zeros(1, 144, 512, dtype=torch.float64))
    no_face = model.no_face_tokens(3)
    assert no_face.shape == (1, 48, 768)
    for i in range(3):
        assert torch.equal(no_face[0, 16 * i : 16 * (i + 1)], zeros_out[0])


def _tiny_adapter():
    from facechain_ext.fact.adapter import FactAdapter
    from facechain_ext.fact.sites import SD15_SITES

    return FactAdapter(sites=SD15_SITES[:1])


def reference_vit(s: dict, img: torch.Tensor) -> torch.Tensor:
    b = img.shape[0]
    patches = img.unfold(2, 9, 9).unfold(3, 9, 9)  # (B, 3, 12, 12, 9, 9)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(b, 144, 3 * 81)
    x = patches @ s["patch_embed.proj.weight"].reshape(512, -1).T + s["patch_embed.proj.bias"] + s["pos_embed"]
    for i in range(12):
        p = f"blocks.{i}."
        h = _ln(x, s[p + "norm1.weight"], s[p + "norm1.bias"]) @ s[p + "attn.qkv.weight"].T
        att = _mha(h[..., :512], h[..., 512:1024], h[..., 1024:], 8)
        x = x + att @ s[p + "attn.proj.weight"].T + s[p + "attn.proj.bias"]
        h = _ln(x, s[p + "norm2.weight"], s[p + "norm2.bias"]) @ s[p + "mlp.fc1.weight"].T + s[p + "mlp.fc1.bias"]
        x = x + h.clamp(0.0, 6.0) @ s[p + "mlp.fc2.weight"].T + s[p + "mlp.fc2.bias"]
    return _ln(x, s["norm.weight"], s["norm.bias"])


def test_encoder_is_transface_with_all_144_tokens_after_the_final_layernorm() -> None:
    encoder = _randomised(TransFaceViT().double(), 5)
    with torch.no_grad():
        encoder.norm.weight.fill_(1.0)
        encoder.norm.bias.zero_()
        img = torch.rand(2, 3, 112, 112, generator=torch.Generator().manual_seed(6), dtype=torch.float64) * 2 - 1
        got = encoder(img)
        want = reference_vit(encoder.state_dict(), img)
    assert got.shape == (2, 144, 512) and got.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-8)
    # the final LayerNorm is the last op: unit-variance, zero-mean tokens when its affine is the identity
    np.testing.assert_allclose(got.mean(-1).numpy(), 0.0, atol=1e-9)
    np.testing.assert_allclose(got.var(-1, unbiased=False).numpy(), 1.0, atol=1e-4)
    with pytest.raises(ValueError, match="112"):
        encoder(torch.zeros(1, 3, 128, 128, dtype=torch.float64))
