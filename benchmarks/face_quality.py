"""Face-analysis quality on ../shared/data/faces with the dlib backend: the numbers in the README's "Face analysis" and
"Training-photo preparation" paragraphs, reproduced.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.face_quality [--data DIR]

The same-person threshold is fitted on the CALIBRATION identities only (every other identity of faces.csv, by
sorted name) and verification is reported on the others, so the reported accuracy is not measured on the photos the
threshold was chosen on. Stranger rejection: for every identity with >= 4 photos and every photo of another person,
`prep.consistency.find_strangers` over the identity's photos plus that one photo must reject exactly the stranger.
Prints a markdown table; writes benchmarks/out/face_quality.json. tests/test_faces_dlib.py asserts the same figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# faces.csv identities sorted by name, even positions: the threshold is fitted on these and verified on the rest.
CALIBRATION_IDENTITIES = (
    "alex_lacamoire", "deepface_angelina", "deepface_p03", "deepface_p06", "deepface_p10", "deepface_p12",
    "kit_harington", "obama", "tom_hanks",
)
MIN_PHOTOS_FOR_STRANGER_TRIALS = 4


def pair_scores(vectors: np.ndarray, identities: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(cosine of every unordered pair, whether the pair is the same person); vectors are unit length."""
    ids = np.array(identities)
    upper = np.triu_indices(len(ids), 1)
    return (vectors @ vectors.T)[upper], (ids[:, None] == ids[None, :])[upper]


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a random same-person pair scores above a random different-person pair (ties count half)."""
    pos, neg = positive[:, None], negative[None, :]
    return float(np.mean(pos > neg) + 0.5 * np.mean(pos == neg))


def fit_threshold(positive: np.ndarray, negative: np.ndarray) -> float:
    """The cosine threshold with the best accuracy on these pairs; among equals, the midpoint of the widest gap."""
    values = np.unique(np.concatenate([positive, negative]))
    candidates = (values[:-1] + values[1:]) / 2
    best: tuple[float, float, float] | None = None  # (accuracy, gap width, threshold)
    for low, high, cut in zip(values[:-1], values[1:], candidates, strict=True):
        accuracy = (np.sum(positive >= cut) + np.sum(negative < cut)) / (len(positive) + len(negative))
        key = (float(accuracy), float(high - low), float(cut))
        if best is None or key[:2] > best[:2]:
            best = key
    assert best is not None, "need at least two distinct scores"
    return best[2]


def split_identities(identities: list[str]) -> tuple[list[int], list[int]]:
    """(indices of calibration photos, indices of verification photos)."""
    calibration = [i for i, name in enumerate(identities) if name in CALIBRATION_IDENTITIES]
    verification = [i for i, name in enumerate(identities) if name not in CALIBRATION_IDENTITIES]
    return calibration, verification


def verification_report(vectors: np.ndarray, identities: list[str], threshold: float) -> dict[str, Any]:
    sims, same = pair_scores(vectors, identities)
    return {
        "photos": len(identities), "identities": len(set(identities)),
        "same_pairs": int(same.sum()), "different_pairs": int((~same).sum()),
        "roc_auc": roc_auc(sims[same], sims[~same]),
        "accuracy": float(np.mean((sims >= threshold) == same)),
        "true_accept_rate": float(np.mean(sims[same] >= threshold)),
        "true_reject_rate": float(np.mean(sims[~same] < threshold)),
        "same_min": float(sims[same].min()), "different_max": float(sims[~same].max()),
    }


def leave_one_out(vectors: np.ndarray, identities: list[str]) -> tuple[int, int]:
    """(correct, trials): the nearest other photo shows the same person, for photos whose identity has >= 2 photos."""
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -2.0)
    trials = [i for i, name in enumerate(identities) if identities.count(name) >= 2]
    correct = sum(identities[int(np.argmax(sims[i]))] == identities[i] for i in trials)
    return correct, len(trials)


def stranger_trials(vectors: np.ndarray, identities: list[str], threshold: float,
                    subset: set[str] | None = None) -> dict[str, Any]:
    """Add one other person's photo to an identity's photos: is exactly that photo rejected, every time?"""
    from facechain_ext.prep.consistency import Candidate, find_strangers

    names = sorted({n for n in identities if identities.count(n) >= MIN_PHOTOS_FOR_STRANGER_TRIALS})
    if subset is not None:
        names = [n for n in names if n in subset]
    trials = rejected_stranger = rejected_genuine = 0
    for name in names:
        own = [i for i, n in enumerate(identities) if n == name]
        others = [i for i, n in enumerate(identities) if n != name and (subset is None or n in subset)]
        for stranger in others:
            indices = [*own, stranger]
            cands = [Candidate(index=k, name=str(i), embedding=vectors[i], thumb=np.zeros(1), quality=1.0)
                     for k, i in enumerate(indices)]
            _, rejected = find_strangers(cands, threshold)
            trials += 1
            rejected_stranger += len(own) in rejected
            rejected_genuine += sum(1 for k in rejected if k != len(own))
    return {"identities": names, "trials": trials, "stranger_rejected": rejected_stranger,
            "genuine_rejected": rejected_genuine}


def embed_faces(data: Path) -> tuple[np.ndarray, list[str], int]:
    """(unit embedding of the largest face per photo, identity per photo, photos where a face was found)."""
    from facechain_ext.faces.analyzer import FaceAnalyzer
    from facechain_ext.faces.dlib_backend import DlibBackend
    from facechain_ext.imaging import load_image

    with open(data / "faces" / "faces.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    analyzer = FaceAnalyzer(DlibBackend())
    vectors, identities = [], []
    for row in rows:
        faces = analyzer.detect(load_image(data / row["path"]))
        if faces:
            vectors.append(faces[0].embedding)
            identities.append(row["identity"])
    return np.stack(vectors), identities, len(rows)


def evaluate(vectors: np.ndarray, identities: list[str], threshold: float) -> dict[str, Any]:
    calibration, verification = split_identities(identities)
    cal_sims, cal_same = pair_scores(vectors[calibration], [identities[i] for i in calibration])
    correct, loo_trials = leave_one_out(vectors, identities)
    return {
        "calibration": {**verification_report(vectors[calibration], [identities[i] for i in calibration], threshold),
                        "fitted_threshold": fit_threshold(cal_sims[cal_same], cal_sims[~cal_same])},
        "verification": verification_report(vectors[verification], [identities[i] for i in verification], threshold),
        "leave_one_out": {"correct": correct, "trials": loo_trials},
        "strangers_all": stranger_trials(vectors, identities, threshold),
        "strangers_verification_only": stranger_trials(
            vectors, identities, threshold, subset={identities[i] for i in verification}),
    }


def markdown(result: dict[str, Any], threshold: float) -> str:
    cal, ver = result["calibration"], result["verification"]
    loo, st_all, st_ver = result["leave_one_out"], result["strangers_all"], result["strangers_verification_only"]
    return "\n".join([
        f"| measure (dlib; threshold {threshold}) | result |", "|---|---|",
        f"| photos with a face detected | {result['detected']} / {result['photos']} |",
        f"| calibration: {cal['identities']} identities, {cal['photos']} photos ({cal['same_pairs']} same / "
        f"{cal['different_pairs']} different pairs) | same >= {cal['same_min']:.3f}, different <= "
        f"{cal['different_max']:.3f}, fitted threshold {cal['fitted_threshold']:.4f} |",
        f"| verification on the other {ver['identities']} identities, {ver['photos']} photos ({ver['same_pairs']} same / "
        f"{ver['different_pairs']} different pairs): ROC AUC | {ver['roc_auc']:.4f} |",
        f"| verification: accuracy / true accepts / true rejects at {threshold} | {ver['accuracy']:.4f} / "
        f"{ver['true_accept_rate']:.4f} / {ver['true_reject_rate']:.4f} |",
        f"| verification: same >= / different <= | {ver['same_min']:.3f} / {ver['different_max']:.3f} |",
        f"| leave-one-out identification (all photos) | {loo['correct']} / {loo['trials']} |",
        f"| stranger added to an identity, all identities with >= 4 photos | rejected {st_all['stranger_rejected']} / "
        f"{st_all['trials']}, genuine photos rejected {st_all['genuine_rejected']} |",
        f"| same, verification identities only | rejected {st_ver['stranger_rejected']} / {st_ver['trials']}, "
        f"genuine photos rejected {st_ver['genuine_rejected']} |",
    ])


def main(argv: list[str] | None = None) -> int:
    from facechain_ext.faces.dlib_backend import DLIB_THRESHOLD

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("FACECHAIN_TEST_DATA", ROOT.parent / "shared" / "data")))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "face_quality.json")
    args = parser.parse_args(argv)
    if not (args.data / "faces" / "faces.csv").is_file():
        parser.error(f"test photos not found in {args.data} (set --data or FACECHAIN_TEST_DATA)")
    vectors, identities, photos = embed_faces(args.data)
    result = {"photos": photos, "detected": len(identities), **evaluate(vectors, identities, DLIB_THRESHOLD)}
    table = markdown(result, DLIB_THRESHOLD)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({**result, "threshold": DLIB_THRESHOLD, "table": table}, indent=2))
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
