"""Thin, backend-agnostic access to a Stable Diffusion model for training.

`base.DiffusionModel` is the protocol the LoRA trainer talks to; `ldm.LdmModel` adapts the host's loaded
LatentDiffusion object and `diffusers_model.DiffusersModel` adapts diffusers components. Import the submodules
directly (they import torch); this package file stays cheap to import.
"""

from __future__ import annotations
