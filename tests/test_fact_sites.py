"""The one diffusers <-> compvis table of FACT's 16 adapted blocks, checked site by site against the real models.

- compvis: ldm's `UNetModel` (stable-diffusion-sdkit) at SD1.5's config, built on the meta device (shapes only).
- diffusers: a tiny `UNet2DConditionModel` with SD1.5's topology; its `attn_processors` names are the keys FaceChain's
  checkpoint uses (`unet.load_state_dict` of `<block>.attn2.processor.*`).
- both together: diffusers' own ldm -> diffusers converter maps a tiny ldm UNet's weights onto the diffusers one, and
  every site's compvis block must land exactly on its diffusers block.
"""

from __future__ import annotations

import pytest
import torch

from facechain_ext.fact.adapter import FactAdapter
from facechain_ext.fact.sites import PROCESSOR_INFIX, SD15_SITES, site_for_compvis, site_for_diffusers

SD15_UNET = dict(  # v1-inference.yaml unet_config.params
    image_size=32, in_channels=4, out_channels=4, model_channels=320, attention_resolutions=[4, 2, 1], num_res_blocks=2,
    channel_mult=[1, 2, 4, 4], num_heads=8, use_spatial_transformer=True, transformer_depth=1, context_dim=768,
    use_checkpoint=False, legacy=False,
)  # fmt: skip


def _ldm_unet(**overrides):
    from ldm.modules.diffusionmodules.openaimodel import UNetModel

    return UNetModel(**{**SD15_UNET, **overrides})


def _diffusers_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(32, 64, 128, 128),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32,
    )  # fmt: skip


def test_every_compvis_path_is_an_sd15_transformer_block_of_the_right_width() -> None:
    from ldm.modules.attention import BasicTransformerBlock

    with torch.device("meta"):
        unet = _ldm_unet()
    blocks = [name for name, module in unet.named_modules() if isinstance(module, BasicTransformerBlock)]
    assert blocks == [site.compvis for site in SD15_SITES]  # all 16, in execution order
    for site in SD15_SITES:
        block = unet.get_submodule(site.compvis)
        assert isinstance(block, BasicTransformerBlock), site
        assert block.norm2.normalized_shape == (site.hidden,) and block.attn2.to_q.in_features == site.hidden, site
        assert block.attn2.to_k.in_features == 768 and block.attn2.heads == 8
        assert site_for_compvis(site.compvis) is site and site_for_diffusers(site.diffusers) is site


def test_every_diffusers_path_is_a_processor_site_of_the_unet() -> None:
    from diffusers.models.attention import BasicTransformerBlock

    unet = _diffusers_unet()
    cross = sorted(name for name in unet.attn_processors if name.endswith("attn2.processor"))
    assert cross == sorted(site.diffusers + PROCESSOR_INFIX.rstrip(".") for site in SD15_SITES)
    for site in SD15_SITES:
        block = unet.get_submodule(site.diffusers)
        assert isinstance(block, BasicTransformerBlock), site
        assert block.norm2.normalized_shape == (site.hidden // 10,), site  # tiny widths: SD1.5's / 10
    adapter_keys = FactAdapter(sites=SD15_SITES[:1]).checkpoint_shapes()
    assert next(iter(adapter_keys)).startswith("down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor.")


@pytest.mark.parametrize("site", SD15_SITES, ids=lambda s: s.compvis.split(".transformer")[0])
def test_diffusers_converter_maps_each_compvis_block_onto_its_diffusers_block(site, converted_pair) -> None:
    ldm, diff = converted_pair
    src, dst = ldm.get_submodule(site.compvis), diff.get_submodule(site.diffusers)
    pairs = [("norm1", "norm1"), ("norm2", "norm2"), ("attn2.to_q", "attn2.to_q"), ("attn2.to_k", "attn2.to_k"),
             ("attn2.to_out.0", "attn2.to_out.0"), ("ff.net.2", "ff.net.2")]  # fmt: skip
    for a, b in pairs:
        assert torch.equal(src.get_submodule(a).weight, dst.get_submodule(b).weight), (site, a)


@pytest.fixture(scope="module")
def converted_pair():
    """A tiny real ldm UNet with distinct random weights, and a tiny diffusers UNet loaded from diffusers' conversion."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    torch.manual_seed(0)
    ldm = _ldm_unet(model_channels=32, context_dim=32, image_size=8)
    with torch.no_grad():
        for param in ldm.parameters():
            param.normal_()
    diff = _diffusers_unet()
    checkpoint = {f"model.diffusion_model.{k}": v for k, v in ldm.state_dict().items()}
    converted = convert_ldm_unet_checkpoint(checkpoint, dict(diff.config))
    missing, unexpected = diff.load_state_dict(converted, strict=False)
    assert not missing and not unexpected
    return ldm, diff
