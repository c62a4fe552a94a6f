"""The manifest of optional models FaceChain can use, and where each one is (or should be) on disk.

Nothing here downloads (facechain_ext/downloads.py does, with the user's consent): `model_status(settings)` only
looks at files. A model is "present" when every file of it exists in one of its candidate folders; a file whose
size differs from the published one is still used (it may be another release) but is flagged (`size_ok`).
Missing models come with a precise hint: which files, which folder, where they come from, under which licence,
and how to allow the download when FaceChain can verify one.

Checksums: only values read from public material are written here, with `checksum_source` saying where. A model
without a checksum or size for every file it would fetch is "manual install only": FaceChain refuses to download
bytes it cannot verify. Files from a ModelScope repository (`ModelSpec.modelscope`) are verified against the sha256
and size ModelScope's own file listing publishes, read by the `modelscope` hub client when the download starts
(facechain_ext/modelscope_files.py).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from .config import Settings
from .fact.files import ADAPTER_FILES, ENCODER_FILE, FACT_SUBDIR, converted_name


@dataclass(frozen=True)
class ModelFile:
    name: str  # file name inside the model folder
    size: int | None = None  # bytes of the published file; None = unknown
    sha256: str | None = None  # hex digest of the published file; None = unknown
    url: str | None = None  # direct download of this file; None when it comes in `ModelSpec.archive` or by hand
    # copies used instead of the file when present, in preference order (e.g. the fp16 safetensors `fact convert` writes)
    converted: tuple[str, ...] = ()


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
class HubRepo:
    """A ModelScope model repository at a fixed revision; its files keep their names in the model folder."""

    repo: str  # e.g. "yucheng1996/FaceChain-FACT"
    revision: str  # a tag or branch, e.g. "v1.0.0"

    @property
    def page(self) -> str:
        return f"https://www.modelscope.cn/models/{self.repo}/files"


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
    modelscope: HubRepo | None = None  # when set, the files are listed, verified and fetched from this repository
    extra: dict[str, Any] = field(default_factory=dict)


def _buffalo_dirs(settings: Settings) -> list[Path]:
    return settings.insightface_pack_dirs("buffalo_l")


def _fact_dirs(settings: Settings) -> list[Path]:
    return [settings.models_dir / FACT_SUBDIR]


# FaceChain-FACT v1.0.0 on ModelScope (file names: facechain_ext/fact/files.py; modelscope/facechain inference_fact.py
# downloads the same repository and revision with snapshot_download and opens these files from its root).
FACT_REPO = HubRepo("yucheng1996/FaceChain-FACT", "v1.0.0")
FACT_LICENCE = "Apache-2.0 (FaceChain, modelscope/facechain)"
# The TransFace repository (DanJun6737/TransFace) ships no LICENSE file and its README states no licence.
TRANSFACE_LICENCE = ("no licence stated by its authors (DanJun6737/TransFace has no LICENSE file); redistributed in "
                     "FaceChain-FACT; trained on MS1MV2, a research data set: check before commercial use")
FACT_CHECKSUMS = (f"the sha256 and size ModelScope's file listing publishes for {FACT_REPO.repo} at "
                  f"{FACT_REPO.revision}, read by the modelscope hub client when the download starts")
FACT_MODELS = {"transface_s": ENCODER_FILE, **{f"fact_adapter_{v}": name for v, name in ADAPTER_FILES.items()}}


def _fact_spec(name: str, kind: str, description: str, licence: str) -> ModelSpec:
    file_name = FACT_MODELS[name]
    return ModelSpec(
        name=name, kind=kind, description=description,
        files=(ModelFile(file_name, converted=(converted_name(file_name),)),),
        sources=({"site": "modelscope", "repo": FACT_REPO.repo, "revision": FACT_REPO.revision, "url": FACT_REPO.page},),
        licence=licence, folders=_fact_dirs,
        required_for="FACT, the train-free likeness (conditioning \"fact\" or \"lora+fact\")",
        checksum_source=FACT_CHECKSUMS, modelscope=FACT_REPO,
    )


def fact_model_name(release_file: str) -> str | None:
    """The manifest model that provides a FACT release file (None for another file)."""
    return next((name for name, file_name in FACT_MODELS.items() if file_name == release_file), None)


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
    _fact_spec("transface_s", "face_encoder",
               "TransFace ViT-S face encoder (144 tokens x 512 per face) feeding the FACT adapter.", TRANSFACE_LICENCE),
    _fact_spec("fact_adapter_maj", "face_adapter",
               "FaceChain-FACT adapter (resampler + 16 gated self-attention blocks) tuned on majicmixRealistic v6: the "
               "default.", FACT_LICENCE),
    _fact_spec("fact_adapter_film", "face_adapter",
               "FaceChain-FACT adapter tuned on FaceChain's film-portrait SD1.5 base (optional second variant).",
               FACT_LICENCE),
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
    from .names import check_name

    check_name(name, "model name")
    for spec in MANIFEST:
        if spec.name == name:
            return spec
    raise FaceChainError("not_found", f"Unknown model {name!r}; known: {', '.join(s.name for s in MANIFEST)}.", model=name)


def _file_ok(path: Path, expected: ModelFile) -> bool:
    """Present = a non-empty file (a size that differs from the published one is reported, not refused)."""
    return path.is_file() and path.stat().st_size > 0


def found_file(folder: Path, expected: ModelFile) -> Path | None:
    """The copy of `expected` in `folder` that is used: a converted copy first (as facechain_ext/fact/files.py
    `find_file` does), else the file itself; None when neither is there."""
    for name in (*expected.converted, expected.name):
        if _file_ok(folder / name, expected):
            return folder / name
    return None


def _size_ok(path: Path | None, expected: ModelFile) -> bool | None:
    """Size check against the published file (None: unknown, absent, or a converted copy of another size)."""
    if expected.size is None or path is None or path.name != expected.name or not path.is_file():
        return None
    return path.stat().st_size == expected.size


def locate(spec: ModelSpec, settings: Settings) -> Path | None:
    """The first candidate folder holding every file of `spec` (or its converted copy), or None."""
    for folder in spec.folders(settings):
        if all(found_file(folder, f) is not None for f in spec.files):
            return folder
    return None


def is_installed(spec: ModelSpec, settings: Settings) -> bool:
    """Every file present in one folder with the published size wherever the manifest knows it."""
    folder = locate(spec, settings)
    return folder is not None and all(_size_ok(found_file(folder, f), f) is not False for f in spec.files)


MODELSCOPE_REQUIREMENT = "modelscope>=1.28,<1.38"  # 1.38+ delegate to modelscope-hub, whose listing has no sha256


def dependency_problem(spec: ModelSpec) -> str | None:
    """What a download of `spec` needs that is not installed (the modelscope hub client), or None."""
    if spec.modelscope is None:
        return None
    try:
        found = importlib.util.find_spec("modelscope") is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return None
    return (f"the modelscope package (its hub client lists and serves {spec.modelscope.repo}) is not installed: "
            f"restart the webui so FaceChain's install.py installs it, or run pip install \"{MODELSCOPE_REQUIREMENT}\"")


def manual_reason(spec: ModelSpec) -> str | None:
    """Why FaceChain cannot download `spec` verifiably (then it is manual install only), or None when it can."""
    if spec.modelscope is not None:
        return None  # every file is checked against the sha256 and size of ModelScope's own file listing
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
    files = [_file_status(target, f) for f in spec.files]
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
        "download_blocked": _blocked(spec, settings, manual),
        "checksum_source": spec.checksum_source,
    }


def _blocked(spec: ModelSpec, settings: Settings, manual: str | None) -> str | None:
    if manual:
        return f"Manual install only: {manual}."
    dependency = dependency_problem(spec)
    return f"Not available: {dependency}." if dependency else consent_problem(settings)


def _file_status(folder: Path, expected: ModelFile) -> dict[str, Any]:
    found = found_file(folder, expected)
    return {
        "name": expected.name,
        "present": found is not None,
        "installed_as": None if found is None else found.name,
        "size": _size(found),
        "expected_size": expected.size,
        "size_ok": _size_ok(found, expected),
        "sha256": expected.sha256,
    }


def _size(path: Path | None) -> int | None:
    return path.stat().st_size if path is not None and path.is_file() else None


def origin(spec: ModelSpec) -> str:
    """Where the files come from, in words (a URL when there is one)."""
    if spec.modelscope is not None:
        return f"ModelScope {spec.modelscope.repo}, revision {spec.modelscope.revision}: {spec.modelscope.page}"
    source = spec.sources[0]
    return source.get("url") or " ".join(str(source[k]) for k in ("site", "repo", "revision") if k in source)


def download_hint(spec: ModelSpec) -> str:
    """How to let FaceChain fetch `spec`: the Download button, the route and the CLI command."""
    return (f"allow downloads in Settings -> FaceChain, then press Download {spec.name} under FaceChain -> \"Models "
            f"and face backends\" (API: POST /facechain/v1/models/{spec.name}/download; CLI: python -m facechain_ext "
            f"models download {spec.name} --allow-download)")


def fact_file_advice(release_file: str) -> str:
    """How to get one FACT release file, for the message FACT gives when it is missing (fact/files.py)."""
    name = fact_model_name(release_file)
    if name is None:
        return f"Download it by hand from {FACT_REPO.repo} (revision {FACT_REPO.revision}) on ModelScope"
    spec = get_spec(name)
    return f"To get it, {download_hint(spec)}; or download it by hand from {origin(spec)} and put it there"


def _hint(spec: ModelSpec, target: Path, missing: list[str], manual: str | None) -> str:
    text = f"Put {', '.join(missing)} into {target} (from {origin(spec)}; licence: {spec.licence})."
    if manual is None:
        text += f" Or let FaceChain download and verify it: {download_hint(spec)}."
    return text


def model_status(settings: Settings) -> list[dict[str, Any]]:
    """Presence, location and size of every optional model, in manifest order (cheap: file system only)."""
    return [status(spec, settings) for spec in MANIFEST]
