"""FACT's face input: an aligned 112x112 face, black outside the head, normalised to [-1, 1]; photo choice.

FaceChain (modelscope/facechain face_adapter/face_adapter_v1.py `face_image_preprocess`): multiply the photo by a
head mask (face ∪ hair from a human-parsing model, dilated), detect the 5 keypoints, warp onto the ArcFace 112x112
template with a black border (face_preprocess.py, `borderValue=0`), then `(x / 255 - 0.5) / 0.5` on RGB.
We reuse the extension's pieces: `faces.align` (same template, least-squares similarity) and the optional BiSeNet
head masker of `prep` (no parser installed -> the background stays and the result says "no head mask").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import FaceChainError
from ..faces.align import align_face
from ..faces.types import Face
from ..identities import REPORT_FILE
from ..prep.headmask import HeadMasker, clean_mask

FACE_SIZE = 112
MAX_PHOTOS = 4  # FACT concatenates 16 tokens per photo; 1-4 photos (our bound: attention cost and VRAM)
DEFAULT_PHOTOS = 1  # FaceChain's app feeds the one photo the user gave
NO_HEAD_MASK = "no head mask: the face-parsing model is not installed, the background around the face was kept"


@dataclass(frozen=True)
class AlignedFace:
    """pixels: (112, 112, 3) uint8 RGB on the ArcFace template; head_mask: True when the background was blacked."""

    pixels: np.ndarray
    head_mask: bool


def faces_to_tensor(faces: Sequence[np.ndarray]) -> torch.Tensor:
    """(n, 3, 112, 112) float32 in [-1, 1] from n aligned (112, 112, 3) uint8 RGB faces: `(x / 255 - 0.5) / 0.5`."""
    if not faces:
        raise ValueError("no face images given")
    batch = np.stack([np.asarray(face) for face in faces])
    if batch.dtype != np.uint8 or batch.shape[1:] != (FACE_SIZE, FACE_SIZE, 3):
        raise ValueError(f"expected uint8 faces of shape (112, 112, 3), got {batch.dtype} {batch.shape[1:]}")
    pixels = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
    return (pixels / 255.0 - 0.5) / 0.5


def align_face_for_fact(image: Image.Image, face: Face, masker: HeadMasker | None = None) -> AlignedFace:
    """The face of `image` (RGB; `face` in its pixel coordinates) as FACT's encoder input.

    With a masker, pixels outside the cleaned head mask turn black before the warp (dilation radius ~ face size / 40,
    FaceChain's kernel of sqrt(face area) / 20 px); the warp's border is black as well.
    """
    rgb = image.convert("RGB")
    pixels = np.asarray(rgb).copy()
    masked = masker is not None
    if masker is not None:
        keep = clean_mask(masker.head_mask(rgb, face), dilate_px=max(1, round(face.long_side / 40)))
        pixels[~keep] = 0
    return AlignedFace(align_face(pixels, face.kps, size=FACE_SIZE, border_value=0), masked)


@dataclass(frozen=True)
class IdentityPhoto:
    """An accepted training crop of an identity: `name` relative to the identity folder, quality score, its face."""

    name: str
    path: Path
    score: float
    face: Face


def identity_photos(identity_dir: Path) -> list[IdentityPhoto]:
    """Accepted crops listed in the identity's report.json, best quality first (ties: by name)."""
    try:
        report = json.loads((identity_dir / REPORT_FILE).read_text(encoding="utf-8"))
        entries = [p for p in report.get("photos", []) if p.get("status") == "accepted" and p.get("crop") and p.get("face")]
        photos = [
            IdentityPhoto(
                name=str(p["crop"]),
                path=identity_dir / str(p["crop"]),
                score=float((p.get("quality") or {}).get("score", 0.0)),
                face=Face(
                    bbox=tuple(float(v) for v in p["face"]["bbox"]),  # type: ignore[arg-type]
                    score=float(p["face"].get("score", 1.0)),
                    kps=np.asarray(p["face"]["kps"], dtype=np.float32).reshape(5, 2),
                    backend=str(report.get("backend", "")),
                ),
            )
            for p in entries
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FaceChainError(
            "identity_broken", f"Identity folder {identity_dir}: {REPORT_FILE} is unusable ({exc}).", path=str(identity_dir)
        ) from exc
    return sorted(photos, key=lambda p: (-p.score, p.name))


def _matches(photo: IdentityPhoto, wanted: str) -> bool:
    return wanted in (photo.name, Path(photo.name).name, Path(photo.name).stem)


def choose_photos(identity_dir: Path, count: int = DEFAULT_PHOTOS, explicit: Sequence[str] | None = None) -> list[IdentityPhoto]:
    """The photos FACT uses for an identity: `explicit` names in the given order ("photos/03.png", "03.png" or "03"),
    else the `count` best by quality score. invalid_request for a bad count or an unknown name; no_usable_photos
    when the identity has no usable crop."""
    photos = identity_photos(identity_dir)
    if not photos:
        raise FaceChainError("no_usable_photos", f"Identity folder {identity_dir} has no accepted photo with a face.")
    if explicit:
        if len(explicit) > MAX_PHOTOS:
            raise FaceChainError("invalid_request", f"FACT takes at most {MAX_PHOTOS} photos, got {len(explicit)}.")
        chosen = []
        for wanted in explicit:
            match = next((p for p in photos if _matches(p, wanted)), None)
            if match is None:
                raise FaceChainError(
                    "invalid_request",
                    f"Photo {wanted!r} is not an accepted photo of this identity; choose from {[p.name for p in photos]}.",
                    photo=wanted,
                )
            chosen.append(match)
        return chosen
    if not 1 <= count <= MAX_PHOTOS:
        raise FaceChainError("invalid_request", f"FACT photo count must be 1-{MAX_PHOTOS}, got {count}.", count=count)
    return photos[:count]


def align_identity_photo(photo: IdentityPhoto, masker: HeadMasker | None = None) -> AlignedFace:
    """Load the crop and align it (its stored keypoints are in crop pixels; no detection needed)."""
    try:
        with Image.open(photo.path) as crop:
            return align_face_for_fact(crop, photo.face, masker)
    except OSError as exc:
        raise FaceChainError("identity_broken", f"Photo {photo.path} cannot be read ({exc}).", path=str(photo.path)) from exc
