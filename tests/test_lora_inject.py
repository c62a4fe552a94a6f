"""lora_attached: LoRA is live inside the block and the UNet is restored exactly afterwards, also after errors."""

from __future__ import annotations

import pytest
import torch
from tiny_models import TinyLatentDiffusion, assert_unet_restored, tiny_diffusers_model, unet_fingerprint, unet_values

from facechain_ext.diffusion.ldm import LdmModel
from facechain_ext.lora.config import TrainConfig
from facechain_ext.lora.inject import find_targets, lora_attached
from facechain_ext.lora.trainer import diffusion_loss


@pytest.fixture(params=["compvis", "diffusers"])
def model(request, tmp_path):
    if request.param == "compvis":
        return LdmModel(TinyLatentDiffusion(tmp_path))
    return tiny_diffusers_model(tmp_path)


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 77, 32, generator=g), torch.tensor([3, 600])


def test_attach_detach_restores_exactly_and_lora_is_live_inside(model):
    unet = model.unet
    unet.requires_grad_(True)  # the host leaves requires_grad on; peft flips it off while attached
    before_fp, before_values = unet_fingerprint(unet), unet_values(unet)
    latents, cond, t = _batch()
    with torch.no_grad():
        base = model.predict(latents, t, cond)
    config = TrainConfig(rank=4, alpha=4.0, gradient_checkpointing=True)
    with lora_attached(model, config) as session:
        assert len(session.targets) == 6 * 2 * 4  # 6 transformer blocks x attn1/attn2 x q,k,v,out
        assert all(type(unet.get_submodule(p)).__module__.startswith("peft") for p in session.targets)
        assert all(p.requires_grad and p.dtype == torch.float32 for p in session.parameters())
        assert not any(p.requires_grad for n, p in unet.named_parameters() if "lora_" not in n)
        with torch.no_grad():
            assert torch.equal(model.predict(latents, t, cond), base)  # lora_B starts at zero
            for p in session.parameters():
                p.add_(0.1)
            assert (model.predict(latents, t, cond) - base).abs().max() > 1e-3
        loss = diffusion_loss(model, latents, cond, t, torch.randn_like(latents), model.alphas_cumprod)
        loss.backward()  # works with ldm's default use_checkpoint=True and with our checkpointing
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in session.parameters())
    assert_unet_restored(unet, before_fp, before_values)
    with torch.no_grad():
        assert torch.equal(model.predict(latents, t, cond), base)


def test_restores_after_exception_inside_the_block(model):
    unet = model.unet
    before_fp, before_values = unet_fingerprint(unet), unet_values(unet)
    with pytest.raises(RuntimeError, match="boom"):
        with lora_attached(model, TrainConfig(rank=2, alpha=1.0)) as session:
            with torch.no_grad():
                for p in session.parameters():
                    p.add_(1.0)
            raise RuntimeError("boom")
    assert_unet_restored(unet, before_fp, before_values)


def test_restores_when_injection_itself_fails(model, monkeypatch):
    import peft

    unet = model.unet
    before_fp, before_values = unet_fingerprint(unet), unet_values(unet)
    real = peft.tuners.lora.model.LoraModel._create_and_replace
    calls = {"n": 0}

    def failing(self, *args, **kwargs):  # fail half-way through the injection
        calls["n"] += 1
        if calls["n"] == 10:
            raise RuntimeError("injection failed")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(peft.tuners.lora.model.LoraModel, "_create_and_replace", failing)
    with pytest.raises(RuntimeError, match="injection failed"):
        with lora_attached(model, TrainConfig()):
            pass
    assert_unet_restored(unet, before_fp, before_values)


def test_targets_follow_config(model):
    targets = find_targets(model.unet, TrainConfig(target_modules=("to_k", "to_v"), attention_layers=("attn2",)))
    assert len(targets) == 6 * 2
    assert all(t.endswith(("attn2.to_k", "attn2.to_v")) for t in targets)


def test_injection_is_seeded_and_leaves_global_rng_alone(model):
    def first_a(seed):
        with lora_attached(model, TrainConfig(seed=seed)) as session:
            return session.parameters()[0].detach().clone()

    torch.manual_seed(123)
    state = torch.get_rng_state()
    a1, a2, b = first_a(1), first_a(1), first_a(2)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a1, a2) and not torch.equal(a1, b)
