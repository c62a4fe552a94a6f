"""The model interface the trainer needs, and the trainability check both adapters share.

Why a protocol: the trainer must run on the host's ldm object (inside A1111/Forge) and on diffusers components
(CLI, tests) without knowing which. Only what training needs is exposed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from facechain_ext.diffusion.family import ModelFamily, require_family
from facechain_ext.errors import FaceChainError

if TYPE_CHECKING:  # torch stays out of import time
    import torch
    from torch import nn

Naming = Literal["compvis", "diffusers"]
PredictionType = Literal["epsilon", "v_prediction"]

@runtime_checkable
class DiffusionModel(Protocol):
    """What the LoRA trainer needs from a latent diffusion model.

    - `unet` is the module LoRA layers are injected into; `naming` says whose module paths it has
      ("compvis" for the ldm UNetModel, "diffusers" for UNet2DConditionModel) so saved keys match the host.
    - `encode_images` takes pixels in [-1, 1] (B, 3, H, W) and returns scaled latents; `seed` makes the
      posterior sample reproducible.
    - `encode_prompts` returns the cross-attention conditioning for a list of captions.
    - `predict(noisy, timesteps, cond)` returns the UNet's prediction (ε or v, see `prediction_type`).
    """

    device: torch.device
    dtype: torch.dtype
    unet: nn.Module
    naming: Naming
    family: ModelFamily  # see diffusion.family
    is_sd1: bool
    prediction_type: PredictionType
    checkpoint_name: str

    @property
    def alphas_cumprod(self) -> torch.Tensor: ...

    def encode_images(self, pixels: torch.Tensor, *, seed: int = 0) -> torch.Tensor: ...

    def encode_prompts(self, prompts: list[str]) -> Any: ...

    def predict(self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: Any) -> torch.Tensor: ...


def require_trainable(family: ModelFamily, in_channels: int, checkpoint_name: str) -> None:
    """Refuse checkpoints the face-LoRA recipe does not support, naming the checkpoint and the reason."""
    require_family(family, ("sd1",), purpose="FaceChain face LoRAs", checkpoint=checkpoint_name)
    if in_channels != 4:
        raise FaceChainError(
            "unsupported_model",
            f"Checkpoint '{checkpoint_name}' has a {in_channels}-channel UNet (an inpainting or instruct model); "
            "train on a regular SD1.x checkpoint.",
            checkpoint=checkpoint_name,
            in_channels=in_channels,
        )


def prediction_type_from_ldm(parameterization: str, checkpoint_name: str) -> PredictionType:
    """Map ldm's `parameterization` ("eps" / "v") to the diffusers vocabulary the trainer uses."""
    mapping = {"eps": "epsilon", "v": "v_prediction"}
    if parameterization not in mapping:
        raise FaceChainError(
            "unsupported_model",
            f"Checkpoint '{checkpoint_name}' uses parameterization '{parameterization}'; only ε ('eps') and v ('v') "
            "prediction can be trained.",
            checkpoint=checkpoint_name,
        )
    return mapping[parameterization]  # type: ignore[return-value]
