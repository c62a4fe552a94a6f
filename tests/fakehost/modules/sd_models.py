"""Stand-in for modules/sd_models.py: moving the loaded model between devices and the checkpoint record."""

from __future__ import annotations

from dataclasses import dataclass

from modules import devices, shared


@dataclass
class CheckpointInfo:
    filename: str
    title: str
    name_for_extra: str
    shorthash: str = "0000000000"
    model_name: str = ""
    hash: str = "00000000"


checkpoints_list: dict[str, CheckpointInfo] = {}


def send_model_to_cpu(m) -> None:
    if m is not None and hasattr(m, "to"):
        m.to(devices.cpu)


def send_model_to_device(m) -> None:
    if m is not None and hasattr(m, "to"):
        m.to(devices.device)


def unload_model_weights(sd_model=None, info=None):
    send_model_to_cpu(sd_model or shared.sd_model)
    return sd_model


def reload_model_weights(sd_model=None, info=None, forced_reload=False):
    model = sd_model or shared.sd_model
    send_model_to_device(model)
    return model
