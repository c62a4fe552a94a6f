"""Face tokens of an identity, cached in its folder so the next generation runs no encoder.

`<identity>/fact_tokens.safetensors`: one (16, 768) float32 tensor per photo, named `t_<photo sha256>_<m|n>`
(m = head-masked input, n = not), plus string metadata: cache version, the face-input version, the sha256 of the
encoder file and of the adapter file (the resampler lives in the adapter checkpoint), and which photo each tensor
belongs to. A different encoder/adapter file or input version empties the cache; a changed photo (new bytes) or a
newly installed face parser gives a new tensor name, so stale tokens are never used. Written atomically
(temp file + os.replace); a failed write only loses the cache, never the tokens of this call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..prep.headmask import HeadMasker
from .faceinput import DEFAULT_PHOTOS, NO_HEAD_MASK, IdentityPhoto, align_identity_photo, choose_photos
from .model import FactModel, concat_tokens

log = logging.getLogger(__name__)

TOKENS_FILE = "fact_tokens.safetensors"
CACHE_VERSION = "1"
INPUT_VERSION = "1"  # bump when the face input (alignment, masking, normalisation) changes


@dataclass
class IdentityTokens:
    """tokens: (1, 16 n, 768) in the model's dtype/device; photos: names in token order; computed: how many photos
    ran through the encoder in this call (0 = all from the cache); notes: e.g. the missing head mask."""

    tokens: torch.Tensor
    photos: list[str]
    computed: int
    head_mask: bool
    notes: list[str] = field(default_factory=list)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cache_header(model: FactModel) -> dict[str, str]:
    return {"facechain_fact_tokens": CACHE_VERSION, "input_version": INPUT_VERSION, **model.fingerprint()}


def read_cache(path: Path, header: dict[str, str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """({tensor name: (16, 768)}, {tensor name: photo name}) of a valid cache for `header`, else ({}, {})."""
    if not path.is_file():
        return {}, {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            meta = dict(handle.metadata() or {})
            if any(meta.get(key) != value for key, value in header.items()):
                return {}, {}
            owners = json.loads(meta.get("photos", "{}"))
            return {key: handle.get_tensor(key) for key in handle.keys() if key in owners}, owners
    except Exception as exc:  # noqa: BLE001 - a damaged cache is recomputed, whatever the parse error
        log.warning("FACT token cache %s is unreadable (%s); recomputing", path, exc)
        return {}, {}


def write_cache(path: Path, header: dict[str, str], tensors: dict[str, torch.Tensor], owners: dict[str, str]) -> None:
    """Atomically replace the cache file (temp file in the same folder + os.replace)."""
    from safetensors.torch import save_file

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    os.close(fd)
    try:
        data = {key: t.detach().to("cpu", torch.float32).contiguous() for key, t in tensors.items()}
        save_file(data, tmp, metadata={**header, "photos": json.dumps(owners, sort_keys=True)})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _tensor_name(photo: IdentityPhoto, masked: bool) -> str:
    return f"t_{_sha256(photo.path)}_{'m' if masked else 'n'}"


def tokens_for_photos(
    model: FactModel, identity_dir: Path, photos: Sequence[IdentityPhoto], masker: HeadMasker | None = None
) -> IdentityTokens:
    """Face tokens of `photos` (in order), from the cache where valid, else encoded and added to the cache."""
    path = Path(identity_dir) / TOKENS_FILE
    header = _cache_header(model)
    cached, owners = read_cache(path, header)
    names = [_tensor_name(photo, masker is not None) for photo in photos]
    missing = [(name, photo) for name, photo in zip(names, photos, strict=True) if name not in cached]
    if missing:
        faces = [align_identity_photo(photo, masker).pixels for _, photo in missing]
        fresh = model.photo_tokens(faces)
        stale = {photo.name for _, photo in missing}
        owners = {key: owner for key, owner in owners.items() if owner not in stale}  # one entry per photo name
        cached = {key: t for key, t in cached.items() if key in owners}
        for index, (name, photo) in enumerate(missing):
            cached[name], owners[name] = fresh[index], photo.name
        try:
            write_cache(path, header, cached, owners)
        except OSError as exc:
            log.warning("FACT token cache %s not written (%s)", path, exc)
    per_photo = torch.stack([cached[name] for name in names]).to(device=model.device, dtype=model.dtype)
    notes = [] if masker is not None else [NO_HEAD_MASK]
    return IdentityTokens(concat_tokens(per_photo), [p.name for p in photos], len(missing), masker is not None, notes)


def identity_tokens(
    model: FactModel,
    identity_dir: Path,
    *,
    count: int = DEFAULT_PHOTOS,
    explicit: Sequence[str] | None = None,
    masker: HeadMasker | None = None,
) -> IdentityTokens:
    """Choose the identity's photos (faceinput.choose_photos) and return their tokens (cached)."""
    return tokens_for_photos(model, Path(identity_dir), choose_photos(Path(identity_dir), count, explicit), masker)
