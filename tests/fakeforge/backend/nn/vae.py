"""Forge `backend/nn/vae.py` `IntegratedAutoencoderKL`, over a diffusers AutoencoderKL's encoder/decoder weights.

Followed from Forge: `encode(x, regulation=None)` returns a posterior *sample* drawn with the global RNG
(`mean + std · torch.randn(mean.shape)`, log-variance clamped to [-30, 20]) — or `regulation(posterior)`;
`process_in(z) = (z − shift_factor) · scaling_factor`, `process_out` its inverse; `decode(z)`.
"""

from __future__ import annotations

import torch
from torch import nn


class DiagonalGaussianDistribution:
    def __init__(self, parameters: torch.Tensor) -> None:
        self.parameters = parameters
        self.mean, logvar = torch.chunk(parameters, 2, dim=1)
        self.logvar = torch.clamp(logvar, -30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self) -> torch.Tensor:
        return self.mean + self.std * torch.randn(self.mean.shape).to(device=self.parameters.device)

    def mode(self) -> torch.Tensor:
        return self.mean


class IntegratedAutoencoderKL(nn.Module):
    def __init__(self, autoencoder: nn.Module) -> None:
        super().__init__()
        self.encoder, self.quant_conv = autoencoder.encoder, autoencoder.quant_conv
        self.decoder, self.post_quant_conv = autoencoder.decoder, autoencoder.post_quant_conv
        self.config = autoencoder.config
        self.scaling_factor = float(autoencoder.config.scaling_factor)
        self.shift_factor = float(getattr(autoencoder.config, "shift_factor", None) or 0.0)

    def encode(self, x, regulation=None):
        posterior = DiagonalGaussianDistribution(self.quant_conv(self.encoder(x)))
        return regulation(posterior) if regulation is not None else posterior.sample()

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))

    def process_in(self, latent):
        return (latent - self.shift_factor) * self.scaling_factor

    def process_out(self, latent):
        return latent / self.scaling_factor + self.shift_factor
