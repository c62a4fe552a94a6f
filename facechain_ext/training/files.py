"""The files a trained face LoRA leaves in the host's Lora folder, and how to find them again.

`<lora_dir>/FaceChain/<name>.safetensors` (kohya keys + `ss_*`/`facechain_*` metadata), `<name>.json` (the sidecar the
host's Lora card reads: activation text, preferred weight, sd version, description) and `<name>.png` (the card preview).
The set is published all-or-nothing (`atomic.publish_files`): the complete new set or the complete old one is visible,
also after a failure or a killed process; the `.safetensors` is swapped last, because the host reloads a network
whose file appears or changes (HOST_CONTRACT.md §8).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import struct
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from ..atomic import clean_folder, publish_dir, publish_files
from ..errors import FaceChainError

log = logging.getLogger(__name__)

PREFERRED_WEIGHT = 0.9
SaveFn = Callable[[Path, dict, dict], None]  # save_lora(path, state_dict, metadata)


@dataclasses.dataclass
class TrainingFacts:
    """What the published files say about a training run."""

    identity: Any  # identities.Identity
    config: Any  # lora.config.TrainConfig
    photo_count: int
    model_name: str
    validation: list[dict[str, Any]]  # validation.ValidationOutcome.validation

    @property
    def steps(self) -> int:
        return self.config.total_steps(self.photo_count)

    @property
    def chosen(self) -> dict[str, Any] | None:
        return next((v for v in self.validation if v.get("chosen")), None)


def lora_metadata(name: str, facts: TrainingFacts, state_dict: dict) -> dict[str, str]:
    """The kohya `ss_*` header (what the host's Lora tab reads) plus FaceChain's identity, trigger and version."""
    from .. import __version__
    from ..lora.io import kohya_metadata

    identity = facts.identity
    metadata = kohya_metadata(
        facts.config, output_name=name, sd_model_name=facts.model_name, num_train_images=facts.photo_count,
        steps=facts.steps, extra={"identity": identity.name, "trigger": identity.trigger, "version": __version__},
    )
    comment = f"FaceChain face LoRA of identity '{identity.name}', trained on {facts.photo_count} photos"
    chosen = facts.chosen
    if chosen is not None:
        comment += f"; saved snapshot step {chosen['step']}"
        comment += f" (face similarity {chosen['score']:.3f})" if chosen["score"] is not None else ""
    metadata["ss_training_comment"] = comment
    # An average of k snapshots has rank k·r (factors concatenated): the header must describe what the file holds.
    down = next((v for k, v in state_dict.items() if k.endswith(".lora_down.weight")), None)
    alpha = next((v for k, v in state_dict.items() if k.endswith(".alpha")), None)
    if down is not None:
        metadata["ss_network_dim"] = str(int(down.shape[0]))
    if alpha is not None:
        metadata["ss_network_alpha"] = f"{float(alpha):g}"
    return metadata


def lora_sidecar(facts: TrainingFacts) -> dict[str, Any]:
    """`<name>.json` as the host's Lora card (ui_edit_user_metadata) reads and writes it."""
    identity = facts.identity
    description = (
        f"FaceChain digital twin of {identity.name}: {facts.photo_count} photos, {facts.steps} steps, "
        f"rank {facts.config.rank}."
    )
    chosen = facts.chosen
    if chosen is not None and chosen["score"] is not None:
        description += f" Best snapshot: step {chosen['step']}, face similarity {chosen['score']:.3f}."
    return {
        "activation text": identity.activation_text,
        "preferred weight": PREFERRED_WEIGHT,
        "sd version": "SD1",
        "description": description,
    }


def lora_record(name: str, path: Path, activation_text: str) -> dict[str, Any]:
    """The identity's record of a LoRA made for it ({name, path, sha256, created, prompt, weight})."""
    return {
        "name": name,
        "path": str(path),
        "sha256": sha256_file(path),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "prompt": lora_prompt(name, activation_text),
        "weight": PREFERRED_WEIGHT,
    }


def save_validation_images(folder: Path, outcome: Any) -> list[str]:
    """Keep the validation portraits in FaceChain's data folder (not the Lora folder) for the tab and the API.

    Fills each `outcome.validation[i]["images"]` with paths. The LoRA is already published at this point, so a
    failure here becomes a note for the user, not a failed job.
    """
    if not any(outcome.images.values()):
        return []
    paths: dict[int, list[str]] = {}

    def build(stage: Path) -> None:
        for entry in outcome.validation:
            for index, image in enumerate(outcome.images.get(entry["step"], [])):
                file_name = f"step{entry['step']:05d}_{index}.png"
                image.convert("RGB").save(stage / file_name, format="PNG")
                paths.setdefault(entry["step"], []).append(str(folder / file_name))

    try:
        publish_dir(folder, build, overwrite=True)  # a re-train under the same name replaces the old folder whole
        for entry in outcome.validation:
            entry["images"].extend(paths.get(entry["step"], []))
    except OSError as exc:
        log.warning("FaceChain: could not keep the validation images in %s: %s", folder, exc)
        return [f"The validation images could not be saved ({exc}); the LoRA itself is fine."]
    return []


def loss_summary(losses: Sequence[float]) -> dict[str, Any]:
    values = [float(v) for v in losses]
    if not values:
        return {"count": 0}
    window = max(1, len(values) // 10)  # averaged: single-step diffusion losses are very noisy
    return {
        "count": len(values),
        "first": round(sum(values[:window]) / window, 6),
        "last": round(sum(values[-window:]) / window, 6),
        "min": round(min(values), 6),
    }


def lora_prompt(name: str, activation_text: str, weight: float = PREFERRED_WEIGHT) -> str:
    """The snippet a user pastes into any prompt: the LoRA tag, then the words it was trained on."""
    tag = f"<lora:{name}:{weight:g}>"
    return f"{tag}, {activation_text}" if activation_text else tag


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_safetensors_metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` of a .safetensors header, read without loading tensors (8-byte length + JSON header)."""
    try:
        with open(path, "rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            if length > 100_000_000:
                raise ValueError("header too large")
            header = json.loads(fh.read(length))
    except (OSError, ValueError, struct.error) as exc:
        raise FaceChainError("unreadable_lora", f"{path.name}: not a readable .safetensors file ({exc}).", path=str(path)) from exc
    meta = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()}


def write_lora_set(
    folder: Path,
    name: str,
    *,
    state_dict: dict,
    metadata: dict[str, str],
    sidecar: dict[str, Any],
    preview: Image.Image | None,
    save_fn: SaveFn,
    check: Callable[[], Any] | None = None,
) -> Path:
    """Publish `<name>.png/.json/.safetensors` as ONE set (atomic.publish_files): afterwards either the complete new
    set is visible or, after any failure (also in `check`, run once the new files are in place), the complete old one
    (byte-identical). Without a preview an old `<name>.png` is removed with the set, so no old face shows on the card.
    The `.safetensors` goes last: the host reloads a network whose file appears or changes."""
    writers = {
        f"{name}.png": None if preview is None else (lambda temp: preview.convert("RGB").save(temp, format="PNG")),
        f"{name}.json": lambda temp: temp.write_text(json.dumps(sidecar, indent=4, ensure_ascii=False), encoding="utf-8"),
        f"{name}.safetensors": lambda temp: save_fn(temp, state_dict, metadata),
    }
    if preview is None and not (folder / f"{name}.png").exists():
        del writers[f"{name}.png"]
    return publish_files(folder, writers, check=check)[f"{name}.safetensors"]


def list_facechain_loras(folder: Path | None) -> list[dict[str, Any]]:
    """FaceChain-made LoRAs in `<lora_dir>/FaceChain`: those whose metadata names a FaceChain identity."""
    if folder is None or not folder.is_dir():
        return []
    clean_folder(folder)  # a set a killed training left half-swapped is put back before anyone reads it
    found = []
    for path in sorted(folder.glob("*.safetensors")):
        try:
            meta = read_safetensors_metadata(path)
        except FaceChainError as err:
            log.warning("FaceChain: skipping %s: %s", path, err.message)
            continue
        if "facechain_identity" not in meta:
            continue  # a user's own LoRA that happens to live in our folder
        found.append(_describe(path, meta))
    return found


def _describe(path: Path, meta: dict[str, str]) -> dict[str, Any]:
    name = path.stem
    sidecar = _read_sidecar(path.with_suffix(".json"))
    weight = float(sidecar.get("preferred weight") or PREFERRED_WEIGHT)
    activation = str(sidecar.get("activation text") or meta.get("facechain_trigger", ""))
    return {
        "name": name,
        "identity": meta.get("facechain_identity"),
        "path": str(path),
        "sha256": sha256_file(path),
        "prompt": lora_prompt(name, activation, weight),
        "weight": weight,
        "rank": _int_or_none(meta.get("ss_network_dim")),
        "base_model": meta.get("ss_sd_model_name"),
        "preview": str(path.with_suffix(".png")) if path.with_suffix(".png").is_file() else None,
    }


def _read_sidecar(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
