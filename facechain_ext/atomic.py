"""All-or-nothing writes: the one helper every FaceChain file and folder write goes through.

A reader (the host's Lora scanner, the tab, another request) must never see half a file: we write a hidden temp file
in the target's own folder (same file system, so `os.replace` is an atomic rename, POSIX rename(2) / Windows
MoveFileEx) and replace the target only when the temp file is complete. Temp names start with TEMP_PREFIX, are hidden
and end in ".tmp", so no scanner that looks for `*.safetensors`/`*.png` picks them up and they are recognisably ours.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Callable

TEMP_PREFIX = ".facechain-"
TEMP_SUFFIX = ".tmp"


def temp_path_for(target: Path) -> Path:
    """A fresh hidden temp name beside `target` (same folder, recognisably ours)."""
    return target.with_name(f"{TEMP_PREFIX}{target.name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")


def atomic_write(target: Path | str, write: Callable[[Path], Any]) -> Path:
    """`write(temp_path)` then `os.replace(temp_path, target)`; on any failure the temp file is removed and the old
    `target` (if any) is untouched. Returns `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path_for(target)
    try:
        write(temp)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return target


def write_text_atomic(target: Path | str, text: str) -> Path:
    return atomic_write(target, lambda temp: temp.write_text(text, encoding="utf-8"))


def write_json_atomic(target: Path | str, data: Any) -> Path:
    """UTF-8 JSON, 2-space indent, non-ASCII kept."""
    return write_text_atomic(target, json.dumps(data, indent=2, ensure_ascii=False))
