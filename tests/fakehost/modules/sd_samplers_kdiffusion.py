"""Stand-in for modules/sd_samplers_kdiffusion.py: `CFGDenoiserKDiffusion`, whose `inner_model` is k-diffusion's
`CompVisDenoiser` around `shared.sd_model` (here a reduced one: eps prediction, timestep = sigma)."""

from __future__ import annotations

import torch

import modules.shared as shared
from modules import sd_samplers_cfg_denoiser


class CompVisDenoiser(torch.nn.Module):
    """k_diffusion.external.CompVisDenoiser, reduced: scales the input, calls `apply_model(x, t, cond)`, returns x0."""

    def __init__(self, model):
        super().__init__()
        self.inner_model = model

    def forward(self, input, sigma, **kwargs):
        c_in = 1 / (sigma**2 + 1) ** 0.5
        eps = self.inner_model.apply_model(input * c_in[:, None, None, None], sigma, **kwargs)
        return input - eps * sigma[:, None, None, None]


class CFGDenoiserKDiffusion(sd_samplers_cfg_denoiser.CFGDenoiser):
    @property
    def inner_model(self):
        if self.model_wrap is None:
            self.model_wrap = CompVisDenoiser(shared.sd_model)
        return self.model_wrap
