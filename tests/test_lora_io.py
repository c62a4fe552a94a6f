"""save_lora / load_lora: atomic kohya safetensors with string metadata; clear errors for bad input."""

from __future__ import annotations

import pytest
import torch

from facechain_ext.errors import FaceChainError
from facechain_ext.lora import io as lora_io
from facechain_ext.lora.config import TrainConfig
from facechain_ext.lora.io import kohya_metadata, load_lora, save_lora


def _state():
    return {"lora_unet_a_to_q.lora_down.weight": torch.arange(6.0).reshape(2, 3),
            "lora_unet_a_to_q.lora_up.weight": torch.ones(4, 2), "lora_unet_a_to_q.alpha": torch.tensor(2.0)}


def test_round_trip_keeps_tensors_and_metadata(tmp_path):
    meta = kohya_metadata(TrainConfig(rank=2, alpha=1.0, resolution=512), output_name="alice", sd_model_name="v1-5",
                          num_train_images=5, steps=500, extra={"identity": "alice", "facechain_trigger": "fcsks"})
    path = save_lora(tmp_path / "sub" / "alice.safetensors", _state(), meta)
    state, loaded_meta = load_lora(path)
    assert loaded_meta == meta
    assert loaded_meta["ss_base_model_version"] == "sd_v1" and loaded_meta["ss_network_dim"] == "2"
    assert loaded_meta["ss_network_alpha"] == "1" and loaded_meta["ss_resolution"] == "(512, 512)"
    assert loaded_meta["facechain_identity"] == "alice" and loaded_meta["facechain_trigger"] == "fcsks"
    for key, tensor in _state().items():
        assert torch.equal(state[key], tensor)
    assert [p.name for p in path.parent.iterdir()] == ["alice.safetensors"]  # no temp file left


def test_dtype_cast_on_save(tmp_path):
    state, _ = load_lora(save_lora(tmp_path / "x.safetensors", _state(), {}, dtype=torch.float16))
    assert all(t.dtype == torch.float16 for t in state.values())


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    import safetensors.torch

    path = save_lora(tmp_path / "x.safetensors", _state(), {"v": "1"})
    before = path.read_bytes()

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_lora(path, {k: v * 2 for k, v in _state().items()}, {"v": "2"})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.safetensors"]


@pytest.mark.parametrize("state,meta", [({}, {}), (None, {"a": 1}), ({"k": [1, 2]}, {})])
def test_bad_input_is_refused(tmp_path, state, meta):
    with pytest.raises(FaceChainError) as err:
        save_lora(tmp_path / "x.safetensors", _state() if state is None else state, meta)
    assert err.value.code == "invalid_request"
    assert not (tmp_path / "x.safetensors").exists()


def test_unreadable_and_missing_files(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(FaceChainError) as err:
        load_lora(bad)
    assert err.value.code == "lora_unreadable" and err.value.http_status == 422 and "bad.safetensors" in err.value.message
    with pytest.raises(FaceChainError) as err:
        load_lora(tmp_path / "missing.safetensors")
    assert err.value.code == "not_found"


def test_format_version_is_recorded():
    meta = kohya_metadata(TrainConfig(), output_name="n", sd_model_name="m", num_train_images=1, steps=1)
    assert meta["facechain_format"] == lora_io.FORMAT_VERSION
    assert all(isinstance(v, str) for v in meta.values())
