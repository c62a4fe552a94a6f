"""`fact convert`: an fp16 safetensors copy of a FACT release file, written atomically and read back strictly.

The copy holds exactly the tensors FACT uses (for TransFace-S the unused recognition head is dropped, ~48.6 M of its
86.7 M parameters), in float16, with string metadata saying what it is and where it came from. safetensors loads
without unpickling and memory-maps, and `files.find_file` prefers the copy over the original.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write
from ..errors import FaceChainError
from .checkpoint import SAFETENSORS_SUFFIX, KeySpec, adapter_spec, encoder_spec, load_checked, read_key_names
from .files import converted_name
from .resampler import CHECKPOINT_PREFIX
from .sites import PROCESSOR_INFIX


def spec_for(path: Path) -> KeySpec:
    """The adapter spec when the file has FACT adapter keys, else the TransFace-S spec (validation is strict later)."""
    keys = read_key_names(path)
    if any(key.startswith(CHECKPOINT_PREFIX) or PROCESSOR_INFIX in key for key in keys):
        return adapter_spec()
    return encoder_spec()


def _to_fp16(path: Path, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, tensor in tensors.items():
        half = tensor.to(torch.float16).contiguous()
        if not bool(torch.isfinite(half).all()) and bool(torch.isfinite(tensor).all()):
            raise FaceChainError(
                "unsupported_model", f"{path.name}: tensor {key!r} does not fit in float16 (values overflow).", key=key
            )
        out[key] = half
    return out


def save_safetensors_atomic(target: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write `target` through facechain_ext.atomic (temp file beside it + os.replace): an existing file stays whole."""
    from safetensors.torch import save_file

    atomic_write(target, lambda temp: save_file(tensors, str(temp), metadata=metadata))


def convert_checkpoint(source: Path, target: Path | None = None, *, overwrite: bool = False) -> dict[str, Any]:
    """Convert `source` (a FACT release file or a conversion) to `target` (default `<stem>.safetensors` beside it).

    Returns {source, output, kind, tensors, parameters, dropped, bytes}. Errors: model_missing (no source),
    unsupported_model (not a FACT file or not a file, fp16 overflow), invalid_request (target = source, a folder, or
    exists without overwrite).
    """
    source = Path(source)
    target = Path(target) if target is not None else source.with_name(converted_name(source.name))
    if target.suffix != SAFETENSORS_SUFFIX:
        raise FaceChainError("invalid_request", f"The output {target} must end in {SAFETENSORS_SUFFIX}.", path=str(target))
    if target.is_dir():  # os.replace cannot put a file there: refuse before the (long) read
        raise FaceChainError("invalid_request", f"The output {target} is a folder; give a file name.", path=str(target))
    if target.exists() and target.resolve() == source.resolve():
        raise FaceChainError("invalid_request", f"The output {target} is the source file itself.", path=str(target))
    if target.exists() and not overwrite:
        raise FaceChainError("invalid_request", f"{target} already exists; pass --overwrite to replace it.", path=str(target))
    spec = spec_for(source)
    checked = load_checked(source, spec)
    tensors = _to_fp16(source, checked.tensors)
    metadata = {
        "format": "pt",
        "facechain_fact_kind": spec.kind,
        "facechain_fact_source": source.name,
        "facechain_fact_dropped": str(len(checked.ignored)),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors_atomic(target, tensors, metadata)
    reread = load_checked(target, spec)  # strict, as any later load
    changed = next((k for k in tensors if not torch.equal(reread.tensors[k], tensors[k])), None)
    if changed is not None:
        raise FaceChainError("internal_error", f"{target.name}: tensor {changed!r} reads back differently.", key=changed)
    return {
        "source": str(source),
        "output": str(target),
        "kind": spec.kind,
        "tensors": len(tensors),
        "parameters": sum(t.numel() for t in tensors.values()),
        "dropped": checked.ignored,
        "bytes": target.stat().st_size,
    }
