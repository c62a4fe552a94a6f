"""Forge `backend/modules/k_model.py` `KModel`: `UnetPatcher.model`, holding the UNet as `diffusion_model`.

Followed from Forge: `storage_dtype` / `computation_dtype` copied from the UNet; `predictor`; `apply_model(x, σ,
c_concat, c_crossattn, control, transformer_options)` = `predictor.calculate_input`, timestep from σ, input and context
cast to the computation dtype, `diffusion_model(xc, t, context=, control=, transformer_options=)` as float, then
`predictor.calculate_denoised`. Its state-dict keys are `diffusion_model.<ldm path>` (what the LoRA key map reads).
"""

from __future__ import annotations

import torch


class KModel(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, predictor: torch.nn.Module, config=None) -> None:
        super().__init__()
        self.config = config
        self.storage_dtype = model.storage_dtype
        self.computation_dtype = model.computation_dtype
        self.diffusion_model = model
        self.predictor = predictor

    def apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):  # noqa: B006
        sigma = t
        xc = self.predictor.calculate_input(sigma, x)
        if c_concat is not None:
            xc = torch.cat([xc, c_concat], dim=1)
        dtype = self.computation_dtype
        t = self.predictor.timestep(t).float()
        out = self.diffusion_model(xc.to(dtype), t, context=c_crossattn.to(dtype), control=control,
                                   transformer_options=transformer_options).float()
        return self.predictor.calculate_denoised(sigma, out, x)
