"""FACT weight files: strict loading of the published key layout (pickle and safetensors), clear errors, conversion.

The synthetic release (tests/fact_helpers.py) has exactly the published keys and shapes; its shapes are written out
from the public sources in the helper, independently of facechain_ext/fact.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from fact_helpers import (
    ADAPTER_NAME,
    ENCODER_NAME,
    published_adapter,
    published_encoder_backbone,
    published_encoder_head,
)

from facechain_ext import cli
from facechain_ext.errors import FaceChainError
from facechain_ext.fact.checkpoint import adapter_spec, check_shapes, encoder_spec, load_adapter_state, load_encoder_state
from facechain_ext.fact.convert import convert_checkpoint
from facechain_ext.fact.files import ADAPTER_FILES, ENCODER_FILE, converted_name, find_fact_files
from facechain_ext.fact.model import load_fact_model
from facechain_ext.fact.sites import SD15_SITES


def test_specs_are_the_published_key_sets() -> None:
    enc, adp = encoder_spec(), adapter_spec()
    assert dict(enc.required) == published_encoder_backbone()
    assert dict(enc.optional) == published_encoder_head()
    assert dict(adp.required) == published_adapter()
    assert len(adp.required) == 16 * 19 + 51
    params = {k: torch.Size(s).numel() for k, s in {**enc.required, **enc.optional}.items()}
    assert sum(params.values()) == pytest.approx(86.7e6, rel=0.002)  # FACECHAIN_FACTS §5: ≈ 86.7 M
    adapter_params = sum(torch.Size(s).numel() for s in adp.required.values())
    assert adapter_params == pytest.approx(255.5e6, rel=0.001)  # ≈ 255.5 M (≈ 208 M blocks + resampler)
    assert (ENCODER_FILE, ADAPTER_FILES["maj"]) == (ENCODER_NAME, ADAPTER_NAME)


def test_release_files_load_strictly_into_the_modules(fact_release) -> None:
    files = find_fact_files(fact_release.models_dir)
    assert (files.encoder, files.adapter) == (fact_release.encoder, fact_release.adapter)
    encoder = load_encoder_state(files.encoder)
    assert encoder.ignored == sorted(published_encoder_head())  # the recognition head: present, unused
    assert load_adapter_state(files.adapter).ignored == []
    model = load_fact_model(files)
    assert model.dtype == torch.float32 and model.device.type == "cpu"
    site = SD15_SITES[9]  # up_blocks.1.attentions.2 <-> output_blocks.5.1
    key = "up_blocks.1.attentions.2.transformer_blocks.0.attn2.processor.ff.net.0.proj.weight"
    assert torch.equal(model.adapter.block(site).ff.net[0].proj.weight, fact_release.adapter_state[key].float())
    gate = fact_release.adapter_state["mid_block.attentions.0.transformer_blocks.0.attn2.processor.alpha_dense"]
    assert model.adapter.block(SD15_SITES[6]).alpha_dense.item() == pytest.approx(gate.item())
    latents = fact_release.adapter_state["local_fac_prj.latents"]
    assert torch.equal(model.resampler.latents, latents.float())
    assert torch.equal(model.encoder.blocks[11].mlp.fc2.weight, fact_release.encoder_state["blocks.11.mlp.fc2.weight"].float())
    assert not any(p.requires_grad for p in model.adapter.parameters())


def _convert(path: Path, *extra: str, capsys) -> tuple[int, dict]:
    code = cli.main(["fact", "convert", str(path), *extra])
    return code, json.loads(capsys.readouterr().out)


def test_convert_writes_fp16_safetensors_that_load_strictly(fact_release, tmp_path: Path, capsys) -> None:
    out = tmp_path / "fact"
    out.mkdir()
    code, doc = _convert(fact_release.encoder, "--out", str(out / converted_name(ENCODER_NAME)), capsys=capsys)
    assert (
        code == 0 and doc["tensors"] == len(published_encoder_backbone()) and doc["dropped"] == sorted(published_encoder_head())
    )
    code, doc = _convert(fact_release.adapter, "--out", str(out / converted_name(ADAPTER_NAME)), capsys=capsys)
    assert (
        code == 0
        and doc["kind"] == "FACT adapter"
        and doc["tensors"] == 355
        and doc["parameters"] == pytest.approx(255.5e6, rel=1e-3)
    )
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    files = find_fact_files(tmp_path)
    assert files.encoder.suffix == files.adapter.suffix == ".safetensors"
    state = load_adapter_state(files.adapter)
    assert all(t.dtype == torch.float16 for t in state.tensors.values())
    for key in (
        "local_fac_prj.layers.3.1.3.weight",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor.alpha_attn",
    ):
        assert torch.equal(state.tensors[key], fact_release.adapter_state[key])
    assert state.metadata["facechain_fact_source"] == ADAPTER_NAME
    model = load_fact_model(files, dtype=torch.float16)
    assert model.encoder.pos_embed.dtype == torch.float16
    code, doc = _convert(fact_release.adapter, "--out", str(out / converted_name(ADAPTER_NAME)), capsys=capsys)
    assert code == 2 and doc["error"]["code"] == "invalid_request" and "--overwrite" in doc["error"]["message"]


def test_a_missing_key_is_named(fact_release, tmp_path: Path) -> None:
    partial = {k: v for k, v in fact_release.adapter_state.items() if k.startswith("local_fac_prj.")}
    path = tmp_path / ADAPTER_NAME
    torch.save(partial, path)
    with pytest.raises(FaceChainError) as err:
        load_adapter_state(path)
    first = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor.alpha_attn"
    assert err.value.code == "unsupported_model" and ADAPTER_NAME in err.value.message and first in err.value.message
    assert err.value.context["key"] == first


def test_a_misshaped_key_is_named_pickle_and_safetensors(fact_release, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v for k, v in fact_release.encoder_state.items() if k in published_encoder_backbone()}
    state["blocks.7.attn.qkv.weight"] = torch.zeros(1536, 511, dtype=torch.float16)
    for path in (tmp_path / "enc.pt", tmp_path / "enc.safetensors"):
        torch.save(state, path) if path.suffix == ".pt" else save_file(state, str(path))
        with pytest.raises(FaceChainError) as err:
            load_encoder_state(path)
        assert err.value.code == "unsupported_model" and path.name in err.value.message
        assert "blocks.7.attn.qkv.weight" in err.value.message and err.value.context["found"] == [1536, 511]


def test_unexpected_keys_of_ours_fail_and_foreign_keys_are_ignored() -> None:
    spec = adapter_spec()
    shapes = {**spec.required, "text_model.embeddings.weight": (10, 4)}
    floating = dict.fromkeys(shapes, True)
    assert check_shapes(Path("a.ckpt"), spec, shapes, floating) == ["text_model.embeddings.weight"]
    extra = {**shapes, "local_fac_prj.layers.4.0.to_q.weight": (768, 1024)}
    with pytest.raises(FaceChainError, match="unexpected key 'local_fac_prj.layers.4.0.to_q.weight'"):
        check_shapes(Path("a.ckpt"), spec, extra, dict.fromkeys(extra, True))
    with pytest.raises(FaceChainError, match="unexpected key 'head.weight'"):  # the encoder file is exactly TransFace's
        enc = encoder_spec()
        check_shapes(
            Path("e.pt"), enc, {**enc.required, "head.weight": (2, 2)}, dict.fromkeys([*enc.required, "head.weight"], True)
        )
    with pytest.raises(FaceChainError, match="not a floating-point tensor"):
        check_shapes(Path("a.ckpt"), spec, spec.required, {**dict.fromkeys(spec.required, True), "local_fac_prj.latents": False})


class _Trap:
    """Pickles as a call to Path.touch: a file that runs code when unpickled without weights_only."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_files_that_are_not_checkpoints_fail_without_running_code(tmp_path: Path) -> None:
    marker = tmp_path / "code_ran"
    cases = {
        "text.ckpt": lambda p: p.write_text("not a checkpoint"),
        "trap.ckpt": lambda p: torch.save({"local_fac_prj.latents": _Trap(marker)}, p),
        "trap_plain.ckpt": lambda p: p.write_bytes(pickle.dumps({"local_fac_prj.latents": _Trap(marker)})),
        "list.ckpt": lambda p: torch.save([torch.zeros(2)], p),
        "broken.safetensors": lambda p: p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}"),
    }
    for name, write in cases.items():
        path = tmp_path / name
        write(path)
        with pytest.raises(FaceChainError) as err:
            load_adapter_state(path)
        assert err.value.code == "unsupported_model" and name in err.value.message, name
    assert not marker.exists()
    torch.load(tmp_path / "trap.ckpt", weights_only=False)  # the trap is real: a plain load runs its code
    assert marker.exists()


def test_missing_files_say_which_and_where(tmp_path: Path, fact_release) -> None:
    with pytest.raises(FaceChainError) as err:
        find_fact_files(tmp_path)
    assert err.value.code == "model_missing" and ENCODER_FILE in err.value.message and "FaceChain-FACT" in err.value.message
    (tmp_path / "fact").mkdir()
    (tmp_path / "fact" / ENCODER_FILE).symlink_to(fact_release.encoder)
    with pytest.raises(FaceChainError) as err:
        find_fact_files(tmp_path, "film")
    assert err.value.code == "model_missing" and err.value.context["file"] == ADAPTER_FILES["film"]
    with pytest.raises(FaceChainError, match="variant"):
        find_fact_files(tmp_path, "sdxl")


def test_convert_refuses_bad_targets_before_reading(fact_release, tmp_path: Path) -> None:
    with pytest.raises(FaceChainError, match="must end in .safetensors"):
        convert_checkpoint(fact_release.encoder, tmp_path / "copy.pt")
    with pytest.raises(FaceChainError) as err:
        convert_checkpoint(tmp_path / "absent.pt", tmp_path / "absent.safetensors")
    assert err.value.code == "model_missing"
    assert not (tmp_path / "absent.safetensors").exists()


def test_convert_refuses_a_folder_as_output_or_source_before_reading(fact_release, tmp_path: Path) -> None:
    folder = tmp_path / "out.safetensors"
    folder.mkdir()
    (folder / "keep").write_text("mine")
    with pytest.raises(FaceChainError) as err:
        convert_checkpoint(fact_release.encoder, folder, overwrite=True)
    assert err.value.code == "invalid_request" and "folder" in err.value.message
    assert (folder / "keep").read_text() == "mine"
    with pytest.raises(FaceChainError) as err:
        convert_checkpoint(tmp_path, tmp_path / "x.safetensors")
    assert err.value.code == "unsupported_model" and "not a file" in err.value.message


def test_legacy_pickles_and_backbone_only_encoders_load(fact_release, tmp_path: Path) -> None:
    backbone = {k: v for k, v in fact_release.encoder_state.items() if k in published_encoder_backbone()}
    path = tmp_path / ENCODER_NAME
    torch.save(backbone, path, _use_new_zipfile_serialization=False)  # pre-1.6 format: cannot be memory-mapped
    state = load_encoder_state(path)
    assert state.ignored == [] and torch.equal(state.tensors["pos_embed"], backbone["pos_embed"])
