"""Stand-in for modules/sd_samplers_common.py: what the CFG denoiser imports from it."""

from __future__ import annotations


class InterruptedException(BaseException):
    pass


def apply_refiner(cfg_denoiser, sigma=None) -> bool:
    """The host switches to the refiner checkpoint here once its step is reached; not mimicked (never switches)."""
    return False


def store_latent(decoded) -> None:
    """The host keeps the latest latent for live previews."""
