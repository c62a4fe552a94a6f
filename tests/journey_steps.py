"""Journey steps that differ by host (tests/test_journey.py runs the journey on the A1111 stand-in and on Forge's).

What differs is only where FaceChain meets the model: the checkpoint object (`shared.sd_model`: an ldm
LatentDiffusion on A1111, a Forge `StableDiffusion` engine on Forge), where FACT sits while the sampler runs (instance
hooks on the UNet's transformer blocks on A1111, a `middle_patch` on the sampling's UNet clone on Forge) and which
thread generates (the request's thread on A1111, Forge's main thread on Forge, as Forge's modules/txt2img.py does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch

MAIN_THREAD_NAME = "forge-main-thread"  # the name tests/conftest.py `fake_forge` gives Forge's main-thread loop


def host_unet(checkpoint: Any) -> torch.nn.Module:
    """The checkpoint's UNet module that training borrows (Forge: behind `forge_objects_original.unet`)."""
    if hasattr(checkpoint, "forge_objects_original"):
        return checkpoint.forge_objects_original.unet.model.diffusion_model
    return checkpoint.model.diffusion_model


def sd15_checkpoint(variant: str, tiny: Any) -> Any:
    """An SD1.5-shaped checkpoint (the real ldm UNet config, on the meta device: no memory, never sampled by the fake
    sampler) that FACT accepts: the synthetic FACT release has the published SD1.5 widths the tiny UNet lacks."""
    from fact_hook_helpers import SD15_UNET, FakeLatentDiffusion
    from ldm.modules.diffusionmodules.openaimodel import UNetModel

    if variant == "a1111":
        with torch.device("meta"):
            unet = UNetModel(**SD15_UNET).eval().requires_grad_(False)
        return FakeLatentDiffusion(unet, title="sd15-meta")
    from backend.diffusion_engine.sd15 import StableDiffusion
    from backend.loader import build_unet
    from backend.modules.k_model import KModel
    from backend.patcher.unet import UnetPatcher

    config = {**SD15_UNET, "use_checkpoint": False}
    with torch.device("meta"):
        state = UNetModel(**config).state_dict()
    unet = build_unet(config, state, device=torch.device("meta"), dtype=torch.float32)
    patcher = UnetPatcher(KModel(unet, tiny.forge_objects.unet.model.predictor), load_device=torch.device("cpu"),
                          offload_device=torch.device("cpu"))
    engine = StableDiffusion(unet=patcher, clip=tiny.forge_objects.clip, vae=tiny.forge_objects.vae)
    engine.sd_checkpoint_info = type("CheckpointInfo", (), {"title": "sd15-meta", "name": "sd15-meta"})()
    return engine


def fact_probe(variant: str) -> Callable[[Any], bool]:
    """Is FACT in the UNet the sampler is about to run for `p`?"""
    if variant == "a1111":
        from facechain_ext.fact.attach import has_fact_hooks

        return lambda p: has_fact_hooks(p.sd_model.model.diffusion_model)
    from facechain_ext.webui.forge_fact import ForgeFactPatch

    def forge(p: Any) -> bool:
        patches = p.sd_model.forge_objects.unet.model_options.get("transformer_options", {}).get("patches", {})
        return any(isinstance(patch, ForgeFactPatch) for patch in patches.get("middle_patch", []))

    return forge


def fact_left_nothing(variant: str, checkpoint: Any) -> bool:
    """After the generation: no hook on the A1111 UNet; on Forge the patcher every later sampling starts from is clean."""
    if variant == "a1111":
        from facechain_ext.fact.attach import has_fact_hooks

        return not has_fact_hooks(checkpoint.model.diffusion_model)
    original = checkpoint.forge_objects_after_applying_lora.unet
    return original.model_options == {"transformer_options": {}} and original.extra_model_patchers_during_sampling == []


def ran_where_the_host_generates(variant: str, calls: list[dict]) -> bool:
    """Every sampling ran on Forge's main thread on Forge, and never there on A1111 (which has none)."""
    return bool(calls) and all((call["thread"] == MAIN_THREAD_NAME) == (variant == "forge") for call in calls)


def install_fact_release(models_dir: Path, release: Any) -> None:
    """The synthetic FACT files where FaceChain looks for them (`<facechain models>/fact/`), as a user would put them."""
    folder = models_dir / "fact"
    folder.mkdir(parents=True, exist_ok=True)
    for path in (release.encoder, release.adapter):
        (folder / path.name).symlink_to(path)


def run_like_the_host_txt2img(variant: str, process: Callable[[Any], Any], p: Any) -> Any:
    """The host's own txt2img around `process_images(p)`: Forge runs it through its main thread
    (Forge modules/txt2img.py `txt2img` → `main_thread.run_and_wait_result`), A1111 in the request's thread."""
    if variant == "a1111":
        return process(p)
    from modules_forge import main_thread

    processed = main_thread.run_and_wait_result(process, p)
    assert processed is not None, f"the host's txt2img failed on Forge's main thread: {main_thread.last_exception!r}"
    return processed


def generate_with_fact(host: Any, release: Any, name: str, seed: int) -> None:
    """Train-free portraits: the identity has no LoRA yet, so "Likeness from: Auto" uses FACT. Over the API, with an
    SD1.5-shaped checkpoint loaded for this step (the user's checkpoint is put back afterwards, as a model switch)."""
    from modules import shared
    from modules.infotext_utils import parse_generation_parameters

    install_fact_release(host.entry.FaceChainScript.bound_context.settings.models_dir, release)
    tiny, sampler = shared.sd_model, host.sampler
    checkpoint = shared.sd_model = sd15_checkpoint(host.variant, tiny)
    sampler.probe, first = fact_probe(host.variant), len(sampler.calls)
    body = {"prompt": "portrait photo", "seed": seed, "batch_size": 2, "steps": 12, "width": 512, "height": 512,
            "facechain": {"identity": name, "fusion": {"enabled": True, "strength": 0.7}, "ranking": {"enabled": True}}}
    try:
        response = host.client.post("/facechain/v1/txt2img", json=body)
    finally:
        sampler.probe, shared.sd_model = None, tiny
    assert response.status_code == 200, response.text
    data, calls = response.json(), sampler.calls[first:]
    assert [(c["seed"], c["probe"], c["networks"]) for c in calls] == [(seed, True, []), (seed + 1, True, [])]
    assert ran_where_the_host_generates(host.variant, calls)
    assert fact_left_nothing(host.variant, checkpoint)
    comments = data["comments"]
    assert "using FACT (train-free) for the likeness" in comments, comments
    assert "FACT is off" not in comments and "FACT had no effect" not in comments, comments
    assert data["order"] == [1, 0] and data["scores"][0] is not None and data["scores"][1] is None  # seed+1: the person
    params = [parse_generation_parameters(text) for text in json.loads(data["info"])["infotexts"]]
    for values in params:
        assert (values["FaceChain conditioning"], values["FaceChain FACT scale"], values["FaceChain FACT photos"]) == (
            "fact", "0.5", "1")
        assert "FaceChain LoRA" not in values and "<lora:" not in values["Prompt"]
    assert params[0]["FaceChain fusion"] == "0.7" and params[1]["FaceChain fusion"] == "0.7 (not applied - no face found)"


def generate_from_the_tab(host: Any, name: str, style: str, seed: int, api_scores: dict[int, Any]) -> None:
    """The tab's Generate view, through the host's GPU wrapper as its button runs it: one style, 4 portraits with the
    LoRA, fused and sorted by similarity, the same similarity per seed as over the API."""
    from modules import progress, shared
    from modules.infotext_utils import parse_generation_parameters

    from facechain_ext.webui import tab_generate

    handler = tab_generate._wrapped_handler(host.entry.FaceChainScript.bound_context)
    first = len(host.sampler.calls)
    gallery, infotexts, selected, note = handler(
        "task(facechain-journey)", name, [style], 4, 512, 512, 12, 7.0, "Euler a", seed, False, True, 0.7, True, 0,
        0.0, False, "portrait photo", "")
    calls = host.sampler.calls[first:]
    assert "error" not in note and note.startswith("<p>4 portraits.</p>"), note
    assert [c["seed"] for c in calls] == [seed + i for i in range(4)] and all(c["networks"] for c in calls)
    assert ran_where_the_host_generates(host.variant, calls)
    assert "task(facechain-journey)" in progress.finished_tasks and shared.state.job == ""
    params = [parse_generation_parameters(text) for text in infotexts]
    style_name = host.entry.FaceChainScript.bound_context.styles.get(style).name  # captions show display names
    assert selected == infotexts[0] and len(gallery) == len(params) == 4
    assert [int(values["Seed"]) for values in params][0] == seed + 2 and int(params[-1]["Seed"]) == seed + 1
    for (image, caption), values in zip(gallery, params, strict=True):
        score = api_scores[int(values["Seed"])]
        assert values["FaceChain conditioning"] == "lora" and values["FaceChain LoRA"] == name
        assert caption == f"{style_name} · " + ("no face" if score is None else f"similarity {values['FaceChain similarity']}")
        if score is None:
            assert values["FaceChain similarity"] == "none (no face found)"
        else:
            assert values["FaceChain similarity"] == f"{score:.3f}".rstrip("0")
        assert image.size == (512, 512)
