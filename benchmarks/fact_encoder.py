"""FACT face-token cost per photo: TransFace-S encoder + perceiver resampler (what the token cache saves).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.fact_encoder [--threads 1 2] [--photos 1 4] [--repeats 5]
        [--device cpu|cuda] [--dtype float32|float16] [--models-dir DIR]

With --models-dir holding the FACT release files (<dir>/fact/...) the real weights are loaded; otherwise the modules
are built at their real shapes with default random initialisation (the cost does not depend on the values).
Times are the median of `--repeats` runs after one warm-up, per photo. Prints a markdown table; writes
benchmarks/out/fact_encoder.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch

from facechain_ext.fact.encoder import TransFaceViT
from facechain_ext.fact.resampler import Resampler

ROOT = Path(__file__).resolve().parents[1]


def median_time(fn: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build(models_dir: Path | None, device: str, dtype: torch.dtype) -> tuple[TransFaceViT, Resampler, str]:
    if models_dir is not None:
        from facechain_ext.fact.files import find_fact_files
        from facechain_ext.fact.model import load_fact_model

        model = load_fact_model(find_fact_files(models_dir), device=device, dtype=dtype)
        return model.encoder, model.resampler, "release files"
    return TransFaceViT().to(device, dtype).eval(), Resampler().to(device, dtype).eval(), "random init, real shapes"


def measure(encoder: TransFaceViT, resampler: Resampler, photos: int, repeats: int, device: str) -> dict[str, float]:
    dtype = resampler.latents.dtype
    img = torch.rand(photos, 3, 112, 112, device=device, dtype=dtype) * 2 - 1
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with torch.no_grad():
        tokens = encoder(img)
        enc = median_time(lambda: encoder(img), repeats, sync)
        res = median_time(lambda: resampler(tokens), repeats, sync)
    return {"encoder_s": enc / photos, "resampler_s": res / photos, "total_s": (enc + res) / photos}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--photos", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    parser.add_argument("--models-dir", type=Path, default=None)
    args = parser.parse_args()
    encoder, resampler, source = build(args.models_dir, args.device, getattr(torch, args.dtype))
    rows = []
    for threads in args.threads if args.device == "cpu" else [torch.get_num_threads()]:
        torch.set_num_threads(threads)
        for photos in args.photos:
            rows.append({"threads": threads, "photos": photos, **measure(encoder, resampler, photos, args.repeats, args.device)})
    print(f"FACT face tokens per photo — {args.device} {args.dtype}, {source}, torch {torch.__version__}")
    print("| threads | photos per call | encoder ms/photo | resampler ms/photo | total ms/photo |\n|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['threads']} | {r['photos']} | {r['encoder_s'] * 1e3:.1f} | {r['resampler_s'] * 1e3:.1f} | {r['total_s'] * 1e3:.1f} |"
        )
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    meta = {"device": args.device, "dtype": args.dtype, "source": source, "torch": torch.__version__, "cpu": platform.processor()}
    (out / "fact_encoder.json").write_text(json.dumps({**meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
