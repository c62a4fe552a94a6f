"""Shared pieces for the training tests: a real identity prepared from real photos, a tiny host-like model, a handle.

The identity is prepared once per session with the real pipeline (dlib backend, B's `prepare_photos` + IdentityStore)
from three photos of one person, then copied into each test's own FaceChain folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facechain_ext.config import Settings
from facechain_ext.context import FaceChainContext

IDENTITY = "obama"
TRAIN_PHOTOS = 3


def person_photos(faces_table: list[dict], identity: str) -> list[str]:
    return sorted(row["file"] for row in faces_table if row["identity"] == identity)


def make_ctx(root: Path) -> FaceChainContext:
    return FaceChainContext(Settings(models_dir=root / "facechain", lora_dir=root / "Lora", face_backend="dlib"))


def prepare_identity_folder(root: Path, faces_table: list[dict]) -> Path:
    """Prepare IDENTITY from its first photos (128 px crops: small, still large enough for the dlib detector)."""
    from facechain_ext.prep import PrepOptions, prepare_photos

    ctx = make_ctx(root)
    photos = person_photos(faces_table, IDENTITY)[:TRAIN_PHOTOS]
    report = prepare_photos([(Path(p).name, p) for p in photos], ctx.analyzer(), PrepOptions(resolution=128))
    ctx.identities.create(IDENTITY, report)
    ctx.identities.reference_embedding(IDENTITY, ctx.analyzer())  # cache it once for every copy
    return ctx.settings.identities_dir


def ctx_with_identity(tmp_path: Path, prepared: Path) -> FaceChainContext:
    ctx = make_ctx(tmp_path)
    shutil.copytree(prepared, ctx.settings.identities_dir)
    return ctx


def small_photo(path: str, side: int = 320) -> Image.Image:
    image = Image.open(path).convert("RGB")
    image.thumbnail((side, side))
    return image


class RecordingHandle:
    """A JobHandle stand-in that records progress and cancels itself when `cancel_at_step` is reached."""

    def __init__(self, cancel_at_step: int | None = None) -> None:
        self.reports: list[tuple[int, int, str]] = []
        self.cancel_at_step = cancel_at_step
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        self._cancelled = True

    def progress(self, done: int, total: int, text: str = "") -> None:
        self.reports.append((done, total, text))
        if self.cancel_at_step is not None and text.startswith("Training step") and done >= self.cancel_at_step:
            self._cancelled = True


class UnetSnapshot:
    """Weights, module objects and requires_grad flags of a UNet, to prove it is exactly as before afterwards."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.unet = unet
        self.state = {k: v.detach().clone() for k, v in unet.state_dict().items()}
        self.modules = dict(unet.named_modules())
        self.grads = {k: p.requires_grad for k, p in unet.named_parameters()}

    def assert_restored(self) -> None:
        after = self.unet.state_dict()
        assert set(after) == set(self.state), "parameter names changed: LoRA layers were left in the UNet"
        assert all(torch.equal(after[k], self.state[k]) for k in self.state), "base weights changed"
        assert dict(self.unet.named_modules()) == self.modules, "module objects were replaced"
        assert not any("forward" in vars(m) for m in self.unet.modules()), "an instance forward patch was left"
        assert {k: p.requires_grad for k, p in self.unet.named_parameters()} == self.grads


@torch.no_grad()
def unet_fingerprint(model) -> torch.Tensor:
    """UNet output on a fixed input: tells which LoRA weights are live in the model."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 8, 8, generator=generator)
    context = torch.randn(1, 77, 32, generator=generator)
    return model.unet(x, torch.tensor([500]), context=context).clone()


def gray_images(n: int) -> list[Image.Image]:
    return [Image.fromarray(np.full((64, 64, 3), 128, np.uint8)) for _ in range(n)]
