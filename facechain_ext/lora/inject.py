"""Attach peft LoRA layers to a UNet for the length of a `with` block, then restore the UNet exactly.

peft replaces each target Linear with a wrapper that holds the original as `base_layer`, flips `requires_grad`
on every parameter and sets `peft_config` on the model. The host's Lora extension tags module objects and its
attention optimisations patch classes, so on exit — normal or exception — every module's attribute dict, child
modules, parameters, buffers, hooks and `requires_grad` flags are put back as they were (same objects, same
tensors). The base weights are never written to.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint as torch_checkpoint

from facechain_ext.errors import FaceChainError
from facechain_ext.lora import kohya
from facechain_ext.lora.config import TrainConfig

ADAPTER = "facechain"
# nn.Module's own container attributes; restored by content so the container objects stay the same.
_CONTAINERS = (
    "_parameters", "_buffers", "_modules", "_non_persistent_buffers_set", "_forward_hooks", "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called", "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_backward_hooks",
    "_backward_pre_hooks", "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)


@dataclass
class _ModuleState:
    attrs: dict
    containers: dict


@dataclass
class UnetSnapshot:
    """Everything about a UNet that attaching LoRA could change, captured by reference (no weight copies)."""

    modules: dict[nn.Module, _ModuleState] = field(default_factory=dict)
    params: list[tuple[nn.Parameter, bool, torch.Tensor | None]] = field(default_factory=list)

    @classmethod
    def capture(cls, unet: nn.Module) -> UnetSnapshot:
        snap = cls()
        for module in unet.modules():
            containers = {k: type(v)(v) for k, v in module.__dict__.items() if k in _CONTAINERS}
            snap.modules[module] = _ModuleState(dict(module.__dict__), containers)
        snap.params = [(p, p.requires_grad, p.grad) for p in unet.parameters()]
        return snap

    def restore(self) -> None:
        for module, state in self.modules.items():
            current = module.__dict__
            for key in [k for k in current if k not in state.attrs]:
                del current[key]
            for key, value in state.attrs.items():
                if key in state.containers:
                    value.clear()
                    value.update(state.containers[key])
                current[key] = value
        for param, requires_grad, grad in self.params:
            # only when changed: an inference tensor (Forge's weights) refuses even a no-op requires_grad_(True)
            if param.requires_grad != requires_grad:
                param.requires_grad_(requires_grad)
            if param.grad is not grad:
                param.grad = grad


def find_targets(unet: nn.Module, config: TrainConfig) -> list[str]:
    """UNet-relative paths of the Linear projections to adapt, e.g. `...attn2.to_out.0`."""
    suffixes = tuple(f"{attn}.{proj}" for attn in config.attention_layers for proj in config.target_modules)
    paths = [
        path for path, module in unet.named_modules()
        if isinstance(module, nn.Linear) and (path.endswith(tuple("." + s for s in suffixes)) or path in suffixes)
    ]
    if not paths:
        raise FaceChainError(
            "unsupported_model",
            f"No attention projections ({', '.join(suffixes)}) found in the UNet; is this a Stable Diffusion model?",
        )
    return paths


@dataclass
class LoraSession:
    """Live LoRA layers inside the UNet while `lora_attached` is active."""

    unet: nn.Module
    targets: list[str]
    alpha: float

    def _layer(self, path: str) -> nn.Module:
        return self.unet.get_submodule(path)

    def parameters(self) -> list[nn.Parameter]:
        params = []
        for path in self.targets:
            layer = self._layer(path)
            params += [layer.lora_A[ADAPTER].weight, layer.lora_B[ADAPTER].weight]
        return params

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Current LoRA weights as a kohya state dict (CPU float32 copies)."""
        weights = {}
        for path in self.targets:
            layer = self._layer(path)
            weights[path] = kohya.LoraWeights(layer.lora_A[ADAPTER].weight, layer.lora_B[ADAPTER].weight, self.alpha)
        return kohya.to_state_dict(weights)

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Set the LoRA weights from a kohya state dict of the same targets (e.g. to render a snapshot)."""
        grouped = kohya.group_state_dict(state)
        missing = [p for p in self.targets if kohya.kohya_name(p) not in grouped]
        if missing:
            raise ValueError(f"state dict lacks LoRA weights for {len(missing)} target(s), e.g. {missing[0]}")
        for path in self.targets:
            w = grouped[kohya.kohya_name(path)]
            layer = self._layer(path)
            if w.rank != layer.lora_A[ADAPTER].weight.shape[0]:
                raise ValueError(f"rank {w.rank} in the state dict does not match the attached rank for {path}")
            layer.lora_A[ADAPTER].weight.copy_(w.down)
            layer.lora_B[ADAPTER].weight.copy_(w.up * (w.scale * w.rank / self.alpha))


def _checkpointed_forward(block: nn.Module, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
    return torch_checkpoint(block._forward, x, context, use_reentrant=False)


def _prepare_checkpointing(unet: nn.Module, enable: bool) -> None:
    """Make activation checkpointing safe for LoRA training (changes are undone by the snapshot restore).

    ldm's own checkpoint (on by default in SD1 configs) differentiates w.r.t. every block parameter and fails when
    base weights are frozen, so it is switched off per instance; when requested, transformer blocks are wrapped
    with torch's checkpoint instead. diffusers blocks checkpoint only in training mode.
    """
    for module in unet.modules():
        if hasattr(module, "use_checkpoint") and isinstance(module.use_checkpoint, bool):
            module.use_checkpoint = False
        if hasattr(module, "_forward") and isinstance(getattr(module, "checkpoint", None), bool):
            module.checkpoint = False
            if enable:
                module.forward = functools.partial(_checkpointed_forward, module)
        if isinstance(getattr(module, "gradient_checkpointing", None), bool) and enable:
            module.gradient_checkpointing = True
            module.train()


def _inject(unet: nn.Module, targets: list[str], config: TrainConfig) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    lora_config = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=0.0, target_modules=list(targets),
                             init_lora_weights=True, bias="none")
    # peft draws the initial A matrices from the global RNG: seed a forked RNG so runs repeat and the host's
    # RNG state is untouched.
    first = next(unet.parameters())
    with torch.random.fork_rng(devices=[first.device] if first.device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        inject_adapter_in_model(lora_config, unet, adapter_name=ADAPTER)
    for path in targets:  # train the adapter in float32 even when the host model is half precision
        layer = unet.get_submodule(path)
        layer.lora_A[ADAPTER].float()
        layer.lora_B[ADAPTER].float()


@contextmanager
def lora_attached(model, config: TrainConfig) -> Iterator[LoraSession]:
    """Inject LoRA into `model.unet` (a DiffusionModel) and yield a LoraSession; restore the UNet on exit."""
    unet = model.unet
    snapshot = UnetSnapshot.capture(unet)
    try:
        _prepare_checkpointing(unet, config.gradient_checkpointing)
        prepare = getattr(model, "prepare_unet_for_training", None)
        if prepare is not None:  # host-specific instance changes (diffusion/forge.py), undone by the restore below
            prepare(config)
        targets = find_targets(unet, config)
        _inject(unet, targets, config)
        yield LoraSession(unet, targets, float(config.alpha))
    finally:
        snapshot.restore()
