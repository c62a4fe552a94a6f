"""Forge `backend/modules/k_prediction.py` `Prediction`: the discrete SD schedule in k-diffusion form.

Followed from Forge: `prediction_type` in diffusers words ('epsilon', 'v_prediction'); betas = "linear" schedule
(linspace(√start, √end)², i.e. SD's scaled_linear); buffers `alphas_cumprod`, `sigmas` = √((1 − ᾱ)/ᾱ), `log_sigmas`;
`calculate_input(σ, x) = x / √(σ² + σ_data²)`; `calculate_denoised`: ε → x − out·σ, v → x·σ_d²/(σ²+σ_d²) − out·σ·σ_d/√(σ²+σ_d²);
`timestep(σ)` = nearest-index interpolation on log σ (here: the nearest index). Built from a diffusers scheduler config
like `k_prediction_from_diffusers_scheduler` (scaled_linear only).
"""

from __future__ import annotations

import torch


class Prediction(torch.nn.Module):
    def __init__(self, sigma_data=1.0, prediction_type="epsilon", linear_start=0.00085, linear_end=0.012, timesteps=1000):
        super().__init__()
        if prediction_type not in ("epsilon", "const", "v_prediction", "edm"):
            raise AssertionError(prediction_type)
        self.sigma_data, self.prediction_type = sigma_data, prediction_type
        betas = torch.linspace(linear_start ** 0.5, linear_end ** 0.5, timesteps, dtype=torch.float64) ** 2
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        self.register_buffer("alphas_cumprod", alphas_cumprod.float())
        self.register_buffer("sigmas", sigmas.float())
        self.register_buffer("log_sigmas", sigmas.log().float())

    def calculate_input(self, sigma, noise):
        sigma = sigma.view(sigma.shape[:1] + (1,) * (noise.ndim - 1))
        return noise / (sigma ** 2 + self.sigma_data ** 2) ** 0.5

    def calculate_denoised(self, sigma, model_output, model_input):
        sigma = sigma.view(sigma.shape[:1] + (1,) * (model_output.ndim - 1))
        if self.prediction_type == "v_prediction":
            d2 = sigma ** 2 + self.sigma_data ** 2
            return model_input * self.sigma_data ** 2 / d2 - model_output * sigma * self.sigma_data / d2 ** 0.5
        return model_input - model_output * sigma

    def timestep(self, sigma):
        dists = sigma.log().to(self.log_sigmas.device) - self.log_sigmas[:, None]
        return dists.abs().argmin(dim=0).view(sigma.shape).to(sigma.device)

    def sigma(self, timestep):
        return self.sigmas[timestep.long().clamp(0, len(self.sigmas) - 1)]


def k_prediction_from_diffusers_scheduler(config: dict) -> Prediction:
    if config.get("prediction_type") in ("epsilon", "v_prediction") and config.get("beta_schedule") == "scaled_linear":
        return Prediction(1.0, config["prediction_type"], config["beta_start"], config["beta_end"],
                          config["num_train_timesteps"])
    raise NotImplementedError(f"Failed to recognize {config}")
