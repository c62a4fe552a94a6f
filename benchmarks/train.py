"""Benchmark: our LoRA trainer vs a plain loop, on the SD1.5 architecture with random weights (CPU).

Both loops train the same LoRA (rank 4 on to_q/to_k/to_v/to_out.0 of attn1+attn2) on the same UNet with the
same optimizer. The reference runs the VAE encoder and the text encoder on every step (no caching); ours encodes
augmented variants once up front and then only runs the UNet. Each mode runs in its own subprocess so its peak
RSS (ru_maxrss) is its own. Timings use 2 torch threads by default (the dev machine has 2 shared cores).

    python benchmarks/train.py [--steps 3] [--resolution 256] [--threads 2]

Prints a Markdown table and writes benchmarks/out/train.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
PHOTOS = 4
CAPTION = "a photo of fcsks person"


class HashTokenizer:
    """Stand-in for CLIPTokenizer (no vocab files offline): 77 ids per prompt; tokenising cost is negligible."""

    model_max_length = 77

    def __call__(self, prompts, padding=None, max_length=77, truncation=True, return_tensors="pt"):
        import torch

        rows = []
        for prompt in prompts:
            ids = [49406] + [hash(w) % 49000 for w in prompt.split()][: max_length - 2] + [49407]
            rows.append(ids + [49407] * (max_length - len(ids)))
        return type("Tokens", (), {"input_ids": torch.tensor(rows)})()


def build_sd15():
    """SD1.5-shaped diffusers components with random weights (UNet 860M, VAE 84M, CLIP ViT-L text 123M)."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from facechain_ext.diffusion.diffusers_model import DiffusersModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8).eval()
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4,
                        sample_size=512).eval()
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                        num_attention_heads=12, num_hidden_layers=12, max_position_embeddings=77,
                                        hidden_act="quick_gelu", projection_dim=768)).eval()
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
    for module in (unet, vae, text):
        module.requires_grad_(False)
    return DiffusersModel(unet, vae, text, HashTokenizer(), scheduler, checkpoint_name="sd15-random")


def photos(resolution: int):
    import numpy as np
    from PIL import Image

    rng = np.random.RandomState(0)
    return [(Image.fromarray(rng.randint(0, 255, (resolution, resolution, 3), dtype=np.uint8)), CAPTION)
            for _ in range(PHOTOS)]


def run_ours(model, config, steps: int) -> dict:
    from facechain_ext.lora.trainer import train_lora

    infos = []
    started = time.perf_counter()
    train_lora(model, photos(config.resolution), config, on_step=infos.append)
    total = time.perf_counter() - started
    # step 1 is warm-up; StepInfo.elapsed excludes the up-front caching
    per_step = (infos[-1].elapsed - infos[0].elapsed) / (len(infos) - 1)
    return {"seconds_per_step": per_step, "setup_seconds": total - infos[-1].elapsed, "total_seconds": total}


def run_reference(model, config, steps: int) -> dict:
    """Plain loop: VAE + text encoder every step, same LoRA, optimizer, loss and clipping."""
    import torch

    from facechain_ext.lora.augment import square_resize, to_pixels
    from facechain_ext.lora.inject import lora_attached
    from facechain_ext.lora.trainer import diffusion_loss

    items = photos(config.resolution)
    alphas = model.alphas_cumprod
    g = torch.Generator().manual_seed(0)
    times = []
    started = time.perf_counter()
    with lora_attached(model, config) as session:
        params = session.parameters()
        optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
        for step in range(steps + 1):
            t0 = time.perf_counter()
            image, caption = items[step % len(items)]
            latents = model.encode_images(to_pixels([square_resize(image, config.resolution)]), seed=step)
            cond = model.encode_prompts([caption])
            t = torch.randint(0, 1000, (1,), generator=g)
            loss = diffusion_loss(model, latents, cond, t, torch.randn(latents.shape, generator=g), alphas)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - t0)
    per_step = sum(times[1:]) / steps  # first step is warm-up
    return {"seconds_per_step": per_step, "setup_seconds": 0.0, "total_seconds": time.perf_counter() - started}


def child(mode: str, steps: int, resolution: int, threads: int) -> None:
    import torch

    from facechain_ext.lora.config import TrainConfig

    torch.set_num_threads(threads)
    model = build_sd15()
    config = TrainConfig(resolution=resolution, steps=steps + 1, augment_variants=4, snapshot_every=0)
    result = (run_ours if mode == "ours" else run_reference)(model, config, steps)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per mode (after one warm-up step)")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=["ours", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps, args.resolution, args.threads)
        return
    results = {}
    for mode in ("reference", "ours"):
        proc = subprocess.run([sys.executable, __file__, "--child", mode, "--steps", str(args.steps), "--resolution",
                               str(args.resolution), "--threads", str(args.threads)], cwd=ROOT, capture_output=True,
                              text=True, check=True, env={"PYTHONPATH": str(ROOT), **_env()})
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    ref, ours = results["reference"], results["ours"]
    summary = {"speedup_per_step": ref["seconds_per_step"] / ours["seconds_per_step"],
               "peak_rss_ratio": ours["peak_rss_mb"] / ref["peak_rss_mb"]}
    report = {"config": vars(args) | {"photos": PHOTOS, "model": "SD1.5 architecture, random weights, fp32, CPU"},
              "results": results, "summary": summary}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "train.json").write_text(json.dumps(report, indent=2))
    print(f"SD1.5 architecture (random weights), {args.resolution} px, {args.threads} threads, "
          f"{args.steps} timed steps after 1 warm-up\n")
    print("| loop | s/step | setup s (caching) | peak RSS MB |\n|---|---|---|---|")
    for mode in ("reference", "ours"):
        r = results[mode]
        print(f"| {mode} | {r['seconds_per_step']:.2f} | {r['setup_seconds']:.1f} | {r['peak_rss_mb']:.0f} |")
    print(f"\nspeed-up per step: {summary['speedup_per_step']:.2f}x; peak memory ours/reference: {summary['peak_rss_ratio']:.2f}")


def _env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


if __name__ == "__main__":
    main()
