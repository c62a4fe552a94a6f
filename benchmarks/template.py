"""FaceChain's own work per template face (everything but the sampler), on real group photos.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.template [--data DIR] [--repeats 3]

Templates: the two-person group photos of ../shared/data/edge; two identities are prepared from ../shared/data/faces
beforehand (not timed), each face of the template gets one. Timed, CPU ms on one thread, best of `--repeats`:

- prepare: `templates.run.prepare_run` (template faces detected and numbered, choices checked, identities resolved,
  masks built and separated): what runs before a job is queued;
- detect / masks: its two main parts on their own;
- compose: `compose_pass` of one face pass's (host-composited) output, exactness enforced;
- fusion+score: `finish_candidate` for one candidate (one detection of the composed image, then per face fusion toward
  the identity's best photo inside its mask and re-embedding): what runs after the sampler;
- per face = (prepare + compose × faces + fusion+score) / faces.

The sampler is replaced by pasting another photo of the identity, aligned on the face (as the tests' stand-in does),
outside the timing. Quality columns: similarity to the identity before → after fusion (mean over faces) and whether
every pixel outside the masks is bit-identical to the template. Prints a markdown table; writes
benchmarks/out/template.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from facechain_ext.config import Settings
from facechain_ext.context import FaceChainContext
from facechain_ext.faces.align import similarity_matrix
from facechain_ext.imaging import load_image
from facechain_ext.templates.compose import compose_pass
from facechain_ext.templates.faces import list_template_faces
from facechain_ext.templates.masks import build_face_mask, separate
from facechain_ext.templates.request import TemplateArgs
from facechain_ext.templates.run import finish_candidate, prepare_run

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ("group_two_people.jpg", "group_deepface_couple.jpg", "group_kit_with_rose.jpg")
IDENTITIES = {  # name: (folder, photos to prepare, photo painted in place of the sampler)
    "angelina": ("deepface_angelina", ("deepface_tests_img1.jpg", "deepface_tests_img2.jpg", "deepface_tests_img4.jpg"),
                 "deepface_tests_img6.jpg"),
    "p02": ("deepface_p02", ("deepface_tests_img26.jpg", "deepface_tests_img27.jpg", "deepface_tests_img28.jpg"),
            "deepface_tests_img42.jpg"),
}
STRENGTH = 0.65


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """(best CPU ms over `repeats` runs, the last result). One thread: CPU time is the cost on one core."""
    times, result = [], None
    for _ in range(repeats):
        start = time.process_time()
        result = fn()
        times.append(time.process_time() - start)
    return min(times) * 1000.0, result


def make_context(root: Path, data: Path) -> FaceChainContext:
    from facechain_ext.prep import PrepOptions, prepare_photos

    ctx = FaceChainContext(Settings(models_dir=root / "models", face_backend="dlib", lora_dir=root / "Lora"))
    for name, (folder, photos, _) in IDENTITIES.items():
        report = prepare_photos([(p, data / "faces" / folder / p) for p in photos], ctx.analyzer(), PrepOptions())
        ctx.identities.create(name, report)
    return ctx


def paint(template: np.ndarray, face: Any, photo: np.ndarray, photo_kps: np.ndarray) -> Image.Image:
    """The sampler's stand-in: the identity's photo aligned onto the face, blended by the strength (full size)."""
    import cv2

    matrix = similarity_matrix(photo_kps, face.kps)
    size = (template.shape[1], template.shape[0])
    warped = cv2.warpAffine(photo, matrix, size).astype(np.float32)
    valid = cv2.warpAffine(np.ones(photo.shape[:2], np.float32), matrix, size)[:, :, None] * STRENGTH
    return Image.fromarray(np.round(template * (1 - valid) + warped * valid).astype(np.uint8))


def bench_template(ctx: FaceChainContext, data: Path, name: str, repeats: int) -> dict[str, Any]:
    analyzer = ctx.analyzer()
    template = load_image(data / "edge" / name)
    faces = list_template_faces(template, analyzer)[:2]
    args = TemplateArgs(faces=[{"index": f.index, "identity": who} for f, who in zip(faces, IDENTITIES, strict=True)],
                        seed=1, guidance={"pose": False, "canny": False})
    prepare_ms, run = best_of(lambda: prepare_run(ctx, template, args), repeats)
    detect_ms, _ = best_of(lambda: list_template_faces(template, analyzer), repeats)
    masks_ms, _ = best_of(lambda: separate([build_face_mask(template.size, f) for f in faces], faces), repeats)
    pixels = np.asarray(template).copy()
    compose_ms = []
    for face_pass, who in zip(run.passes, IDENTITIES.values(), strict=True):
        photo = np.asarray(load_image(data / "faces" / who[0] / who[2]))
        painted = paint(pixels, face_pass.face.face, photo, analyzer.detect(photo, embed=False)[0].kps)
        ms, pixels = best_of(lambda p=painted, fp=face_pass, base=pixels: compose_pass(base, p, run.masks[fp.index], None),
                             repeats)
        compose_ms.append(ms)
    for ident in run.identities.values():  # loaded once per job in real use (best photo, reference embedding)
        ident.runtime.reference(), ident.runtime.embedding()
    finish_ms, candidate = best_of(lambda: finish_candidate(run, pixels, 1, 0), repeats)
    outside = run.union_mask() == 0
    exact = bool((np.asarray(candidate.image)[outside] == np.asarray(template)[outside]).all())
    count = len(run.passes)
    return {
        "template": name, "size": list(template.size), "faces": count, "prepare_ms": prepare_ms, "detect_ms": detect_ms,
        "masks_ms": masks_ms, "compose_ms_per_face": float(np.mean(compose_ms)), "fusion_score_ms": finish_ms,
        "per_face_ms": (prepare_ms + sum(compose_ms) + finish_ms) / count,
        "similarity_before": float(np.mean([f.score_before_fusion for f in candidate.faces])),
        "similarity_after": float(np.mean([f.score for f in candidate.faces])),
        "outside_exact": exact,
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| template | size | prepare (detect, masks) | compose / face | fusion + scoring | **per face** | "
             "similarity before → after | outside masks |", "|---|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['template']} | {r['size'][0]}×{r['size'][1]} | {r['prepare_ms']:.0f} ({r['detect_ms']:.0f}, "
            f"{r['masks_ms']:.0f}) | {r['compose_ms_per_face']:.0f} | {r['fusion_score_ms']:.0f} | "
            f"**{r['per_face_ms']:.0f}** | {r['similarity_before']:.3f} → {r['similarity_after']:.3f} | "
            f"{'identical' if r['outside_exact'] else 'CHANGED'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = make_context(Path(tmp), options.data)
        rows = [bench_template(ctx, options.data, name, options.repeats) for name in TEMPLATES]
    print(table(rows))
    report = {"rows": rows, "machine": platform.platform(), "cpu_count": os.cpu_count(),
              "omp_threads": os.environ.get("OMP_NUM_THREADS"), "backend": "dlib"}
    out = ROOT / "benchmarks" / "out" / "template.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(report, indent=2))
    os.replace(tmp_out, out)


if __name__ == "__main__":
    main()
