"""Training inside Forge (tests/fakeforge on top of the stand-in host): the same job as on A1111, on Forge's engine.

The job takes the host lock and `shared.state` like on A1111, trains on `forge_objects_original.unet` loaded by
Forge's memory management (a prompt LoRA merged by the last generation is taken out first), leaves Forge's UNet
exactly as it was, and writes a kohya file Forge's own LoRA loader applies completely.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import tiny_forge_sd, unet_fingerprint, unet_values
from training_helpers import IDENTITY, ctx_with_identity, gray_images

from facechain_ext.webui import training_worker
from facechain_ext.webui.training_worker import submit_training

FAST = {"identity": IDENTITY, "steps": 4, "snapshot_every": 2, "resolution": 64, "seed": 5, "validation_images": 2}
KEY = "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"


@pytest.fixture()
def forge(fake_forge, tmp_path, monkeypatch):
    """Forge with the tiny SD1 engine loaded, a prompt LoRA merged by a previous generation, and a txt2img that
    records what it was asked and which weights the UNet had while rendering."""
    from backend import memory_management
    from modules import call_queue, processing, sd_models, shared

    engine = tiny_forge_sd(tmp_path / "forge")
    engine.sd_checkpoint_info = sd_models.CheckpointInfo("tiny.safetensors", "tiny.safetensors [0123456789]", "tiny")
    shared.sd_model = engine
    own = engine.forge_objects.unet.model.state_dict()[KEY].clone()
    user_lora = engine.forge_objects.unet.clone()
    up, down = torch.ones(own.shape[0], 1), torch.ones(1, own.shape[1])
    user_lora.add_patches(filename="user.safetensors", patches={KEY: ("lora", (up, down, None, None, None))})
    memory_management.load_models_gpu([user_lora])  # what the last <lora:user:1> generation left merged
    engine.forge_objects = engine.forge_objects_after_applying_lora = engine.forge_objects.shallow_copy()
    engine.forge_objects.unet = user_lora
    calls: list[dict] = []

    def process_images(p):
        layer = engine.forge_objects_original.unet.model.diffusion_model.get_submodule(
            KEY.removeprefix("diffusion_model.").removesuffix(".weight"))
        calls.append({"locked": call_queue.queue_lock.locked(), "job": shared.state.job, "lora_attached": hasattr(layer, "lora_A")})
        return processing.Processed(p, gray_images(1), seed=p.seed)

    monkeypatch.setattr(processing, "process_images", process_images, raising=False)
    return {"engine": engine, "own": own, "calls": calls}


def test_training_runs_on_forge_and_forge_reads_the_file(forge, tmp_path, prepared):
    from backend import memory_management
    from backend.patcher.lora import load_lora, model_lora_keys_unet
    from modules import call_queue, shared

    engine = forge["engine"]
    unet = engine.forge_objects_original.unet.model.diffusion_model
    merged = unet.state_dict()[KEY.removeprefix("diffusion_model.")].clone()
    assert not torch.equal(merged, forge["own"])
    ctx = ctx_with_identity(tmp_path, prepared)
    job = submit_training(ctx, FAST, host_task_id="task(forge1)")
    record = ctx.jobs.wait(job.id, 180).to_dict()
    assert record["status"] == "done", record["error"]
    # trained and validated under the host lock and state, with the snapshot attached in-process
    assert len(forge["calls"]) == 2 * 2 and all(c["locked"] and c["job"] == "facechain_train" for c in forge["calls"])
    assert all(c["lora_attached"] for c in forge["calls"])
    assert "facechain_train" in shared.state.history and not call_queue.queue_lock.locked()
    # the original patcher is what Forge has loaded now: the user's LoRA weights were taken out, our layers are gone
    original = engine.forge_objects_original.unet
    assert [m.model for m in memory_management.current_loaded_models if m.model.model is original.model] == [original]
    assert torch.equal(unet.state_dict()[KEY.removeprefix("diffusion_model.")], forge["own"])
    assert all(p.is_inference() for p in unet.parameters()) and not hasattr(unet, "peft_config")
    assert not [m for m in unet.modules() if isinstance(m, torch.nn.Linear)]  # Forge's own Linear layers are back
    path = tmp_path / "Lora" / "FaceChain" / f"{IDENTITY}.safetensors"
    patches, unmatched = load_lora(load_file(str(path)), model_lora_keys_unet(engine.forge_objects.unet.model, {}))
    assert unmatched == {} and len(patches) == 48
    ctx.jobs.shutdown(5)


def test_forge_training_leaves_the_unet_bit_identical(forge, tmp_path, prepared):
    from backend import memory_management

    engine = forge["engine"]
    memory_management.load_models_gpu([engine.forge_objects_original.unet])  # weights without the user's LoRA
    unet = engine.forge_objects_original.unet.model.diffusion_model
    before_fp, before_values = unet_fingerprint(unet), unet_values(unet)
    ctx = ctx_with_identity(tmp_path, prepared)
    job = submit_training(ctx, {**FAST, "validation_images": 0})
    assert ctx.jobs.wait(job.id, 180).status == "done", job.error
    assert unet_fingerprint(unet) == before_fp
    assert all(torch.equal(unet.state_dict()[k], v) for k, v in before_values.items())
    ctx.jobs.shutdown(5)


def test_forge_refuses_a_non_sd1_engine(forge, tmp_path, prepared):
    forge["engine"].is_sd1 = False  # Forge's Flux/SD3 engines keep every legacy flag False
    ctx = ctx_with_identity(tmp_path, prepared)
    job = submit_training(ctx, FAST)
    assert ctx.jobs.wait(job.id, 60).error["code"] == "unsupported_model"
    assert training_worker.is_forge()
    ctx.jobs.shutdown(5)
