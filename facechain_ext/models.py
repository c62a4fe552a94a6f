"""The manifest of optional models FaceChain can use, and where each one is (or should be) on disk.

Nothing here downloads: `model_status(settings)` only looks at files. A model is "present" when every file of it
exists in one of its candidate folders (and has the expected size where the manifest knows it). Missing models
come with a precise hint: which files, which folder, where they come from, and under which licence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .config import Settings


@dataclass(frozen=True)
class ModelFile:
    name: str  # file name inside the model folder
    size: int | None = None  # bytes; None = unknown (then presence is all we can check)
    sha256: str | None = None  # None = unknown: a download could be verified by size only


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str  # "face_analysis" | "face_adapter" | "face_encoder" | "face_fusion"
    description: str
    files: tuple[ModelFile, ...]
    sources: tuple[dict, ...]  # where the files come from: {"site", "repo", "revision"?, "url"?}
    licence: str
    folders: Callable[[Settings], list[Path]]  # candidate folders, in priority order; the first is the install target
    required_for: str = ""  # which feature needs it
    extra: dict[str, Any] = field(default_factory=dict)


def _buffalo_dirs(settings: Settings) -> list[Path]:
    return settings.insightface_pack_dirs("buffalo_l")


def _fact_dirs(settings: Settings) -> list[Path]:
    return [settings.models_dir / "fact"]


def _parsing_dirs(settings: Settings) -> list[Path]:
    return [settings.models_dir / "parsing"]


def _fusion_dirs(settings: Settings) -> list[Path]:
    # other face-swap extensions keep it directly in <models>/insightface; we look there too, never copy it
    dirs = [settings.models_dir / "fusion"]
    if settings.insightface_root is not None:
        dirs.append(settings.insightface_root)
    return dirs


MANIFEST: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="buffalo_l",
        kind="face_analysis",
        description="insightface model pack: SCRFD detector, 2d106 landmarks, gender/age, ArcFace w600k_r50 embeddings.",
        files=(
            ModelFile("det_10g.onnx"),
            ModelFile("2d106det.onnx"),
            ModelFile("genderage.onnx"),
            ModelFile("w600k_r50.onnx"),
        ),
        sources=(
            {"site": "github", "repo": "deepinsight/insightface", "revision": "v0.7",
             "url": "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip"},
        ),
        licence="insightface pretrained models: non-commercial research use only",
        folders=_buffalo_dirs,
        required_for="the insightface face backend (the dlib backend works without it)",
    ),
    ModelSpec(
        name="facechain_fact",
        kind="face_adapter",
        description="FaceChain-FACT face adapter (resampler + gated self-attention blocks) for SD1.5.",
        files=(ModelFile("adapter_maj_mask_large_new_reg001_faceshuffle_00290001.ckpt"),),
        sources=({"site": "modelscope", "repo": "yucheng1996/FaceChain-FACT", "revision": "v1.0.0"},),
        licence="Apache-2.0 (FaceChain)",
        folders=_fact_dirs,
        required_for="train-free generation with the FACT adapter",
    ),
    ModelSpec(
        name="transface_s",
        kind="face_encoder",
        description="TransFace ViT-S face encoder (144 tokens x 512) feeding the FACT adapter.",
        files=(ModelFile("ms1mv2_model_TransFace_S.pt"),),
        sources=({"site": "modelscope", "repo": "yucheng1996/FaceChain-FACT", "revision": "v1.0.0"},),
        licence="MIT (TransFace); trained on MS1MV2, a research data set",
        folders=_fact_dirs,
        required_for="train-free generation with the FACT adapter",
    ),
    ModelSpec(
        name="inswapper_128",
        kind="face_fusion",
        description="insightface inswapper-class 128 px identity fusion network (optional; fusion has a model-free fallback).",
        files=(ModelFile("inswapper_128.onnx"),),
        sources=({"site": "user", "note": "not redistributed by insightface any more: put your own copy in the folder"},),
        licence="insightface: non-commercial research use only",
        folders=_fusion_dirs,
        required_for="model-based face fusion",
    ),
    ModelSpec(
        name="face_parsing_bisenet",
        kind="face_parsing",
        description="BiSeNet face parser (CelebAMask-HQ, 19 classes) as ONNX: the head mask of training crops.",
        files=(ModelFile("face_parsing_bisenet.onnx"),),
        sources=({"site": "github", "repo": "zllrunning/face-parsing.PyTorch",
                  "note": "export 79999_iter.pth to ONNX (512x512 RGB in, 1x19x512x512 out); 79999_iter.onnx is accepted too"},),
        licence="MIT",
        folders=_parsing_dirs,
        required_for="the optional head mask of training photos (without it the background is kept)",
    ),
)


def get_spec(name: str) -> ModelSpec:
    from .errors import FaceChainError

    for spec in MANIFEST:
        if spec.name == name:
            return spec
    raise FaceChainError("not_found", f"Unknown model {name!r}; known: {', '.join(s.name for s in MANIFEST)}.", model=name)


def _file_ok(path: Path, expected: ModelFile) -> bool:
    if not path.is_file():
        return False
    return expected.size is None or path.stat().st_size == expected.size


def locate(spec: ModelSpec, settings: Settings) -> Path | None:
    """The first candidate folder holding every file of `spec`, or None."""
    for folder in spec.folders(settings):
        if all(_file_ok(folder / f.name, f) for f in spec.files):
            return folder
    return None


def status(spec: ModelSpec, settings: Settings) -> dict[str, Any]:
    folder = locate(spec, settings)
    target = folder or spec.folders(settings)[0]
    files = [
        {"name": f.name, "present": _file_ok(target / f.name, f), "size": _size(target / f.name), "sha256": f.sha256}
        for f in spec.files
    ]
    missing = [f["name"] for f in files if not f["present"]]
    return {
        "name": spec.name,
        "kind": spec.kind,
        "description": spec.description,
        "present": folder is not None,
        "path": str(target),
        "size": sum(f["size"] or 0 for f in files),
        "licence": spec.licence,
        "sources": list(spec.sources),
        "files": files,
        "required_for": spec.required_for,
        "hint": None if folder is not None else _hint(spec, target, missing),
    }


def _size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def _hint(spec: ModelSpec, target: Path, missing: list[str]) -> str:
    source = spec.sources[0]
    origin = source.get("url") or " ".join(str(source[k]) for k in ("site", "repo", "revision") if k in source)
    return f"Put {', '.join(missing)} into {target} (from {origin}; licence: {spec.licence})."


def model_status(settings: Settings) -> list[dict[str, Any]]:
    """Presence, location and size of every optional model, in manifest order (cheap: file system only)."""
    return [status(spec, settings) for spec in MANIFEST]
