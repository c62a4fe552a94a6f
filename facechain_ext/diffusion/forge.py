"""Adapter for Forge's SD1 engine (`shared.sd_model` on Forge): the `DiffusionModel` the LoRA trainer needs.

Duck-typed over Forge's objects (no Forge import; the webui glue hands in Forge's `load_models_gpu`):
- UNet: `sd_model.forge_objects_original.unet` (a `UnetPatcher`, backend/patcher/unet.py) → `.model` (KModel,
  backend/modules/k_model.py) → `.diffusion_model`, Forge's `IntegratedUNet2DConditionModel` with ldm's module names
  (backend/nn/unet.py), so saved keys are kohya keys with compvis paths, as on A1111. The *original* patcher is used:
  loading it through Forge's memory management (`load_models_gpu([patcher])`, backend/memory_management.py
  `LoadedModel.model_load` → `refresh_loras()`) also takes out the weights of the last prompt's `<lora:…>`.
- Schedule and target: `KModel.predictor` (backend/modules/k_prediction.py): `alphas_cumprod`, `prediction_type` in
  diffusers words ('epsilon' / 'v_prediction').
- Latents: `sd_model.encode_first_stage(x)` (backend/diffusion_engine/sd15.py) returns the *scaled* latent and samples
  the posterior with the global CPU RNG (backend/nn/vae.py), so a forked, seeded RNG makes it reproducible.
- Captions: `sd_model.get_learned_conditioning(prompts)` (Forge's text engine, clip skip and emphasis included).
Forge-specific facts handled here:
- Forge's loader (backend/loader.py `forge_loader`) and LoRA merge (backend/patcher/lora.py) run under
  `torch.inference_mode()`, and so do `encode_first_stage` / `get_learned_conditioning`: their tensors are
  *inference tensors*, which autograd refuses to save. Outputs are cloned outside inference mode; UNet parameters
  that are inference tensors are swapped, for the training only, for parameters viewing the same memory (no copy).
- Forge's Linear layers are `ForgeOperations.Linear` (backend/operations.py), plain Modules peft cannot adapt: for the
  training each is replaced by a `torch.nn.Linear` holding the same weight and bias objects. A UNet Forge stores in
  low bits or partly in CPU memory (per-call weight casting) is refused with `unsupported_host`.
- Forge's transformer block adds its residuals in place (`x += n`, backend/nn/unet.py `BasicTransformerBlock._forward`),
  which breaks backward through it; while gradients are recorded each block runs the same SD1 block math out of place
  (Forge's own forward, patches included, runs otherwise, e.g. for validation renders).
Both changes are instance-level and are undone exactly by `lora_attached`'s UNet snapshot (lora/inject.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint as torch_checkpoint

from facechain_ext.diffusion.base import require_trainable
from facechain_ext.diffusion.family import model_family
from facechain_ext.errors import FaceChainError

LoadModels = Callable[[list], None]  # Forge's backend.memory_management.load_models_gpu(models)
_BLOCK_PARTS = ("attn1", "attn2", "norm1", "norm2", "norm3", "ff")
_TRAINABLE_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _unet_patcher(sd_model: Any) -> Any:
    objects = getattr(sd_model, "forge_objects_original", None) or getattr(sd_model, "forge_objects", None)
    patcher = getattr(objects, "unet", None)
    if not hasattr(getattr(patcher, "model", None), "diffusion_model"):
        raise FaceChainError("unsupported_model", "The loaded Forge model has no UNet; load an SD1.5 checkpoint.")
    return patcher


def _checkpoint_name(sd_model: Any) -> str:
    info = getattr(sd_model, "sd_checkpoint_info", None)
    return str(getattr(info, "title", None) or getattr(info, "name", None) or "the loaded checkpoint")


def _trainable_alias(param: nn.Parameter) -> nn.Parameter:
    """A normal (non-inference) frozen parameter sharing `param`'s memory: autograd may save it for backward."""
    with torch.inference_mode(False):
        alias = torch.empty(0, dtype=param.dtype, device=param.device)
        alias.set_(param.untyped_storage(), param.storage_offset(), param.size(), param.stride())
    return nn.Parameter(alias, requires_grad=False)


def _sd1_block(block: nn.Module, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
    """SD1 transformer block: self-attention, cross-attention, feed-forward, each pre-normed with a residual."""
    x = x + block.attn1(block.norm1(x), context=context if block.disable_self_attn else None)
    x = x + block.attn2(block.norm2(x), context=context)
    return x + block.ff(block.norm3(x))


def _training_block_forward(block: nn.Module, use_checkpoint: bool, x: torch.Tensor, context: torch.Tensor | None = None,
                            transformer_options: dict | None = None) -> torch.Tensor:
    if not torch.is_grad_enabled() or torch.is_inference_mode_enabled():
        return type(block).forward(block, x, context=context, transformer_options=transformer_options or {})
    if use_checkpoint:
        return torch_checkpoint(functools.partial(_sd1_block, block), x, context, use_reentrant=False)
    return _sd1_block(block, x, context)


class ForgeModel:
    """`DiffusionModel` over a Forge engine: UNet = `forge_objects_original.unet.model.diffusion_model`, compvis names.

    `load_models` (Forge's `load_models_gpu`) is called with the original UNet patcher at construction (weights of a
    prompt LoRA are taken out) and before every training attach (the UNet back on its load device while LoRA layers
    are added and trained); None leaves the UNet as it is.
    """

    naming = "compvis"

    def __init__(self, sd_model: Any, *, load_models: LoadModels | None = None) -> None:
        self.sd_model = sd_model
        self.load_models = load_models
        self.checkpoint_name = _checkpoint_name(sd_model)
        self.unet_patcher = _unet_patcher(sd_model)
        kmodel = self.unet_patcher.model
        self.unet: nn.Module = kmodel.diffusion_model
        # Forge's engines keep the webui flags (backend/diffusion_engine/base.py; sd15.py sets is_sd1 = True)
        self.family = model_family(sd_model)
        self.is_sd1 = self.family == "sd1"
        require_trainable(self.family, int(getattr(self.unet, "in_channels", 4)), self.checkpoint_name)
        self.predictor = kmodel.predictor
        prediction = getattr(self.predictor, "prediction_type", None)
        if prediction not in ("epsilon", "v_prediction"):
            raise FaceChainError("unsupported_model", f"Checkpoint '{self.checkpoint_name}' predicts '{prediction}'; "
                                 "only ε and v prediction can be trained.", checkpoint=self.checkpoint_name)
        self.prediction_type = prediction
        self.device: torch.device = torch.device(self.unet_patcher.load_device)
        self.dtype: torch.dtype = getattr(kmodel, "computation_dtype", None) or next(self.unet.parameters()).dtype
        # Now, outside any UNet snapshot: loading the original patcher may put back weights a prompt LoRA merged
        # (new Parameter objects), which a snapshot taken earlier would undo on restore.
        self._load_unet()

    def _load_unet(self) -> None:
        if self.load_models is not None:
            self.load_models([self.unet_patcher])

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return self.predictor.alphas_cumprod.detach().float().cpu().clone()

    def encode_images(self, pixels: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] → scaled latents (B, 4, H/8, W/8) float32, a normal tensor."""
        with torch.random.fork_rng(devices=[]):  # Forge samples the posterior with the global CPU RNG
            torch.manual_seed(seed)
            latents = self.sd_model.encode_first_stage(pixels.float())
        with torch.inference_mode(False):
            return latents.float().clone()

    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        cond = self.sd_model.get_learned_conditioning(list(prompts))
        if not isinstance(cond, torch.Tensor):
            raise FaceChainError("unsupported_model", "Forge's text encoder returned no SD1 conditioning tensor.")
        with torch.inference_mode(False):
            return cond.detach().clone()

    def predict(self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        # KModel.apply_model calls the UNet the same way (float timesteps, computation dtype), minus the k-diffusion scaling.
        return self.unet(noisy.to(self.dtype), timesteps.float(), context=cond.to(self.dtype), transformer_options={})

    def prepare_unet_for_training(self, config: Any) -> None:
        """Called by `lora_attached` inside its UNet snapshot: put the UNet back on its device (encoding may have
        offloaded it; its LoRA state is unchanged since __init__, so nothing is re-merged) and make it trainable."""
        self._load_unet()
        for module in self.unet.modules():
            for name, param in list(module._parameters.items()):
                if param is not None and param.is_inference():
                    module._parameters[name] = _trainable_alias(param)
            if all(hasattr(module, part) for part in _BLOCK_PARTS) and hasattr(module, "_forward"):
                if getattr(module, "ff_in", False):
                    raise FaceChainError("unsupported_model", "This UNet's transformer blocks are not SD1 blocks.")
                module.forward = functools.partial(_training_block_forward, module, bool(config.gradient_checkpointing))
        swaps = [(parent, name, child) for parent in self.unet.modules() for name, child in parent.named_children()
                 if _is_forge_linear(child)]
        for parent, name, child in swaps:
            setattr(parent, name, self._torch_linear(child))

    def _torch_linear(self, layer: nn.Module) -> nn.Linear:
        """A `torch.nn.Linear` holding a Forge Linear's own weight and bias (peft adapts torch Linears only)."""
        weight = layer.weight
        if layer.parameters_manual_cast or getattr(layer, "scale_weight", None) is not None \
                or getattr(layer, "forge_online_loras", None) or weight.dtype not in _TRAINABLE_DTYPES \
                or weight.device != self.device:
            raise FaceChainError(
                "unsupported_host",
                f"Forge keeps the UNet of '{self.checkpoint_name}' {weight.dtype} on {weight.device} with per-call "
                "casting (low-bit storage, or part of it in CPU memory because of the GPU Weights setting); training "
                f"needs the whole UNet on {self.device} in fp16, bf16 or fp32. Set 'Diffusion in Low Bits' to "
                "Automatic and give Forge enough GPU Weights, then train again.",
                checkpoint=self.checkpoint_name, dtype=str(weight.dtype), device=str(weight.device))
        linear = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None, device="meta")
        linear.weight = weight
        linear.bias = layer.bias
        return linear


def _is_forge_linear(module: nn.Module) -> bool:
    """Forge's `ForgeOperations.Linear` (backend/operations.py): a plain Module with a 2-D weight, not a torch Linear."""
    weight = getattr(module, "weight", None)
    return (not isinstance(module, nn.Linear) and isinstance(weight, nn.Parameter) and weight.ndim == 2
            and hasattr(module, "in_features") and hasattr(module, "parameters_manual_cast"))
