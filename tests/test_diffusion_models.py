"""Model adapters: SD1 detection/refusal, prediction types, reproducible encoding that leaves the host RNG alone."""

from __future__ import annotations

import types

import pytest
import torch
from tiny_models import TinyLatentDiffusion, tiny_diffusers_model

from facechain_ext.diffusion.base import DiffusionModel
from facechain_ext.diffusion.ldm import LdmModel
from facechain_ext.errors import FaceChainError


@pytest.fixture
def sd_model(tmp_path):
    model = TinyLatentDiffusion(tmp_path)
    model.sd_checkpoint_info = types.SimpleNamespace(title="tiny-v1.safetensors [abc123]")
    return model


def test_ldm_adapter_exposes_the_host_model(sd_model):
    model = LdmModel(sd_model)
    assert isinstance(model, DiffusionModel)
    assert model.unet is sd_model.model.diffusion_model and model.naming == "compvis"
    assert model.is_sd1 and model.prediction_type == "epsilon" and model.checkpoint_name == "tiny-v1.safetensors [abc123]"
    assert torch.equal(model.alphas_cumprod, sd_model.alphas_cumprod)
    pixels = torch.rand(2, 3, 64, 64) * 2 - 1
    torch.manual_seed(5)
    rng = torch.get_rng_state()
    a, b, c = model.encode_images(pixels, seed=1), model.encode_images(pixels, seed=1), model.encode_images(pixels, seed=2)
    assert torch.equal(torch.get_rng_state(), rng)  # the host's global RNG is untouched
    assert a.shape == (2, 4, 8, 8) and torch.equal(a, b) and not torch.equal(a, c)
    cond = model.encode_prompts(["a photo of fcsks", "x"])
    assert cond.shape == (2, 77, 32) and not cond.requires_grad
    assert model.predict(a, torch.tensor([1, 999]), cond).shape == (2, 4, 8, 8)


def test_v_parameterization_is_mapped(tmp_path):
    assert LdmModel(TinyLatentDiffusion(tmp_path, parameterization="v")).prediction_type == "v_prediction"
    with pytest.raises(FaceChainError) as err:
        LdmModel(TinyLatentDiffusion(tmp_path, parameterization="x0"))
    assert err.value.code == "unsupported_model"


def test_non_sd1_checkpoints_are_refused_by_name(sd_model):
    sd_model.is_sd1 = False
    with pytest.raises(FaceChainError) as err:
        LdmModel(sd_model)
    assert err.value.code == "unsupported_model" and err.value.http_status == 422
    assert "tiny-v1.safetensors [abc123]" in err.value.message and err.value.context["checkpoint"] == "tiny-v1.safetensors [abc123]"


def test_sd1_detected_from_context_width_without_host_flag(sd_model):
    del sd_model.is_sd1  # not a webui-loaded object: fall back to the cross-attention width
    with pytest.raises(FaceChainError):  # tiny model: width 32, not 768
        LdmModel(sd_model)
    from torch import nn

    for name, module in list(sd_model.model.diffusion_model.named_modules()):
        if name.endswith("attn2.to_k"):
            parent = sd_model.model.diffusion_model.get_submodule(name.rsplit(".", 1)[0])
            parent.to_k = nn.Linear(768, module.out_features, bias=False)
            break
    assert LdmModel(sd_model).is_sd1


def test_inpainting_unet_is_refused(sd_model):
    sd_model.model.diffusion_model.in_channels = 9
    with pytest.raises(FaceChainError) as err:
        LdmModel(sd_model)
    assert err.value.code == "unsupported_model" and err.value.context["in_channels"] == 9


def test_diffusers_adapter(tmp_path):
    model = tiny_diffusers_model(tmp_path)
    assert isinstance(model, DiffusionModel) and model.naming == "diffusers" and model.prediction_type == "epsilon"
    pixels = torch.rand(1, 3, 64, 64) * 2 - 1
    assert torch.equal(model.encode_images(pixels, seed=3), model.encode_images(pixels, seed=3))
    with pytest.raises(FaceChainError) as err:
        tiny_diffusers_model(tmp_path, is_sd1=None)  # width 32 is not SD1's 768
    assert err.value.code == "unsupported_model" and "tiny-diffusers" in err.value.message


def test_one_model_family_check_for_every_kind_of_model(sd_model):
    from torch import nn

    from facechain_ext.diffusion.family import model_family, require_family

    assert model_family(sd_model) == "sd1"  # the host's flag
    sd_model.is_sd1, sd_model.is_sdxl = False, True
    assert model_family(sd_model) == "sdxl"
    sd_model.is_sdxl = False
    assert model_family(sd_model) == "unknown"  # a host model that is none of the three (SD3, Flux, ...)
    for width, family in ((768, "sd1"), (1024, "sd2"), (2048, "sdxl"), (32, "unknown")):
        unet = nn.Module()
        unet.attn2 = nn.Module()
        unet.attn2.to_k = nn.Linear(width, 8, bias=False)
        assert model_family(unet) == family
    with pytest.raises(FaceChainError) as err:
        require_family("sd2", ("sd1",), checkpoint="v2-1_768.safetensors")
    assert err.value.code == "unsupported_model" and err.value.context == {
        "checkpoint": "v2-1_768.safetensors", "family": "sd2", "supported": ["sd1"]}
