"""Forge `backend/operations.py`: the layer classes Forge builds its models from.

Followed from Forge: `using_forge_operations(device, dtype, manual_cast_enabled)` swaps `torch.nn.Linear` (and other
layer classes) for Forge's while a model is constructed. `ForgeOperations.Linear` is a plain `torch.nn.Module`, **not a
`torch.nn.Linear`**: it holds `in_features`, `out_features`, `parameters_manual_cast` and a `dummy` parameter until
`_load_from_state_dict` creates `weight`/`bias` as new `Parameter`s from the state dict; `forward` is
`F.linear(x, weight, bias)` (weights cast per call when `parameters_manual_cast`). The other layer classes subclass
their torch counterparts and are not swapped here.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

current_device = None
current_dtype = None
current_manual_cast_enabled = False


class ForgeOperations:
    class Linear(torch.nn.Module):
        def __init__(self, in_features, out_features, *args, **kwargs) -> None:
            super().__init__()
            self.in_features, self.out_features = in_features, out_features
            self.dummy = torch.nn.Parameter(torch.empty(1, device=current_device, dtype=current_dtype))
            self.weight = None
            self.scale_weight = None
            self.bias = None
            self.parameters_manual_cast = current_manual_cast_enabled

        def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
            if hasattr(self, "dummy"):
                if prefix + "weight" in state_dict:
                    self.weight = torch.nn.Parameter(state_dict[prefix + "weight"].to(self.dummy))
                if prefix + "bias" in state_dict:
                    self.bias = torch.nn.Parameter(state_dict[prefix + "bias"].to(self.dummy))
                del self.dummy
            else:
                super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                              error_msgs)

        def forward(self, x):
            weight, bias = self.weight, self.bias
            if self.parameters_manual_cast:
                weight = weight.to(x)
                bias = None if bias is None else bias.to(x)
            return torch.nn.functional.linear(x, weight, bias)


@contextmanager
def using_forge_operations(device=None, dtype=None, manual_cast_enabled=False):
    global current_device, current_dtype, current_manual_cast_enabled
    current_device, current_dtype, current_manual_cast_enabled = device, dtype, manual_cast_enabled
    backup = torch.nn.Linear
    try:
        torch.nn.Linear = ForgeOperations.Linear
        yield
    finally:
        torch.nn.Linear = backup
