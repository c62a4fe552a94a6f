"""Face LoRA training core, independent of the host: inject, train, snapshot, select, save.

Public API (submodules import torch; this file loads them on first attribute access so importing
`facechain_ext.lora` stays cheap):
- config: `TrainConfig`, `PRESETS`, `make_config(preset, **overrides)`
- trainer: `train_lora(model, items, config, *, on_step, should_stop) -> TrainResult`
- snapshots: `StepInfo`, `Snapshot`, `TrainResult`, `average_snapshots(snapshots)`
- inject: `lora_attached(model, config)` (context manager yielding `LoraSession`)
- io: `save_lora(path, state_dict, metadata, *, dtype=None)`, `load_lora(path)`, `kohya_metadata(...)`
- selection: `select_best(snapshots, render_fn, score_fn, top_k=1) -> Selection`
- kohya: `kohya_name`, `unmatched_keys`, `group_state_dict`
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "config", "PRESETS": "config", "make_config": "config",
    "train_lora": "trainer", "prepare_data": "trainer",
    "StepInfo": "snapshots", "Snapshot": "snapshots", "TrainResult": "snapshots", "average_snapshots": "snapshots",
    "lora_attached": "inject", "LoraSession": "inject",
    "save_lora": "io", "load_lora": "io", "kohya_metadata": "io",
    "select_best": "selection", "Selection": "selection", "SnapshotScore": "selection",
    "kohya_name": "kohya", "unmatched_keys": "kohya", "group_state_dict": "kohya",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'facechain_ext.lora' has no attribute {name!r}")
    return getattr(importlib.import_module(f"facechain_ext.lora.{_EXPORTS[name]}"), name)
