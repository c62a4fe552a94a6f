"""Shared set-up for the generation glue tests: a real identity prepared from ../shared/data with the dlib backend,
and the photos the fake host's sampler "generates" per seed (other people, the identity itself, no face)."""

from __future__ import annotations

from pathlib import Path

from facechain_ext.config import Settings
from facechain_ext.context import FaceChainContext

IDENTITY = "angelina"
TRAIN_PHOTOS = ("deepface_tests_img1.jpg", "deepface_tests_img2.jpg", "deepface_tests_img4.jpg")
HELD_OUT_PHOTO = "deepface_tests_img6.jpg"  # the identity, not used for preparation
LORA_NAME = "angelina_v1"
LORA_WEIGHT = 0.85
SEED = 100


def make_context(root: Path, data_dir: Path, styles_dirs: tuple[Path, ...] = ()) -> FaceChainContext:
    """A context with a prepared identity (3 real photos) that has one trained-LoRA record."""
    from facechain_ext.prep import PrepOptions, prepare_photos

    settings = Settings(models_dir=root / "models", face_backend="dlib", lora_dir=root / "Lora", styles_dirs=styles_dirs)
    ctx = FaceChainContext(settings)
    folder = data_dir / "faces" / "deepface_angelina"
    report = prepare_photos([(name, folder / name) for name in TRAIN_PHOTOS], ctx.analyzer(), PrepOptions())
    ctx.identities.create(IDENTITY, report)
    lora_path = root / "Lora" / "FaceChain" / f"{LORA_NAME}.safetensors"
    lora_path.parent.mkdir(parents=True, exist_ok=True)
    lora_path.write_bytes(b"placeholder: the fake host does not load LoRA weights, only FaceChain checks the file exists")
    ctx.identities.add_lora(IDENTITY, {"name": LORA_NAME, "path": str(lora_path), "sha256": "0" * 64, "weight": LORA_WEIGHT})
    return ctx


def sampler_photos(data_dir: Path) -> dict[int, Path]:
    """seed -> photo: SEED another person, SEED+1 no face, SEED+2 the identity (held out), SEED+3 another person."""
    faces = data_dir / "faces"
    return {
        SEED: faces / "deepface_p03" / "deepface_tests_img47.jpg",
        SEED + 1: data_dir / "edge" / "noface_blank_gray.jpg",
        SEED + 2: faces / "deepface_angelina" / HELD_OUT_PHOTO,
        SEED + 3: faces / "deepface_p05" / "deepface_tests_img61.jpg",
    }


def install_sampler(data_dir: Path):
    from modules import processing

    photos = sampler_photos(data_dir)
    processing.fake_sampler = processing.FakeSampler(list(photos.values()), overrides=photos)
    return processing.fake_sampler


def expected_pixels(path: Path, size: tuple[int, int] = (512, 512)):
    """What the fake sampler returns for `path` (the image as generated, before any FaceChain work)."""
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
        return np.asarray(ImageOps.fit(image, size, Image.LANCZOS, centering=(0.5, 0.4)))
