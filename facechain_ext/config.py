"""Where FaceChain keeps things and how it may behave: resolved once by the host glue or the CLI, then passed down.

Plain data, no host imports: `facechain_ext.webui` fills it from `modules.paths`/`shared.cmd_opts`/`shared.opts`,
the CLI from its flags, tests from tmp paths.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from .errors import FaceChainError


@dataclass(frozen=True)
class Settings:
    models_dir: Path  # <models_path>/facechain (or --facechain-models-dir)
    insightface_root: Optional[Path] = None  # the folder other extensions use: <models_path>/insightface
    lora_dir: Optional[Path] = None  # the host's Lora folder; FaceChain writes into <lora_dir>/FaceChain
    face_backend: str = "auto"  # auto | insightface | dlib
    offline: bool = False  # --facechain-offline: never download, whatever the other settings say
    allow_downloads: bool = False  # user consent for manifest downloads
    styles_dirs: tuple[Path, ...] = field(default_factory=tuple)  # extra user style folders
    # ModelScope server for FACT downloads (FACECHAIN_MODELSCOPE_ENDPOINT, e.g. a mirror); None: the modelscope
    # client's default (https:// + MODELSCOPE_DOMAIN, or www.modelscope.cn)
    modelscope_endpoint: Optional[str] = None

    @property
    def identities_dir(self) -> Path:
        return self.models_dir / "identities"

    @property
    def facechain_lora_dir(self) -> Optional[Path]:
        return None if self.lora_dir is None else self.lora_dir / "FaceChain"

    def insightface_pack_dirs(self, pack: str = "buffalo_l") -> list[Path]:
        """Candidate folders for an insightface model pack, in priority order."""
        dirs = [self.models_dir / "insightface" / "models" / pack]
        if self.insightface_root is not None:
            dirs.insert(0, self.insightface_root / "models" / pack)
        return dirs

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    def check_folders(self) -> Settings:
        """FaceChainError `invalid_config` (503) when a configured folder is a file; missing folders are fine
        (created on first write)."""
        check_folder(self.models_dir, "The FaceChain models folder (--facechain-models-dir in the webui, --models-dir "
                     "in the CLI, FACECHAIN_MODELS_DIR)")
        check_folder(self.lora_dir, "The Lora folder (the webui's --lora-dir, FACECHAIN_LORA_DIR)")
        return self


def check_folder(path: Optional[Path], what: str) -> None:
    """Raise `invalid_config` naming `what` when `path`, or the nearest part of it that exists, is not a folder."""
    if path is None:
        return
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise FaceChainError(
                    "invalid_config", f"{what} is {str(path)!r}, but {str(candidate)!r} is a file, not a folder. "
                    "Point it at a folder (a missing one is created).", path=str(path), file=str(candidate))
            return


def modelscope_endpoint_from_env() -> Optional[str]:
    return os.environ.get("FACECHAIN_MODELSCOPE_ENDPOINT") or None


def default_settings() -> Settings:
    """Settings outside the host (CLI, benchmarks): FACECHAIN_MODELS_DIR or ~/.cache/facechain."""
    root = Path(os.environ.get("FACECHAIN_MODELS_DIR", Path.home() / ".cache" / "facechain"))
    insightface = os.environ.get("FACECHAIN_INSIGHTFACE_ROOT")
    lora = os.environ.get("FACECHAIN_LORA_DIR")
    return Settings(
        models_dir=root,
        insightface_root=Path(insightface) if insightface else None,
        lora_dir=Path(lora) if lora else None,
        face_backend=os.environ.get("FACECHAIN_FACE_BACKEND", "auto"),
        offline=os.environ.get("FACECHAIN_OFFLINE", "") not in ("", "0"),
        modelscope_endpoint=modelscope_endpoint_from_env(),
    )
