"""train_lora: caching, determinism, snapshots, progress, cancellation and the loss target."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import TinyLatentDiffusion, assert_unet_restored, tiny_diffusers_model, unet_fingerprint, unet_values

from facechain_ext.diffusion.ldm import LdmModel
from facechain_ext.errors import FaceChainError
from facechain_ext.lora.config import PRESETS, TrainConfig, make_config
from facechain_ext.lora.snapshots import Snapshot, average_snapshots
from facechain_ext.lora.trainer import diffusion_loss, train_lora


def photos(n: int = 3, size: int = 80) -> list[tuple[Image.Image, str]]:
    return [(Image.fromarray(np.random.RandomState(i).randint(0, 255, (size, size, 3), dtype=np.uint8)),
             "a photo of fcsks man") for i in range(n)]


CFG = TrainConfig(resolution=64, steps=6, snapshot_every=3, learning_rate=1e-3, augment_variants=3)


@pytest.fixture
def model(tmp_path):
    return LdmModel(TinyLatentDiffusion(tmp_path))


def test_cancel_restores_model_and_raises_cancelled(model):
    before_fp, before_values = unet_fingerprint(model.unet), unet_values(model.unet)
    seen = []
    with pytest.raises(FaceChainError) as err:
        train_lora(model, photos(), CFG, on_step=seen.append, should_stop=lambda: len(seen) >= 2)
    assert err.value.code == "cancelled" and err.value.context["step"] == 2
    assert [s.step for s in seen] == [1, 2]
    assert_unet_restored(model.unet, before_fp, before_values)


def test_error_in_callback_restores_model(model):
    before_fp, before_values = unet_fingerprint(model.unet), unet_values(model.unet)

    def explode(info):
        raise ValueError("callback failed")

    with pytest.raises(ValueError, match="callback failed"):
        train_lora(model, photos(), CFG, on_step=explode)
    assert_unet_restored(model.unet, before_fp, before_values)


def test_same_seed_same_run_other_seed_other_run(model):
    first, second = train_lora(model, photos(), CFG), train_lora(model, photos(), CFG)
    other = train_lora(model, photos(), TrainConfig(**{**CFG.to_dict(), "seed": 7}))
    assert first.losses == second.losses and first.losses != other.losses
    assert all(torch.equal(first.final[k], second.final[k]) for k in first.final)
    assert not all(torch.equal(first.final[k], other.final[k]) for k in first.final)


def test_snapshots_progress_and_cosine_lr(model):
    infos = []
    result = train_lora(model, photos(2), TrainConfig(**{**CFG.to_dict(), "steps": 7}), on_step=infos.append)
    assert [s.step for s in result.snapshots] == [3, 6, 7] and len(result.losses) == 7
    assert result.naming == "compvis" and len(result.targets) == 48
    assert all(k.startswith("lora_unet_input_blocks_") or k.startswith(("lora_unet_middle_block_", "lora_unet_output_blocks_"))
               for k in result.final)
    assert all(v.device.type == "cpu" for v in result.final.values())
    assert [i.step for i in infos] == list(range(1, 8)) and all(i.total == 7 for i in infos)
    expected = [1e-3 * 0.5 * (1 + math.cos(math.pi * s / 7)) for s in range(7)]
    assert [i.lr for i in infos] == pytest.approx(expected)
    assert infos[-1].eta == 0 and all(i.eta >= 0 and i.elapsed >= 0 for i in infos)
    assert [i.loss for i in infos] == result.losses
    assert not torch.equal(result.snapshots[0].state_dict[next(k for k in result.final if "lora_up" in k)],
                           result.final[next(k for k in result.final if "lora_up" in k)])


def test_vae_and_text_encoder_run_only_while_caching(model, monkeypatch):
    calls = {"images": 0, "prompts": 0}
    encode_images, encode_prompts = model.encode_images, model.encode_prompts

    def count_images(pixels, **kw):
        calls["images"] += pixels.shape[0]
        return encode_images(pixels, **kw)

    def count_prompts(prompts):
        calls["prompts"] += len(prompts)
        return encode_prompts(prompts)

    monkeypatch.setattr(model, "encode_images", count_images)
    monkeypatch.setattr(model, "encode_prompts", count_prompts)
    items = photos(3)[:2] + [(photos(3)[2][0], "another caption")]
    train_lora(model, items, TrainConfig(**{**CFG.to_dict(), "steps": 9}))
    assert calls == {"images": 3 * CFG.augment_variants, "prompts": 2}  # independent of the step count


def test_diffusers_backend_trains_too(tmp_path):
    result = train_lora(tiny_diffusers_model(tmp_path), photos(2), CFG)
    assert result.naming == "diffusers" and all(k.startswith("lora_unet_") for k in result.final)
    assert any(k.startswith("lora_unet_down_blocks_0_attentions_0") for k in result.final)


class _TargetModel:
    """predict() returns the exact ε or v target (`produces`); diffusion_loss regresses onto `prediction_type`."""

    def __init__(self, prediction_type: str, produces: str, x0: torch.Tensor, alphas: torch.Tensor) -> None:
        self.prediction_type, self.produces, self.x0, self.alphas = prediction_type, produces, x0, alphas

    def predict(self, noisy, t, cond):
        abar = self.alphas[t].view(-1, 1, 1, 1)
        noise = (noisy - abar.sqrt() * self.x0) / (1 - abar).sqrt()
        return noise if self.produces == "epsilon" else abar.sqrt() * noise - (1 - abar).sqrt() * self.x0


@pytest.mark.parametrize("kind,other", [("epsilon", "v_prediction"), ("v_prediction", "epsilon")])
def test_loss_target_matches_prediction_type(kind, other):
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    alphas, t = torch.linspace(0.99, 0.01, 1000), torch.tensor([10, 900])
    assert diffusion_loss(_TargetModel(kind, kind, x0, alphas), x0, None, t, noise, alphas).item() < 1e-8
    assert diffusion_loss(_TargetModel(kind, other, x0, alphas), x0, None, t, noise, alphas).item() > 0.1


def test_bad_items_are_refused(model):
    with pytest.raises(FaceChainError) as err:
        train_lora(model, [], CFG)
    assert err.value.code == "no_usable_photos"
    with pytest.raises(FaceChainError) as err:
        train_lora(model, [("not an image", "caption")], CFG)
    assert err.value.code == "invalid_request"


def test_presets_and_validation():
    assert set(PRESETS) == {"fast", "quality"}
    fast, quality = make_config("fast"), make_config("quality")
    assert fast.rank == 4 and fast.weight_decay == 1e-2 and fast.max_grad_norm == 1.0 and fast.resolution == 512
    assert quality.rank > fast.rank and quality.total_steps(5) > fast.total_steps(5)
    assert quality.total_steps(5) == 1000 and quality.total_steps(100) == quality.max_steps
    assert fast.target_modules == ("to_q", "to_k", "to_v", "to_out.0") and fast.attention_layers == ("attn1", "attn2")
    assert make_config("fast", rank=8, steps=None).rank == 8
    for bad in ({"rank": 0}, {"resolution": 500}, {"learning_rate": 2.0}, {"train_text_encoder": True}, {"nope": 1}):
        with pytest.raises(FaceChainError) as err:
            make_config("fast", **bad)
        assert err.value.code == "invalid_request"
    with pytest.raises(FaceChainError):
        make_config("ultra")


def test_average_snapshots_averages_the_weight_deltas():
    g = torch.Generator().manual_seed(0)
    snaps = []
    for step, alpha in ((1, 2.0), (2, 4.0), (3, 1.0)):
        snaps.append(Snapshot(step, {"m.lora_down.weight": torch.randn(4, 6, generator=g),
                                     "m.lora_up.weight": torch.randn(5, 4, generator=g), "m.alpha": torch.tensor(alpha)}))

    def delta(state):
        return state["m.lora_up.weight"] @ state["m.lora_down.weight"] * float(state["m.alpha"]) / state["m.lora_down.weight"].shape[0]

    averaged = average_snapshots(snaps)
    torch.testing.assert_close(delta(averaged), sum(delta(s.state_dict) for s in snaps) / 3)
    single = average_snapshots(snaps[:1])
    assert torch.equal(delta(single), delta(snaps[0].state_dict))
    with pytest.raises(ValueError):
        average_snapshots([snaps[0], Snapshot(9, {"other.lora_down.weight": torch.ones(1)})])


def test_trains_when_called_under_no_grad_and_stays_fp32_on_cpu(model):
    from facechain_ext.lora.schedule import precision_plan

    autocast_dtype, scaler = precision_plan(model, CFG)
    assert autocast_dtype is None and not scaler.is_enabled()  # mixed precision only on CUDA
    with torch.no_grad():  # host code paths often run under no_grad; training must still get gradients
        result = train_lora(model, photos(1), TrainConfig(**{**CFG.to_dict(), "steps": 2}))
    assert any(v.abs().sum() > 0 for k, v in result.final.items() if "lora_up" in k)


def test_import_is_cheap():
    import subprocess
    import sys

    code = "import sys, facechain_ext.lora, facechain_ext.diffusion; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
