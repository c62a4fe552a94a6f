"""Face-analysis speed per photo on ../shared/data/faces, per available backend, and our overhead over bare dlib.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.faces [--data DIR] [--repeats 2] [--pack BUFFALO_L_DIR]

Stage times are the median over photos of the best of `--repeats` runs. "ours / bare" compares `FaceAnalyzer.detect`
(working copy, HOG, 5 points, keypoint mapping, 128-d embedding for every face, sorting) with the same dlib calls made
directly on the same working copy; the goal is <= 1.2x. A second table times a 6000 x 4000 photo whose only face is
112 px (a real face pasted into a real background): the first pass alone, and the full detection with its tile pass.
Prints markdown tables; writes benchmarks/out/faces.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facechain_ext.config import default_settings
from facechain_ext.faces import backend_status, find_insightface_pack
from facechain_ext.faces.analyzer import FaceAnalyzer
from facechain_ext.faces.dlib_backend import DlibBackend
from facechain_ext.faces.insightface_backend import InsightFaceBackend
from facechain_ext.imaging import load_image

ROOT = Path(__file__).resolve().parents[1]


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def load_photos(data: Path) -> list[tuple[str, np.ndarray]]:
    with open(data / "faces" / "faces.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [(row["path"], np.ascontiguousarray(np.asarray(load_image(data / row["path"])))) for row in rows]


def time_dlib_photo(backend: DlibBackend, analyzer: FaceAnalyzer, rgb: np.ndarray, repeats: int) -> dict[str, float]:
    models = backend.models()
    work = backend.working_image(rgb).array
    found = backend.find_faces(work)
    shapes = [backend.shape(work, rect) for rect, _, _ in found]

    def bare() -> None:
        for rect in models.detector(work, backend.upsample):
            models.recognizer.compute_face_descriptor(work, models.shape_predictor(work, rect), 0, 0.25)

    times = {
        "detect": best_of(lambda: backend.find_faces(work), repeats),
        "landmarks": best_of(lambda: [backend.shape(work, r) for r, _, _ in found], repeats),
        "embed": best_of(lambda: [backend.descriptor(work, s) for s in shapes], repeats),
        "full": float("inf"),
        "bare": float("inf"),
    }
    for _ in range(repeats):  # interleaved, so machine-load drift hits ours and bare alike
        times["full"] = min(times["full"], best_of(lambda: analyzer.detect(rgb, embed=True), 1))
        times["bare"] = min(times["bare"], best_of(bare, 1))
    return times


def bench_dlib(photos: list[tuple[str, np.ndarray]], repeats: int) -> dict[str, Any]:
    backend = DlibBackend()
    analyzer = FaceAnalyzer(backend)
    per_photo = [time_dlib_photo(backend, analyzer, rgb, repeats) for _, rgb in photos]
    column = {k: np.array([t[k] for t in per_photo]) for k in per_photo[0]}
    return {
        "detect": float(np.median(column["detect"])),
        "landmarks": float(np.median(column["landmarks"])),
        "embed": float(np.median(column["embed"])),
        "full": float(np.median(column["full"])),
        "bare_dlib": float(np.median(column["bare"])),
        "ours_over_bare": float(column["full"].sum() / column["bare"].sum()),
        "info": analyzer.info(),
    }


def time_insightface_photo(
    backend: InsightFaceBackend, analyzer: FaceAnalyzer, rgb: np.ndarray, repeats: int
) -> dict[str, float]:
    pack = backend.models()
    models = pack.models
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    bboxes, kpss = models["detection"].detect(bgr, max_num=0)
    records = [pack.face_type(bbox=bboxes[i, :4], kps=kpss[i], det_score=bboxes[i, 4]) for i in range(len(bboxes))]
    extra = [models[t] for t in ("landmark_2d_106", "genderage") if t in models]
    return {
        "detect": best_of(lambda: models["detection"].detect(bgr, max_num=0), repeats),
        "landmarks": best_of(lambda: [m.get(bgr, r) for r in records for m in extra], repeats),
        "embed": best_of(lambda: [models["recognition"].get(bgr, r) for r in records], repeats),
        "full": best_of(lambda: analyzer.detect(rgb, embed=True), repeats),
    }


def bench_insightface(pack: Path, photos: list[tuple[str, np.ndarray]], repeats: int) -> dict[str, Any]:
    backend = InsightFaceBackend(pack)
    analyzer = FaceAnalyzer(backend)
    per_photo = [time_insightface_photo(backend, analyzer, rgb, repeats) for _, rgb in photos]
    result: dict[str, Any] = {k: float(np.median([t[k] for t in per_photo])) for k in per_photo[0]}
    result["info"] = analyzer.info()
    return result


def bench_large_photo(data: Path, repeats: int, face_px: float = 112.0) -> dict[str, Any]:
    """A small face in a 6000 x 4000 photo (dlib): first pass only vs the full `detect` with its tile pass."""
    from tests.photo_helpers import face_in_large_canvas

    analyzer = FaceAnalyzer(DlibBackend())
    canvas, expected = face_in_large_canvas(str(data / "faces/obama/face_recognition_obama.jpg"),
                                            str(data / "edge/noface_crop_table.jpg"), face_px, analyzer)
    rgb = np.asarray(canvas)
    plan = analyzer.tile_plan(canvas.width, canvas.height)
    first_pass = analyzer.backend.detect(rgb, embed=True)
    faces = analyzer.detect(rgb, embed=True)
    found = [f for f in faces if abs(f.center[0] - (expected[0] + expected[2]) / 2) < face_px / 2]
    return {
        "size": list(canvas.size),
        "face_px": face_px,
        "min_face_size": analyzer.min_face_size,
        "tiles": 0 if plan is None else plan.count,
        "tile_scale": None if plan is None else plan.scale,
        "found_first_pass": len(first_pass),
        "found": len(found),
        "first_pass_s": best_of(lambda: analyzer.backend.detect(rgb, embed=True), repeats),
        "detect_s": best_of(lambda: analyzer.detect(rgb, embed=True), repeats),
    }


def large_markdown(large: dict[str, Any]) -> str:
    width, height = large["size"]
    return "\n".join([
        f"{width} x {height} photo, one {large['face_px']:.0f} px face, dlib, min_face_size {large['min_face_size']}",
        "",
        "| pass | faces found | seconds |",
        "|---|---|---|",
        f"| 1024 px copy only | {large['found_first_pass']} | {large['first_pass_s']:.2f} |",
        f"| + {large['tiles']} tiles at scale {large['tile_scale']:.3f} (what `detect` does) | {large['found']} | "
        f"{large['detect_s']:.2f} |",
    ])


def markdown(results: dict[str, Any], photos: int) -> str:
    lines = [
        f"Per-photo median seconds on {photos} photos of ../shared/data/faces (one CPU thread)",
        "",
        "| backend | detect | landmarks (+attributes) | embed | full analysis | bare dlib calls | ours / bare |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        if "skipped" in r:
            lines.append(f"| {name} | not run: {r['skipped']} | | | | | |")
            continue
        bare = f"{r['bare_dlib']:.3f}" if "bare_dlib" in r else "-"
        ratio = f"{r['ours_over_bare']:.2f}x" if "ours_over_bare" in r else "-"
        lines.append(
            f"| {name} | {r['detect']:.3f} | {r['landmarks']:.4f} | {r['embed']:.3f} | {r['full']:.3f} | {bare} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("FACECHAIN_TEST_DATA", ROOT.parent / "shared" / "data")))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--pack", type=Path, default=None, help="a buffalo_l folder (default: the configured one, if any)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "faces.json")
    args = parser.parse_args(argv)
    if not (args.data / "faces" / "faces.csv").is_file():
        parser.error(f"test photos not found in {args.data} (set --data or FACECHAIN_TEST_DATA)")
    photos = load_photos(args.data)
    results: dict[str, Any] = {}
    settings = default_settings()
    pack = args.pack or find_insightface_pack(settings)
    if pack is not None:
        results["insightface"] = bench_insightface(pack, photos, args.repeats)
    else:
        results["insightface"] = {"skipped": backend_status(settings)["insightface"]["reason"]}
    results["dlib"] = bench_dlib(photos, args.repeats)
    large = bench_large_photo(args.data, args.repeats)
    table = markdown(results, len(photos)) + "\n\n" + large_markdown(large)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "photos": len(photos),
        "repeats": args.repeats,
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        },
        "results": results,
        "large_photo": large,
        "table": table,
    }
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
