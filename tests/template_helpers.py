"""Shared set-up for the template tests: a real group photo as template, two identities prepared from real photos, and
a stand-in "checkpoint" for img2img inpainting that paints a real photo of the prompted identity into the face.

`IdentityPainter` is what `FakeSampler.sample_img2img` calls: it finds the LoRA of the pass in the parsed extra
networks, takes one of that identity's photos (chosen by seed, never its best photo), aligns it onto the face in the
host's "only masked" crop with the 5-keypoint similarity transform and blends it in by the denoising strength. So the
output inside the mask is real pixels of the right person, placed where the mask is, and differs per seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from facechain_ext.config import Settings
from facechain_ext.context import FaceChainContext
from facechain_ext.faces.align import similarity_matrix
from facechain_ext.imaging import load_image

TEMPLATE = "group_two_people.jpg"  # obama (left, face 0) and biden (right, face 1), 1024x601
# identity -> (faces/ folder, photos used to prepare it, photos the painter paints by seed, LoRA name)
IDENTITIES = {
    "angelina": ("deepface_angelina", ("deepface_tests_img1.jpg", "deepface_tests_img2.jpg", "deepface_tests_img4.jpg"),
                 ("deepface_tests_img6.jpg", "deepface_tests_img5.jpg", "deepface_tests_img7.jpg"), "angelina_v1"),
    "p02": ("deepface_p02", ("deepface_tests_img26.jpg", "deepface_tests_img27.jpg", "deepface_tests_img28.jpg"),
            ("deepface_tests_img42.jpg", "deepface_tests_img43.jpg", "deepface_tests_img44.jpg"), "p02_v1"),
}


def template_path(data_dir: Path) -> Path:
    return data_dir / "edge" / TEMPLATE


def make_template_context(root: Path, data_dir: Path) -> FaceChainContext:
    """A context with both identities prepared (dlib) and each given a LoRA record whose file exists."""
    from facechain_ext.prep import PrepOptions, prepare_photos

    ctx = FaceChainContext(Settings(models_dir=root / "models", face_backend="dlib", lora_dir=root / "Lora"))
    for name, (folder, train, _, lora) in IDENTITIES.items():
        photos = [(p, data_dir / "faces" / folder / p) for p in train]
        ctx.identities.create(name, prepare_photos(photos, ctx.analyzer(), PrepOptions()))
        path = root / "Lora" / "FaceChain" / f"{lora}.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"placeholder: the fake host does not load LoRA weights")
        ctx.identities.add_lora(name, {"name": lora, "path": str(path), "sha256": "0" * 64, "weight": 0.9})
    return ctx


class IdentityPainter:
    """`inpaint` callable for FakeSampler: paints the prompted identity's photo (by seed) into the crop's face."""

    def __init__(self, ctx: FaceChainContext, data_dir: Path) -> None:
        self.analyzer = ctx.analyzer()
        self.photos = {lora: [data_dir / "faces" / folder / p for p in paint]
                       for folder, _, paint, lora in IDENTITIES.values()}
        self._cache: dict[Path, tuple[np.ndarray, np.ndarray]] = {}
        self.painted: list[dict] = []

    def _photo(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        if path not in self._cache:
            pixels = np.asarray(load_image(path))
            self._cache[path] = (pixels, self.analyzer.detect(pixels, embed=False)[0].kps)
        return self._cache[path]

    def __call__(self, p, init_image: Image.Image, mask, seed: int, networks) -> Image.Image:
        import cv2

        names = [name for kind, name, _ in networks if kind == "lora" and name in self.photos]
        init = np.asarray(init_image.convert("RGB"))
        faces = self.analyzer.detect(init, embed=False)
        if not names or not faces:
            self.painted.append({"seed": seed, "lora": None})
            return init_image
        photo = self.photos[names[0]][int(seed) % len(self.photos[names[0]])]
        pixels, kps = self._photo(photo)
        matrix = similarity_matrix(kps, faces[0].kps)
        size = (init.shape[1], init.shape[0])
        warped = cv2.warpAffine(pixels, matrix, size, flags=cv2.INTER_LINEAR)
        valid = cv2.warpAffine(np.ones(pixels.shape[:2], np.float32), matrix, size)[:, :, None]
        weight = float(p.denoising_strength) * valid
        out = init.astype(np.float32) * (1 - weight) + warped.astype(np.float32) * weight
        from modules import shared

        self.painted.append({"seed": seed, "lora": names[0], "photo": photo.name, "job": shared.state.job,
                             "job_no": shared.state.job_no, "job_count": shared.state.job_count})
        return Image.fromarray(np.clip(np.round(out), 0, 255).astype(np.uint8))


def install_painter(ctx: FaceChainContext, data_dir: Path) -> IdentityPainter:
    from modules import processing

    painter = IdentityPainter(ctx, data_dir)
    processing.fake_sampler = processing.FakeSampler([template_path(data_dir)], inpaint=painter)
    return painter
