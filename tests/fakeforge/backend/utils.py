"""Forge `backend/utils.py`: dotted attribute access used by the patchers and the LoRA loader."""

from __future__ import annotations

import torch


def get_attr(obj, attr: str):
    for name in attr.split("."):
        obj = getattr(obj, name)
    return obj


def set_attr_raw(obj, attr: str, value) -> None:
    names = attr.split(".")
    for name in names[:-1]:
        obj = getattr(obj, name)
    setattr(obj, names[-1], value)


def get_attr_with_parent(obj, attr: str):
    parent, name = obj, None
    for name in attr.split("."):
        parent, obj = obj, getattr(obj, name)
    return parent, name, obj


def tensor2parameter(x):
    return x if isinstance(x, torch.nn.Parameter) else torch.nn.Parameter(x, requires_grad=False)
