"""Where FACT's weight files live and which one is used: `<facechain models dir>/fact/`.

Release (ModelScope `yucheng1996/FaceChain-FACT`, revision v1.0.0; names from modelscope/facechain
facechain/inference_fact.py): the TransFace-S encoder and two adapter checkpoints, each tuned on one SD1.5 base —
"maj" on majicmixRealistic_v6, "film" on FaceChain's film-portrait base (ly261666/cv_portrait_model). A
`python -m facechain_ext fact convert` copy (`<stem>.safetensors`, fp16) beside an original is preferred over it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import FaceChainError

FACT_SUBDIR = "fact"
ENCODER_FILE = "ms1mv2_model_TransFace_S.pt"
ADAPTER_FILES: dict[str, str] = {
    "maj": "adapter_maj_mask_large_new_reg001_faceshuffle_00290001.ckpt",
    "film": "adapter_film_mask_large_new_reg001_faceshuffle_00290001.ckpt",
}
DEFAULT_VARIANT = "maj"
RELEASE = "ModelScope yucheng1996/FaceChain-FACT, revision v1.0.0"


def converted_name(release_name: str) -> str:
    """The name `fact convert` gives the safetensors copy of a release file (same stem)."""
    return Path(release_name).stem + ".safetensors"


@dataclass(frozen=True)
class FactFiles:
    """The two files a FACT model is built from (each the safetensors copy when present, else the original)."""

    encoder: Path
    adapter: Path
    variant: str


def fact_dir(models_dir: Path) -> Path:
    return Path(models_dir) / FACT_SUBDIR


def find_file(folder: Path, release_name: str) -> Path | None:
    """The converted copy of `release_name` in `folder` if present, else the original, else None."""
    for name in (converted_name(release_name), release_name):
        if (folder / name).is_file():
            return folder / name
    return None


def missing_error(folder: Path, release_name: str, what: str) -> FaceChainError:
    from ..models import fact_file_advice  # the manifest entry, Download button, route and CLI that fetch it

    return FaceChainError(
        "model_missing",
        f"The {what} file {release_name} is not in {folder}. {fact_file_advice(release_name)}; optionally run "
        f"`python -m facechain_ext fact convert {folder / release_name}` afterwards for a smaller fp16 copy.",
        file=release_name,
        folder=str(folder),
        source=RELEASE,
    )


def find_fact_files(models_dir: Path, variant: str = DEFAULT_VARIANT) -> FactFiles:
    """The encoder and the `variant` adapter under `models_dir/fact`; `model_missing` names the first absent file."""
    if variant not in ADAPTER_FILES:
        raise FaceChainError(
            "invalid_request",
            f"Unknown FACT adapter variant {variant!r}; choose one of {sorted(ADAPTER_FILES)}.",
            variant=variant,
        )
    folder = fact_dir(models_dir)
    encoder = find_file(folder, ENCODER_FILE)
    if encoder is None:
        raise missing_error(folder, ENCODER_FILE, "TransFace-S face encoder")
    adapter = find_file(folder, ADAPTER_FILES[variant])
    if adapter is None:
        raise missing_error(folder, ADAPTER_FILES[variant], f"FACT adapter ({variant})")
    return FactFiles(encoder=encoder, adapter=adapter, variant=variant)


def present_variants(models_dir: Path) -> list[str]:
    """Adapter variants whose checkpoint (or its conversion) is in the folder, in ADAPTER_FILES order."""
    folder = fact_dir(models_dir)
    return [variant for variant, name in ADAPTER_FILES.items() if find_file(folder, name) is not None]
