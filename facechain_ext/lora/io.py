"""Reading and writing kohya LoRA files (safetensors + string metadata), atomically.

The host reloads a LoRA whose mtime changed and lists every *.safetensors in its folder, so a file must never be
visible half-written: write a hidden temp file in the same folder, then `os.replace` it into place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from facechain_ext.atomic import atomic_write
from facechain_ext.errors import FaceChainError
from facechain_ext.lora.config import TrainConfig

FORMAT_VERSION = "1"


def kohya_metadata(
    config: TrainConfig,
    *,
    output_name: str,
    sd_model_name: str,
    num_train_images: int,
    steps: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, str]:
    """The `ss_*` fields the host's Lora tab reads (SD1 LoRA, name, dim/alpha), plus `facechain_*` extras."""
    meta = {
        "ss_output_name": output_name,
        "ss_base_model_version": "sd_v1",
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(config.rank),
        "ss_network_alpha": f"{config.alpha:g}",
        "ss_resolution": f"({config.resolution}, {config.resolution})",
        "ss_num_train_images": str(num_train_images),
        "ss_sd_model_name": sd_model_name,
        "ss_steps": str(steps),
        "ss_max_train_steps": str(steps),
        "ss_learning_rate": f"{config.learning_rate:g}",
        "ss_lr_scheduler": config.lr_scheduler,
        "ss_seed": str(config.seed),
        "facechain_format": FORMAT_VERSION,
    }
    for key, value in (extra or {}).items():
        name = key if key.startswith("facechain_") else f"facechain_{key}"
        meta[name] = str(value)
    return meta


def _check_inputs(state_dict: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    if not state_dict:
        raise FaceChainError("invalid_request", "Refusing to save an empty LoRA state dict.")
    bad_meta = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad_meta:
        raise FaceChainError("invalid_request", f"LoRA metadata must map str to str; bad entries: {bad_meta}.", keys=bad_meta)
    bad_keys = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if bad_keys:
        raise FaceChainError("invalid_request", f"LoRA state dict values must be tensors: {bad_keys[:5]}.")


def save_lora(path: str | os.PathLike, state_dict: dict[str, torch.Tensor], metadata: dict[str, str],
              *, dtype: torch.dtype | None = None, atomic: bool = True) -> Path:
    """Write a kohya safetensors file atomically; `dtype` (e.g. torch.float16) casts the floating tensors.
    `atomic=False` writes `path` directly: for a caller whose `path` is already a temp (atomic.publish_files)."""
    from safetensors.torch import save_file

    _check_inputs(state_dict, metadata)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for key, tensor in state_dict.items():
        tensor = tensor.detach().cpu()
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        tensors[key] = tensor.contiguous()
    if not atomic:
        save_file(tensors, str(target), metadata=dict(metadata))
        return target
    return atomic_write(target, lambda temp: save_file(tensors, str(temp), metadata=dict(metadata)))


def load_lora(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a LoRA safetensors file -> (state dict on CPU, metadata); unreadable files raise `lora_unreadable`."""
    from safetensors import safe_open

    source = Path(path)
    if not source.is_file():
        raise FaceChainError("not_found", f"LoRA file '{source}' does not exist.", path=str(source))
    try:
        with safe_open(str(source), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            state = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # noqa: BLE001 - any parse failure means the same thing to the user
        raise FaceChainError("lora_unreadable", f"LoRA file '{source.name}' is not a readable safetensors file ({exc}).",
                             path=str(source)) from exc
    return state, metadata
