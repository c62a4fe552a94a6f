"""train_identity end to end on the real ldm UNet (tiny) with an identity prepared from real photos.

Checks the files the ecosystem reads (kohya keys, exact metadata, sidecar, preview), the identity record, the
best-snapshot choice by real face similarity (dlib), cancel leaving nothing behind, and the refusals.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import TinyLatentDiffusion
from training_helpers import (
    IDENTITY,
    RecordingHandle,
    UnetSnapshot,
    ctx_with_identity,
    gray_images,
    person_photos,
    small_photo,
    unet_fingerprint,
)

from facechain_ext import __version__
from facechain_ext.diffusion.ldm import LdmModel
from facechain_ext.errors import FaceChainError
from facechain_ext.lora.inject import lora_attached
from facechain_ext.lora.io import load_lora
from facechain_ext.lora.kohya import unmatched_keys
from facechain_ext.training.files import list_facechain_loras, read_safetensors_metadata, sha256_file
from facechain_ext.training.service import TrainRequest, build_config, train_identity

REQUEST = {"identity": IDENTITY, "steps": 6, "snapshot_every": 2, "resolution": 64, "seed": 7, "validation_images": 2}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return LdmModel(TinyLatentDiffusion(tmp_path_factory.mktemp("tiny")))


class PhotoRenderer:
    """Stands in for the host sampler: snapshot k "renders" the k-th photo set, and we note which weights were live."""

    def __init__(self, model, photo_sets: list[list[Image.Image]]) -> None:
        self.model, self.photo_sets = model, photo_sets
        self.calls: list[dict] = []

    def __call__(self, prompts, seeds):
        self.calls.append({"prompts": list(prompts), "seeds": list(seeds), "fingerprint": unet_fingerprint(self.model)})
        return self.photo_sets[len(self.calls) - 1]


def test_trains_selects_by_face_similarity_and_publishes_the_lora(tmp_path, prepared, model, faces_table):
    ctx = ctx_with_identity(tmp_path, prepared)
    same = [small_photo(p) for p in person_photos(faces_table, IDENTITY)[3:5]]  # not used for training
    other = [small_photo(p) for p in person_photos(faces_table, "kit_harington")[:2]]
    renderer = PhotoRenderer(model, [other, same, [gray_images(1)[0], other[0]]])
    before, base_print = UnetSnapshot(model.unet), unet_fingerprint(model)

    result = train_identity(ctx, model, REQUEST, RecordingHandle(), renderer)

    before.assert_restored()
    assert torch.equal(unet_fingerprint(model), base_print)
    # every snapshot was rendered with its own weights live, with the same prompts and seeds
    prints = [c["fingerprint"] for c in renderer.calls]
    assert len(prints) == 3 and all(not torch.allclose(p, base_print) for p in prints)
    assert not torch.allclose(prints[0], prints[1]) and not torch.allclose(prints[1], prints[2])
    assert renderer.calls[0]["seeds"] == renderer.calls[2]["seeds"] == [7, 8]
    assert all(c["prompts"][0].startswith("fcsks, a person, ") for c in renderer.calls)

    validation = {v["step"]: v for v in result["validation"]}
    assert sorted(validation) == [2, 4, 6]
    assert [v["chosen"] for v in result["validation"]] == [False, True, False]
    assert validation[4]["faces"] == 2 and validation[6]["image_scores"][0] is None
    assert validation[4]["score"] > validation[2]["score"] + 0.1 and validation[4]["score"] > validation[6]["score"] + 0.1

    folder = tmp_path / "Lora" / "FaceChain"
    path = folder / f"{IDENTITY}.safetensors"
    assert sorted(p.name for p in folder.iterdir()) == [f"{IDENTITY}.json", f"{IDENTITY}.png", f"{IDENTITY}.safetensors"]
    state, metadata = load_lora(path)
    assert metadata == {**metadata, **{
        "ss_output_name": IDENTITY, "ss_base_model_version": "sd_v1", "ss_network_module": "networks.lora",
        "ss_network_dim": "4", "ss_network_alpha": "4", "ss_resolution": "(64, 64)", "ss_num_train_images": "3",
        "ss_sd_model_name": model.checkpoint_name, "facechain_identity": IDENTITY, "facechain_trigger": "fcsks",
        "facechain_version": __version__,
    }}
    assert "step 4" in metadata["ss_training_comment"]
    assert read_safetensors_metadata(path) == metadata
    assert all(k.startswith("lora_unet_") for k in state) and unmatched_keys(state, model.unet) == []
    assert any(k.startswith("lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q") for k in state)  # compvis

    # the saved weights are exactly the snapshot that rendered the right person
    with torch.no_grad(), lora_attached(model, build_config(TrainRequest(**REQUEST))) as session:
        session.load_state_dict(state)
        assert torch.allclose(unet_fingerprint(model), prints[1], atol=1e-6)
    before.assert_restored()

    sidecar = json.loads((folder / f"{IDENTITY}.json").read_text())
    assert sidecar["activation text"] == "fcsks, a person" and sidecar["preferred weight"] == 0.9
    assert sidecar["sd version"] == "SD1" and "step 4" in sidecar["description"]
    best_index = int(np.argmax(validation[4]["image_scores"]))
    assert np.array_equal(np.asarray(Image.open(folder / f"{IDENTITY}.png")), np.asarray(same[best_index]))

    sha = sha256_file(path)
    prompt = f"<lora:{IDENTITY}:0.9>, fcsks, a person"
    assert result["lora"] == {"name": IDENTITY, "path": str(path), "prompt": prompt, "sha256": sha}
    record = ctx.identities.get(IDENTITY).loras
    assert len(record) == 1 and record[0]["sha256"] == sha and record[0]["prompt"] == prompt and record[0]["weight"] == 0.9
    listed = list_facechain_loras(folder)
    assert [(x["name"], x["identity"], x["sha256"], x["prompt"]) for x in listed] == [(IDENTITY, IDENTITY, sha, prompt)]
    assert all(len(v["images"]) == 2 and all(json.dumps(p) and p.endswith(".png") for p in v["images"]) for v in result["validation"])
    assert result["losses"]["count"] == 6 and result["steps"] == 6


def test_without_faces_in_validation_keeps_the_last_snapshot_and_the_best_photo(tmp_path, prepared, model):
    ctx = ctx_with_identity(tmp_path, prepared)
    renderer = PhotoRenderer(model, [gray_images(2)] * 3)
    result = train_identity(ctx, model, {**REQUEST, "lora_name": "noface"}, RecordingHandle(), renderer)

    assert [v["chosen"] for v in result["validation"]] == [False, False, True]
    assert all(v["score"] is None for v in result["validation"])
    assert any("No validation image contained a face" in note for note in result["notes"])
    preview = np.asarray(Image.open(tmp_path / "Lora" / "FaceChain" / "noface.png"))
    best = np.asarray(Image.open(ctx.identities.get(IDENTITY).best_photo_path).convert("RGB"))
    assert np.array_equal(preview, best)
    state, _ = load_lora(tmp_path / "Lora" / "FaceChain" / "noface.safetensors")
    with torch.no_grad(), lora_attached(model, build_config(TrainRequest(**REQUEST))) as session:
        session.load_state_dict(state)
        assert torch.allclose(unet_fingerprint(model), renderer.calls[2]["fingerprint"], atol=1e-6)


def test_cancel_mid_training_leaves_no_files_and_restores_the_model(tmp_path, prepared, model):
    ctx = ctx_with_identity(tmp_path, prepared)
    before = UnetSnapshot(model.unet)
    handle = RecordingHandle(cancel_at_step=3)
    with pytest.raises(FaceChainError) as err:
        train_identity(ctx, model, {**REQUEST, "steps": 50}, handle, PhotoRenderer(model, []))
    assert err.value.code == "cancelled"
    assert max(done for done, _, text in handle.reports if text.startswith("Training step")) == 3
    before.assert_restored()
    lora_dir = tmp_path / "Lora"
    assert not lora_dir.exists() or not any(lora_dir.rglob("*"))
    assert ctx.identities.get(IDENTITY).loras == []


def test_cancel_during_validation_writes_nothing(tmp_path, prepared, model):
    ctx = ctx_with_identity(tmp_path, prepared)
    handle = RecordingHandle()

    def render_then_cancel(prompts, seeds):
        handle.cancel()  # the host's Interrupt pressed while the first snapshot renders
        return gray_images(len(prompts))

    before = UnetSnapshot(model.unet)
    with pytest.raises(FaceChainError) as err:
        train_identity(ctx, model, REQUEST, handle, render_then_cancel)
    assert err.value.code == "cancelled"
    before.assert_restored()
    assert not (tmp_path / "Lora").exists() or not any((tmp_path / "Lora").rglob("*"))


def test_name_taken_and_invalid_names_are_refused_before_training(tmp_path, prepared, model):
    ctx = ctx_with_identity(tmp_path, prepared)
    folder = tmp_path / "Lora" / "FaceChain"
    folder.mkdir(parents=True)
    (folder / f"{IDENTITY}.safetensors").write_bytes(b"user file")
    handle = RecordingHandle()
    with pytest.raises(FaceChainError) as err:
        train_identity(ctx, model, REQUEST, handle)
    assert err.value.code == "name_taken" and err.value.http_status == 409 and handle.reports == []
    assert (folder / f"{IDENTITY}.safetensors").read_bytes() == b"user file"
    with pytest.raises(FaceChainError) as err:
        train_identity(ctx, model, {**REQUEST, "lora_name": "../escape"}, handle)
    assert err.value.code == "invalid_name"
    with pytest.raises(FaceChainError) as err:
        train_identity(ctx, model, {**REQUEST, "identity": "nobody"}, handle)
    assert err.value.code == "identity_not_found"
    with pytest.raises(FaceChainError) as err:
        train_identity(ctx, model, {**REQUEST, "lora_name": "x", "preset": "turbo"}, handle)
    assert err.value.code == "invalid_request"


def test_unsupported_model_is_refused_before_training(tmp_path, prepared, model):
    ctx = ctx_with_identity(tmp_path, prepared)

    class NotSd1:
        is_sd1 = False
        unet = model.unet

    with pytest.raises(FaceChainError) as err:
        train_identity(ctx, NotSd1(), REQUEST, RecordingHandle())
    assert err.value.code == "unsupported_model" and err.value.http_status == 422


def test_a_failed_overwrite_leaves_the_previous_lora_set_byte_identical(tmp_path, prepared, model, monkeypatch):
    """Pre-existing <name>.safetensors/.json/.png, overwrite=True, and a failure after the new files are written
    (recording on the identity) or in the middle of the swap: the old three files stay exactly as they were."""
    import os

    ctx = ctx_with_identity(tmp_path, prepared)
    folder = tmp_path / "Lora" / "FaceChain"
    folder.mkdir(parents=True)
    old = {f"{IDENTITY}.safetensors": b"old weights", f"{IDENTITY}.json": b'{"old": true}', f"{IDENTITY}.png": b"old"}
    for name, data in old.items():
        (folder / name).write_bytes(data)
    request = {**REQUEST, "overwrite": True, "validation_images": 0}

    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(ctx.identities, "add_lora", refuse)
        with pytest.raises(OSError):
            train_identity(ctx, model, request, RecordingHandle())
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == old
    real_replace, calls = os.replace, []

    def failing_third(src, dst):
        calls.append(dst)
        if len(calls) == 3:  # journal, first backup, then this: the first new file into place
            raise OSError(5, "injected")
        return real_replace(src, dst)

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", failing_third)
        with pytest.raises(OSError, match="injected"):
            train_identity(ctx, model, request, RecordingHandle())
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == old
    assert ctx.identities.get(IDENTITY).loras == []
