"""FACT on Forge: the middle patch on a per-job clone of Forge's UNet patcher (tests/fakeforge)."""

from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_forge_sd, unet_fingerprint, unet_values

from facechain_ext.errors import FaceChainError
from facechain_ext.fact.adapter import FactAdapter
from facechain_ext.fact.sites import SD15_SITES, Site
from facechain_ext.webui.forge_fact import compvis_path, face_rows, install_forge_fact

# The tiny UNet's transformer blocks (tests/tiny_models.py), as FACT sites.
TINY_SITES = tuple(Site(f"tiny.{i}", path, width) for i, (path, width) in enumerate([
    ("input_blocks.1.1.transformer_blocks.0", 32), ("input_blocks.2.1.transformer_blocks.0", 32),
    ("middle_block.1.transformer_blocks.0", 64), ("output_blocks.3.1.transformer_blocks.0", 32),
    ("output_blocks.4.1.transformer_blocks.0", 32), ("output_blocks.5.1.transformer_blocks.0", 32)]))
SD15_UNET = dict(image_size=32, in_channels=4, out_channels=4, model_channels=320, attention_resolutions=[4, 2, 1],
                 num_res_blocks=2, channel_mult=[1, 2, 4, 4], num_heads=8, use_spatial_transformer=True,
                 transformer_depth=1, context_dim=768, legacy=False, use_checkpoint=False)


def _adapter(open_gates: bool) -> FactAdapter:
    adapter = FactAdapter(TINY_SITES)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, param in adapter.named_parameters():
            if "alpha" not in name:
                param.copy_(0.2 * torch.randn(param.shape, generator=g))
            elif open_gates:
                param.fill_(0.7)
    return adapter


def _tokens(seed: int) -> torch.Tensor:
    return torch.randn(1, 16, 768, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def engine(fake_forge, tmp_path):
    return tiny_forge_sd(tmp_path)


def _denoise(patcher, x, context, uncond, cond_scale):
    from backend.sampling.sampling_function import calc_cond_uncond_batch, sampling_function, sampling_prepare

    sampling_prepare(patcher, x)
    with torch.inference_mode():
        if cond_scale is None:  # the raw (cond, uncond) predictions of one CFG batch
            return calc_cond_uncond_batch(patcher.model, context, uncond, x, torch.tensor([4.0]), patcher.model_options)
        return sampling_function(patcher, x, torch.tensor([4.0]), context, uncond, cond_scale)


def test_forge_block_tags_map_onto_the_16_sd15_sites(fake_forge):
    """Forge's own tags, recorded from a forward of the SD1.5-sized stand-in UNet, name exactly FACT's 16 sites."""
    from backend.loader import build_unet
    from ldm.modules.diffusionmodules.openaimodel import UNetModel

    with torch.device("meta"):
        state = UNetModel(**SD15_UNET).state_dict()
    unet = build_unet(SD15_UNET, state, device=torch.device("meta"), dtype=torch.float32)
    tags = []
    patches = {"middle_patch": [lambda x, extra: tags.append((extra["block"], extra["block_index"])) or x]}
    x, context = torch.empty(1, 4, 64, 64, device="meta"), torch.empty(1, 77, 768, device="meta")
    unet(x, torch.zeros(1, device="meta"), context=context, transformer_options={"patches": patches})
    assert [compvis_path(block, index) for block, index in tags] == [site.compvis for site in SD15_SITES]
    assert compvis_path(("last", 0), 0) is None


def test_face_rows_follow_cond_or_uncond():
    face, no_face = torch.ones(1, 2, 3), torch.zeros(1, 2, 3)
    rows = face_rows(face, no_face, [1, 0], 4)  # Forge's CFG batch: uncond chunk, then cond chunk
    assert rows[:, 0, 0].tolist() == [0, 0, 1, 1]
    assert face_rows(face, no_face, [0], 2)[:, 0, 0].tolist() == [1, 1]
    with pytest.raises(ValueError):
        face_rows(face, no_face, [1, 0], 3)


def test_closed_gates_are_bit_identical_and_nothing_stays_on_the_unet(engine):
    original = engine.forge_objects_original.unet
    unet = original.model.diffusion_model
    fp, values = unet_fingerprint(unet), unet_values(unet)
    g = torch.Generator().manual_seed(0)
    x, context = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 77, 32, generator=g)
    uncond = torch.zeros_like(context)
    baseline = _denoise(original, x, context, uncond, 6.0)
    clone = install_forge_fact(engine, _adapter(open_gates=False), _tokens(1), _tokens(2), 1.0, sites=TINY_SITES)
    assert engine.forge_objects.unet is clone and clone is not original
    assert torch.equal(_denoise(clone, x, context, uncond, 6.0), baseline)  # tanh(0) = 0: x + 0 exactly
    opened = install_forge_fact(engine, _adapter(open_gates=True), _tokens(1), _tokens(2), 1.0, sites=TINY_SITES)
    assert not torch.allclose(_denoise(opened, x, context, uncond, 6.0), baseline, atol=1e-4)
    # the job is over: Forge's next batch starts from forge_objects_after_applying_lora, which never saw the patch
    assert original.model_options == {"transformer_options": {}} and original.extra_model_patchers_during_sampling == []
    engine.forge_objects = engine.forge_objects_after_applying_lora.shallow_copy()
    assert torch.equal(_denoise(engine.forge_objects.unet, x, context, uncond, 6.0), baseline)
    assert unet_fingerprint(unet) == fp and all(torch.equal(unet.state_dict()[k], v) for k, v in values.items())


def test_cond_rows_get_the_face_and_uncond_rows_the_no_face_tokens(engine):
    """In one CFG batch ([uncond; cond]) the cond prediction equals a cond-only pass with the face tokens and the
    uncond prediction a pass whose tokens are the no-face ones: each row got its own tokens."""
    adapter, face, no_face = _adapter(open_gates=True), _tokens(1), _tokens(2)
    g = torch.Generator().manual_seed(1)
    x, context = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 77, 32, generator=g)
    base = engine.forge_objects.unet
    both = install_forge_fact(engine, adapter, face, no_face, 0.8, sites=TINY_SITES)
    cond_pred, uncond_pred = _denoise(both, x, context, context, None)  # same text for both: only FACT differs
    assert (cond_pred - uncond_pred).abs().max() > 1e-2  # 100x the tolerance below
    engine.forge_objects.unet = base
    with_face = install_forge_fact(engine, adapter, face, face, 0.8, sites=TINY_SITES)
    torch.testing.assert_close(_denoise(with_face, x, context, None, 1.0), cond_pred, atol=1e-4, rtol=0)
    engine.forge_objects.unet = base
    no_face_only = install_forge_fact(engine, adapter, no_face, no_face, 0.8, sites=TINY_SITES)
    torch.testing.assert_close(_denoise(no_face_only, x, context, None, 1.0), uncond_pred, atol=1e-4, rtol=0)


def test_the_adapter_is_loaded_with_the_unet_for_sampling(engine):
    from backend import memory_management

    adapter = _adapter(open_gates=True)
    clone = install_forge_fact(engine, adapter, _tokens(1), _tokens(2), 0.5, sites=TINY_SITES)
    assert [p.model for p in clone.extra_model_patchers_during_sampling] == [adapter]
    _denoise(clone, torch.zeros(1, 4, 8, 8), torch.zeros(1, 77, 32), None, 1.0)
    assert adapter in [m.model.model for m in memory_management.current_loaded_models]


def test_refusals(engine):
    adapter = _adapter(open_gates=True)
    with pytest.raises(FaceChainError) as err:
        install_forge_fact(engine, adapter, _tokens(1), torch.zeros(1, 32, 768), 0.5, sites=TINY_SITES)
    assert err.value.code == "invalid_request"
    with pytest.raises(FaceChainError) as err:  # SD1.5 sites on a UNet that does not have them
        install_forge_fact(engine, FactAdapter(SD15_SITES[:1]), _tokens(1), _tokens(2), 0.5, sites=SD15_SITES[:1])
    assert err.value.code == "unsupported_model"
    engine.is_sd1 = False
    with pytest.raises(FaceChainError) as err:
        install_forge_fact(engine, adapter, _tokens(1), _tokens(2), 0.5, sites=TINY_SITES)
    assert err.value.code == "unsupported_model"
    assert engine.forge_objects.unet is engine.forge_objects_original.unet  # nothing installed


def test_a_unet_call_without_cond_or_uncond_gets_the_face_on_every_row():
    from facechain_ext.webui.forge_fact import ForgeFactPatch

    adapter, face, no_face = _adapter(open_gates=True), _tokens(1), _tokens(2)
    patch = ForgeFactPatch(adapter, face, no_face, 0.7, TINY_SITES)
    x = torch.randn(2, 16, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = patch(x.clone(), {"block": ("input", 1), "block_index": 0})
        expected = adapter.block(TINY_SITES[0])(x, face.expand(2, -1, -1), 0.7)
        torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)  # rows are a copy, not an expanded view
        assert torch.equal(patch(x, {"block": ("input", 3), "block_index": 0, "cond_or_uncond": [0]}), x)  # no site
