"""FACT hook cost: one UNet step with the FACT adapter hooked in vs the plain step, at SD1.5 shapes.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.fact [--size 64] [--batch 1] [--repeats 3] [--threads 1]
        [--device cpu|cuda] [--dtype float32|float16] [--attention sdp|vanilla]

The real ldm UNetModel (v1-inference.yaml config) and the real FactAdapter (16 blocks) at their real shapes, filled
with uniform noise (the cost does not depend on the values); one call = the host's batch_cond_uncond layout,
`batch` conditional + `batch` unconditional rows of a `size`×`size` latent (64 = a 512×512 image), routed by the
conditioning exactly as in a generation. `--attention sdp` replaces CrossAttention.forward at class level with
scaled_dot_product_attention, as the host's default optimisation does (modules/sd_hijack_optimizations.py);
`vanilla` keeps ldm's einsum attention. Plain and hooked calls alternate (ABAB…) so machine load hits both alike;
each time is the median of `--repeats` calls after one warm-up each (also the median of the paired ratios). Also: the
FLOPs of both steps (torch's FlopCounterMode on meta tensors: the ratio the arithmetic alone implies), the time of
the 16 adapter blocks run alone (so hooked − plain − blocks = what the hook mechanism costs), the parameter memory
FACT adds, and the face encoder + resampler time for one photo (benchmarks/fact_encoder.py). Prints markdown; writes
benchmarks/out/fact.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from facechain_ext.fact.adapter import FactAdapter
from facechain_ext.fact.attach import FaceTokens, RowRouter, attach

ROOT = Path(__file__).resolve().parents[1]
SD15_UNET = dict(
    image_size=32, in_channels=4, out_channels=4, model_channels=320, attention_resolutions=[4, 2, 1],
    num_res_blocks=2, channel_mult=[1, 2, 4, 4], num_heads=8, use_spatial_transformer=True, transformer_depth=1,
    context_dim=768, use_checkpoint=True, legacy=False,
)


def filled(module: nn.Module, device: str, dtype: torch.dtype) -> nn.Module:
    """Materialise a meta-built module on `device` and fill it with U(-1, 1)·sqrt(3/fan_in) (LayerNorm scales 1)."""
    module = module.to_empty(device=device)
    with torch.no_grad():
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            if tensor.dim() >= 2:
                tensor.uniform_(-1, 1).mul_((3.0 / tensor[0].numel()) ** 0.5)
            else:
                tensor.fill_(1.0 if name.endswith("weight") else 0.0)
    return module.to(dtype).eval().requires_grad_(False)


def sdp_attention_forward(self: Any, x: torch.Tensor, context: Any = None, mask: Any = None) -> torch.Tensor:
    """CrossAttention.forward with torch's scaled_dot_product_attention (the host's 'sdp' optimisation)."""
    h = self.heads
    context = x if context is None else context
    q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)
    b, _, inner = q.shape
    q, k, v = (t.view(b, -1, h, inner // h).transpose(1, 2) for t in (q, k, v))
    return self.to_out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, -1, inner))


def alternate(a: Callable[[], Any], b: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> tuple[list[float], list[float]]:
    """Times of a() and b(), called alternately after one warm-up each."""
    a(), b()
    sync()
    times_a, times_b = [], []
    for _ in range(repeats):
        for fn, times in ((a, times_a), (b, times_b)):
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
    return times_a, times_b


def adapter_only(unet: nn.Module, adapter: FactAdapter, tokens: FaceTokens, plain: Callable[[], None], repeats: int,
                 sync: Callable[[], None]) -> float:
    """Median time of the 16 FactBlock forwards alone, on the inputs their norm2 sees in a plain call: what FACT's
    arithmetic costs; the rest of (hooked - plain) is the hook mechanism."""
    inputs: dict = {}
    handles = [unet.get_submodule(f"{s.compvis}.norm2").register_forward_pre_hook(
        lambda m, a, s=s: inputs.__setitem__(s, a[0])) for s in adapter.sites]
    try:
        plain()
    finally:
        for handle in handles:
            handle.remove()

    def blocks() -> None:
        with torch.no_grad():
            for site, x in inputs.items():
                face = torch.cat([tokens.face, tokens.no_face]).repeat(x.shape[0] // 2, 1, 1)
                adapter.block(site)(x, face, 0.5)

    blocks()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        blocks()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def flops(size: int, batch: int) -> tuple[int, int]:
    """(plain, hooked) FLOPs of one step, counted by torch's FlopCounterMode on meta tensors (no compute)."""
    from ldm.modules.diffusionmodules.openaimodel import UNetModel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        unet, adapter = UNetModel(**SD15_UNET), FactAdapter()
        x, context = torch.randn(2 * batch, 4, size, size), torch.randn(2 * batch, 77, 768)
        t, tokens = torch.full((2 * batch,), 500.0), FaceTokens(torch.randn(1, 16, 768), torch.randn(1, 16, 768))
    counts = []
    with torch.no_grad():
        for hooked in (False, True):
            with contextlib.ExitStack() as stack:
                if hooked:
                    stack.enter_context(attach(unet, [(s, adapter.block(s)) for s in adapter.sites], tokens, scale=0.5))
                counter = stack.enter_context(FlopCounterMode(display=False))
                unet(x, t, context=context)
            counts.append(counter.get_total_flops())
    return counts[0], counts[1]


def nbytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from ldm.modules.attention import CrossAttention
    from ldm.modules.diffusionmodules.openaimodel import UNetModel

    dtype = getattr(torch, args.dtype)
    with torch.device("meta"):
        unet, adapter = UNetModel(**SD15_UNET), FactAdapter()
    unet, adapter = filled(unet, args.device, dtype), filled(adapter, args.device, dtype)
    g = torch.Generator(device="cpu").manual_seed(0)
    rows = 2 * args.batch
    x = torch.randn(rows, 4, args.size, args.size, generator=g).to(args.device, dtype)
    cond, uncond = (torch.randn(args.batch, 77, 768, generator=g).to(args.device, dtype) for _ in range(2))
    context, t = torch.cat([cond, uncond]), torch.full((rows,), 500.0, device=args.device)
    tokens = FaceTokens(*(torch.randn(1, 16, 768, generator=g).to(args.device, dtype) for _ in range(2)))
    router = RowRouter()
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    original = CrossAttention.forward
    if args.attention == "sdp":
        CrossAttention.forward = sdp_attention_forward
    try:
        attachment = attach(unet, [(s, adapter.block(s)) for s in adapter.sites], tokens, scale=0.5, router=router)
        attachment.detach()

        def plain() -> None:
            with torch.no_grad():
                unet(x, t, context=context)

        def hooked() -> None:
            with attach(unet, [(s, adapter.block(s)) for s in adapter.sites], tokens, scale=0.5, router=router):
                router.begin_step(cond, uncond)  # what on_cfg_denoiser reports before the step's UNet call
                with torch.no_grad():
                    unet(x, t, context=context)

        plain_times, hooked_times = alternate(plain, hooked, args.repeats, sync)
        blocks_s = adapter_only(unet, adapter, tokens, plain, args.repeats, sync)
    finally:
        CrossAttention.forward = original
    plain_s, hooked_s = statistics.median(plain_times), statistics.median(hooked_times)
    plain_flops, hooked_flops = flops(args.size, args.batch)
    return {
        "plain_s": plain_s, "hooked_s": hooked_s, "ratio": hooked_s / plain_s, "adapter_blocks_s": blocks_s,
        "pair_ratio": statistics.median(h / p for p, h in zip(plain_times, hooked_times, strict=True)),
        "plain_tflop": plain_flops / 1e12, "hooked_tflop": hooked_flops / 1e12, "flop_ratio": hooked_flops / plain_flops,
        "hook_overhead_s": hooked_s - plain_s - blocks_s,
        "plain_times": plain_times, "hooked_times": hooked_times,
        "unet_bytes": nbytes(unet), "adapter_bytes": nbytes(adapter), "adapter_params": sum(p.numel() for p in adapter.parameters()),
    }


def encoder_cost(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.fact_encoder import measure as measure_tokens
    from facechain_ext.fact.encoder import TransFaceViT
    from facechain_ext.fact.resampler import Resampler

    dtype = getattr(torch, args.dtype)
    with torch.device("meta"):
        encoder, resampler = TransFaceViT(), Resampler()
    encoder, resampler = filled(encoder, args.device, dtype), filled(resampler, args.device, dtype)
    return {**measure_tokens(encoder, resampler, 1, args.repeats, args.device),
            "encoder_bytes": nbytes(encoder), "resampler_bytes": nbytes(resampler)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="latent side (64 = 512x512 pixels)")
    parser.add_argument("--batch", type=int, default=1, help="images per step (rows = 2 x batch: cond + uncond)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    parser.add_argument("--attention", choices=["sdp", "vanilla"], default="sdp")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    step = measure(args)
    tokens = encoder_cost(args)
    mib = 1 << 20
    print(f"FACT hook — {args.device} {args.dtype}, {args.threads} thread(s), attention {args.attention}, "
          f"latent {args.size}x{args.size}, {2 * args.batch} rows (cond + uncond), torch {torch.__version__}")
    print("| UNet step | plain s | hooked s | ratio (medians) | median of paired ratios | FLOP ratio | FACT blocks alone s | "
          "hook overhead s | FACT parameters added | encoder + resampler / photo |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    added = step["adapter_bytes"] + tokens["encoder_bytes"] + tokens["resampler_bytes"]
    print(f"| median of {args.repeats} | {step['plain_s']:.2f} | {step['hooked_s']:.2f} | {step['ratio']:.3f} | "
          f"{step['pair_ratio']:.3f} | {step['flop_ratio']:.3f} ({step['plain_tflop']:.2f} → {step['hooked_tflop']:.2f} TFLOP) | "
          f"{step['adapter_blocks_s']:.2f} | {step['hook_overhead_s']:+.3f} | "
          f"{added / mib:.0f} MiB (adapter {step['adapter_bytes'] / mib:.0f} MiB; UNet {step['unet_bytes'] / mib:.0f} MiB) | "
          f"{tokens['total_s'] * 1e3:.0f} ms |")
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    meta = {k: getattr(args, k) for k in ("size", "batch", "repeats", "threads", "device", "dtype", "attention")}
    meta.update(torch=torch.__version__, cpu=platform.processor())
    (out / "fact.json").write_text(json.dumps({**meta, "step": step, "tokens": tokens}, indent=2))


if __name__ == "__main__":
    main()
