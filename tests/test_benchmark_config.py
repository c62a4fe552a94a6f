"""benchmarks/postprocess.py must time the configuration users get, and judge its verdict on it.

The runtime the benchmark builds is compared with the one the Script builds for a job where the user only picked an
identity (default Settings: the "auto" face backend, which is dlib without the insightface pack), and with the
defaults written in the product's own classes. A benchmark that drifts to a faster setting fails here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from benchmarks import postprocess as bench
from facechain_ext.config import Settings
from facechain_ext.context import FaceChainContext
from facechain_ext.faces.dlib_backend import DlibBackend
from facechain_ext.generation_state import GenerationState
from facechain_ext.modelcompat import dump_model
from facechain_ext.portraits import GenerationRuntime
from facechain_ext.prompts import plan_prompts
from facechain_ext.ranking import RankingOptions
from facechain_ext.schemas import FaceChainArgs, FusionArgs, RankingArgs, parse_args


def script_runtime(models_dir: Path) -> GenerationRuntime:
    """What the Script's `postprocess_image` gets for `{"identity": ...}` and nothing else."""
    args = parse_args({"identity": bench.IDENTITY})
    state = GenerationState(args=args, plan=plan_prompts(activation="fcsks, a person", lora_name=None, lora_weight=0.0))
    return GenerationRuntime(FaceChainContext(Settings(models_dir=models_dir)), state)


def test_the_benchmark_times_the_scripts_default_configuration(tmp_path: Path) -> None:
    measured = bench.configuration(bench.default_runtime(tmp_path / "bench"))
    assert measured == bench.configuration(script_runtime(tmp_path / "script"))


def test_the_benchmark_configuration_equals_the_product_defaults(tmp_path: Path) -> None:
    measured = bench.configuration(bench.default_runtime(tmp_path))
    dlib = DlibBackend()
    assert measured == {
        "face_backend": "dlib",
        "detector": {"max_side": dlib.max_side, "min_side": dlib.min_side, "upsample": dlib.upsample},
        "args": dump_model(FaceChainArgs(identity=bench.IDENTITY)),
        "ranking": dataclasses.asdict(RankingOptions()),
        "fusion_backend": "blend",
    }
    args = FaceChainArgs(identity=bench.IDENTITY)
    assert args.fusion == FusionArgs() and args.ranking == RankingArgs() and args.fusion.enabled and args.ranking.enabled


def test_the_verdict_is_judged_on_the_default_row_only() -> None:
    row = {"configuration": {"face_backend": "dlib"}, "ms": {"default": 140.0, "before": 180.0, "detect": 10.0}}
    assert bench.verdict([row]) == (140.0, True)
    row["ms"]["default"] = bench.GOAL_MS + 1
    assert bench.verdict([row]) == (bench.GOAL_MS + 1, False)
    assert bench.GOAL_MS == 150.0
