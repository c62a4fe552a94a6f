"""The assembled FACT model: encoder + resampler (face photos -> face tokens) and the adapter blocks.

`load_fact_model(files)` reads both files strictly (checkpoint.py), builds the modules on the meta device and adopts
the loaded tensors (no random initialisation of ~340 M parameters), then moves them to the requested device/dtype.
Everything is frozen (eval mode, no grad).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .adapter import FactAdapter
from .checkpoint import load_adapter_state, load_encoder_state, split_adapter_state
from .encoder import DIM, NUM_TOKENS, TransFaceViT
from .faceinput import faces_to_tensor
from .files import FactFiles
from .resampler import NUM_QUERIES, OUT_DIM, Resampler


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes (streamed)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class FactModel:
    """Frozen FACT modules plus where they came from.

    encoder: TransFaceViT; resampler: Resampler; adapter: FactAdapter (one FactBlock per SD1.x site).
    files: the weight files (None for models built in memory, e.g. tests).
    """

    def __init__(self, encoder: TransFaceViT, resampler: Resampler, adapter: FactAdapter, files: FactFiles | None = None):
        self.encoder, self.resampler, self.adapter, self.files = encoder, resampler, adapter, files
        self._fingerprint: dict[str, str] | None = None
        self._no_face: torch.Tensor | None = None  # resampler(zeros) for one photo, (1, 16, 768); reset by .to()
        for module in (encoder, resampler, adapter):
            module.eval().requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return self.resampler.latents.device

    @property
    def dtype(self) -> torch.dtype:
        return self.resampler.latents.dtype

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> FactModel:
        """Move all modules (in place); returns self."""
        for module in (self.encoder, self.resampler, self.adapter):
            module.to(device=device, dtype=dtype)
        self._no_face = None
        return self

    def fingerprint(self) -> dict[str, str]:
        """{"encoder_sha256", "adapter_sha256"} of the weight files, hashed once on first use (token-cache key)."""
        if self._fingerprint is None:
            if self.files is None:
                raise ValueError("this FACT model was not loaded from files; it has no fingerprint")
            self._fingerprint = {
                "encoder_sha256": file_sha256(self.files.encoder),
                "adapter_sha256": file_sha256(self.files.adapter),
            }
        return self._fingerprint

    @torch.no_grad()
    def photo_tokens(self, faces: Sequence[np.ndarray] | torch.Tensor) -> torch.Tensor:
        """Face tokens per photo: (n, 16, 768) in the model dtype.

        faces: aligned 112x112 RGB uint8 arrays (faceinput.align_face_for_fact), or an already normalised float
        tensor (n, 3, 112, 112) in [-1, 1].
        """
        pixels = faces if isinstance(faces, torch.Tensor) else faces_to_tensor(faces)
        pixels = pixels.to(device=self.device, dtype=self.dtype)
        return self.resampler(self.encoder(pixels))

    def face_tokens(self, faces: Sequence[np.ndarray] | torch.Tensor) -> torch.Tensor:
        """Tokens of n photos concatenated, as the adapter takes them: (1, 16 n, 768)."""
        return concat_tokens(self.photo_tokens(faces))

    @torch.no_grad()
    def no_face_tokens(self, n: int = 1) -> torch.Tensor:
        """FACT's unconditional face tokens: resampler(zero encoder tokens) for each of n photos, (1, 16 n, 768)."""
        if n < 1:
            raise ValueError(f"need at least one photo, got {n}")
        if self._no_face is None:
            zeros = torch.zeros(1, NUM_TOKENS, DIM, device=self.device, dtype=self.dtype)
            self._no_face = self.resampler(zeros)
        return self._no_face.expand(n, -1, -1).reshape(1, n * NUM_QUERIES, OUT_DIM)


def concat_tokens(per_photo: torch.Tensor) -> torch.Tensor:
    """(n, 16, 768) -> (1, 16 n, 768), photo after photo (FaceChain's `face_g_embed.view(1, n * 16, -1)`)."""
    n, length, width = per_photo.shape
    return per_photo.reshape(1, n * length, width)


def load_fact_model(files: FactFiles, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> FactModel:
    """Read and validate both files (unsupported_model on any key problem), then build the model on `device`/`dtype`."""
    encoder_state = load_encoder_state(files.encoder)
    adapter_state = load_adapter_state(files.adapter)
    adapter_part, resampler_part = split_adapter_state(adapter_state.tensors)
    with torch.device("meta"):
        encoder, resampler, adapter = TransFaceViT(), Resampler(), FactAdapter()
    encoder.load_state_dict(encoder_state.tensors, strict=True, assign=True)
    resampler.load_state_dict(resampler_part, strict=True, assign=True)
    adapter.load_checkpoint_state(adapter_part, assign=True)
    return FactModel(encoder, resampler, adapter, files).to(device, dtype)
