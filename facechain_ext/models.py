"""The manifest of optional models FaceChain can use, and where each one is (or should be) on disk.

Nothing here downloads (facechain_ext/downloads.py does, with the user's consent): `model_status(settings)` only
looks at files. A model is "present" when every file of it exists in one of its candidate folders; a file whose
size differs from the published one is still used (it may be another release) but is flagged (`size_ok`).
Missing models come with a precise hint: which files, which folder, where they come from, under which licence,
and how to allow the download when FaceChain can verify one.

Checksums: only values read from public material are written here, with `checksum_source` saying where. A model
without a checksum or size for every file it would fetch is "manual install only": FaceChain refuses to download
bytes it cannot verify.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from .config import Settings


@dataclass(frozen=True)
class ModelFile:
    name: str  # file name inside the model folder
    size: int | None = None  # bytes of the published file; None = unknown
    sha256: str | None = None  # hex digest of the published file; None = unknown
    url: str | None = None  # direct download of this file; None when it comes in `ModelSpec.archive` or by hand


@dataclass(frozen=True)
class ModelArchive:
    """A zip the files come in: verified as a whole, then only `members` are extracted (by their base name)."""

    url: str
    members: tuple[str, ...]  # paths inside the zip; each base name is one ModelFile.name of the spec
    size: int | None = None
    sha256: str | None = None

    @property
    def file_name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]


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
    archive: ModelArchive | None = None  # when set, the files are downloaded as this archive
    checksum_source: str = ""  # where the published sizes/checksums were read (empty: none known)
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
            ModelFile("det_10g.onnx", 16923827, "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91"),
            ModelFile("2d106det.onnx", 5030888, "f001b856447c413801ef5c42091ed0cd516fcd21f2d6b79635b1e733a7109dbf"),
            ModelFile("genderage.onnx", 1322532, "4fde69b1c810857b88c64a335084f1c3fe8f01246c9a191b48c7bb756d6652fb"),
            ModelFile("w600k_r50.onnx", 174383860, "4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43"),
        ),
        sources=(
            {"site": "github", "repo": "deepinsight/insightface", "revision": "v0.7",
             "url": "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip"},
        ),
        licence="insightface pretrained models: non-commercial research use only",
        folders=_buffalo_dirs,
        required_for="the insightface face backend (the dlib backend works without it)",
        # the zip also holds 1k3d68.onnx (137 MB, 3D landmarks): FaceChain never loads it, so it is not extracted
        archive=ModelArchive(
            url="https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",
            members=("det_10g.onnx", "2d106det.onnx", "genderage.onnx", "w600k_r50.onnx"),
            size=288621354,
            sha256="80ffe37d8a5940d59a7384c201a2a38d4741f2f3c51eef46ebb28218a7b0ca2f",
        ),
        checksum_source="published identically by several independent manifests of the v0.7 release asset "
        "(e.g. a Visionatrix ComfyUI model list and a Forge model-migration manifest: archive and member sha256 + sizes)",
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
        files=(
            ModelFile(
                "inswapper_128.onnx", 554253681, "e4a3f08c753cb72d04e10aa0f7dbe3deebbf39567d4ead6dce08e98aa49e16af",
                url="https://huggingface.co/ezioruan/inswapper_128.onnx/resolve/"
                "6ffdf0e83c5996cc425e77b59913fc48d79441be/inswapper_128.onnx",
            ),
        ),
        sources=(
            {"site": "huggingface", "repo": "ezioruan/inswapper_128.onnx",
             "revision": "6ffdf0e83c5996cc425e77b59913fc48d79441be",
             "note": "insightface no longer distributes it; this community mirror is accepted only if the bytes match "
                     "the published sha256 of the original release. Or put your own copy in the folder."},
        ),
        licence="insightface: non-commercial research use only",
        folders=_fusion_dirs,
        required_for="model-based face fusion",
        checksum_source="sha256 of the original inswapper_128.onnx from the \"Models Hashsum\" section of the ReActor "
        "README (Gourieff/ComfyUI-ReActor); the same digest and size are pinned by several independent download scripts",
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
    """Present = a non-empty file (a size that differs from the published one is reported, not refused)."""
    return path.is_file() and path.stat().st_size > 0


def _size_ok(path: Path, expected: ModelFile) -> bool | None:
    if expected.size is None or not path.is_file():
        return None
    return path.stat().st_size == expected.size


def locate(spec: ModelSpec, settings: Settings) -> Path | None:
    """The first candidate folder holding every file of `spec`, or None."""
    for folder in spec.folders(settings):
        if all(_file_ok(folder / f.name, f) for f in spec.files):
            return folder
    return None


def is_installed(spec: ModelSpec, settings: Settings) -> bool:
    """Every file present in one folder with the published size wherever the manifest knows it."""
    folder = locate(spec, settings)
    return folder is not None and all(_size_ok(folder / f.name, f) is not False for f in spec.files)


def manual_reason(spec: ModelSpec) -> str | None:
    """Why FaceChain cannot download `spec` verifiably (then it is manual install only), or None when it can."""
    if spec.archive is not None:
        archive = spec.archive
        if archive.sha256 is None and archive.size is None:
            return f"the manifest has no published sha256 or size for {archive.file_name}"
        names = {PurePosixPath(m).name for m in archive.members}
        missing = [f.name for f in spec.files if f.name not in names]
        return f"{', '.join(missing)} not in {archive.file_name}" if missing else None
    no_url = [f.name for f in spec.files if not f.url]
    if no_url:
        return f"no download address is known for {', '.join(no_url)}"
    unverifiable = [f.name for f in spec.files if f.sha256 is None and f.size is None]
    if unverifiable:
        return f"the manifest has no published sha256 or size for {', '.join(unverifiable)}"
    return None


def consent_problem(settings: Settings) -> str | None:
    """Why downloads are refused under `settings` (with the switch to change), or None when they are allowed."""
    if settings.offline:
        return ("FaceChain runs offline (--facechain-offline / FACECHAIN_OFFLINE): remove that flag to allow "
                "downloads.")
    if not settings.allow_downloads:
        return ("downloads are off: enable Settings -> FaceChain -> \"Allow FaceChain to download optional models\" "
                "(CLI: --allow-download).")
    return None


def download_size(spec: ModelSpec) -> int | None:
    """Bytes a download fetches (the archive, or the sum of the files), None when unknown."""
    if spec.archive is not None:
        return spec.archive.size
    sizes = [f.size for f in spec.files]
    return None if any(size is None for size in sizes) else sum(sizes)  # type: ignore[misc]


def status(spec: ModelSpec, settings: Settings) -> dict[str, Any]:
    folder = locate(spec, settings)
    target = folder or spec.folders(settings)[0]
    files = [_file_status(target / f.name, f) for f in spec.files]
    missing = [f["name"] for f in files if not f["present"]]
    manual = manual_reason(spec)
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
        "hint": None if folder is not None else _hint(spec, target, missing, manual),
        "downloadable": manual is None,
        "download_size": download_size(spec) if manual is None else None,
        "download_blocked": f"Manual install only: {manual}." if manual else consent_problem(settings),
        "checksum_source": spec.checksum_source,
    }


def _file_status(path: Path, expected: ModelFile) -> dict[str, Any]:
    return {
        "name": expected.name,
        "present": _file_ok(path, expected),
        "size": _size(path),
        "expected_size": expected.size,
        "size_ok": _size_ok(path, expected),
        "sha256": expected.sha256,
    }


def _size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def _hint(spec: ModelSpec, target: Path, missing: list[str], manual: str | None) -> str:
    source = spec.sources[0]
    origin = source.get("url") or " ".join(str(source[k]) for k in ("site", "repo", "revision") if k in source)
    text = f"Put {', '.join(missing)} into {target} (from {origin}; licence: {spec.licence})."
    if manual is None:
        text += (f" Or let FaceChain download and verify it: allow downloads in Settings -> FaceChain, then press "
                 f"Download (API: POST /facechain/v1/models/{spec.name}/download).")
    return text


def model_status(settings: Settings) -> list[dict[str, Any]]:
    """Presence, location and size of every optional model, in manifest order (cheap: file system only)."""
    return [status(spec, settings) for spec in MANIFEST]
