"""The training service: an identity in, a face LoRA the whole webui can use out.

`train_identity` is what the tab, the API and the CLI call (through a job). It is host-free: the caller hands in a
`DiffusionModel` (the host's loaded checkpoint wrapped by `diffusion.ldm.LdmModel`, or diffusers components), a
`JobHandle` for progress/cancel, and optionally a function that renders validation portraits through the host.

Steps: check the request (identity exists and has photos, SD1 model, LoRA name free) → train (`lora.trainer.train_lora`, which
restores the model itself, also when cancelled) → pick the best snapshot by face similarity of validation portraits to
the identity's reference embedding → write the kohya file + sidecar + preview atomically → record the LoRA on the identity.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import FaceChainError
from ..names import check_name
from .files import (
    TrainingFacts,
    list_facechain_loras,
    lora_metadata,
    lora_record,
    lora_sidecar,
    loss_summary,
    save_validation_images,
    write_lora_set,
)
from .validation import ValidationOutcome, face_similarity, validate_snapshots

if TYPE_CHECKING:
    from PIL import Image

    from ..diffusion.base import DiffusionModel
    from ..jobs import JobHandle

log = logging.getLogger(__name__)

VALIDATION_SUFFIX = "portrait photo, upper body, looking at the camera, high detail face"
# Called with a snapshot attached to the model: renders one image per (prompt, seed), through the host's sampler.
RenderFn = Callable[[Sequence[str], Sequence[int]], "list[Image.Image]"]


@dataclasses.dataclass
class TrainRequest:
    """What a user may choose (API body, tab controls, CLI flags). None means: the preset's value."""

    identity: str
    lora_name: str | None = None
    preset: str = "fast"
    steps: int | None = None
    rank: int | None = None
    alpha: float | None = None
    learning_rate: float | None = None
    resolution: int | None = None
    seed: int | None = None
    snapshot_every: int | None = None  # keep LoRA weights every N steps for best-checkpoint selection
    overwrite: bool = False
    validation_images: int = 2  # portraits rendered per snapshot for best-checkpoint selection
    average_top_k: int = 1  # >1: save the average of the k best snapshots (EasyPhoto-style ensemble)

    @classmethod
    def coerce(cls, request: Any) -> TrainRequest:
        """Accept this dataclass, the API's pydantic model or a plain dict."""
        if isinstance(request, cls):
            return request
        data = request if isinstance(request, dict) else _model_dump(request)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names and v is not None})


def _model_dump(model: Any) -> dict:
    dump = getattr(model, "model_dump", None) or model.dict  # pydantic v2 / v1
    return dump()


def check_lora_name(name: str, folder: Path | None, overwrite: bool) -> Path:
    """Where the LoRA will go; `invalid_name`/`name_taken`/`host_unavailable` when it cannot go there."""
    check_name(name, "LoRA name", lora_name=name)
    if folder is None:
        raise FaceChainError("host_unavailable", "No Lora folder is configured (the host's --lora-dir), so there is nowhere to save.")
    target = folder / f"{name}.safetensors"
    if target.exists() and not overwrite:
        raise FaceChainError(
            "name_taken", f"A LoRA named {name!r} already exists in {folder}; choose another name or allow overwrite.",
            lora_name=name, path=str(target),
        )
    return target


def check_model(model: DiffusionModel) -> None:
    """Refuse what training cannot use: models outside SD1.x (the face-LoRA recipe's family, see diffusion.family),
    and half-precision weights on the CPU (torch has no half-precision matmul/conv on CPU; the webui itself needs
    --no-half there)."""
    from ..diffusion.family import require_family

    device, dtype = getattr(model, "device", None), getattr(model, "dtype", None)
    if getattr(device, "type", None) == "cpu" and str(dtype) in ("torch.float16", "torch.bfloat16"):
        raise FaceChainError(
            "unsupported_model",
            f"The loaded checkpoint is in half precision ({dtype}) on the CPU, which cannot compute in half "
            "precision; start the webui with --no-half (as it needs on a CPU anyway) and train again.",
        )
    require_family(model, ("sd1",), purpose="FaceChain face LoRAs")


def build_config(request: TrainRequest) -> Any:
    """The `lora.config.TrainConfig` for the preset, with the user's overrides on top (validated there: `invalid_request`)."""
    from ..lora.config import make_config

    return make_config(
        request.preset, steps=request.steps, rank=request.rank, alpha=request.alpha,
        learning_rate=request.learning_rate, resolution=request.resolution, seed=request.seed,
        snapshot_every=request.snapshot_every,
    )


def train_identity(
    ctx: Any,
    model: DiffusionModel,
    request: Any,
    handle: JobHandle,
    render_validation: RenderFn | None = None,
    *,
    model_name: str | None = None,
) -> dict[str, Any]:
    """Train a face LoRA for `request.identity` on `model` and publish it; returns the job result (see module doc)."""
    req = TrainRequest.coerce(request)
    identity = ctx.identities.get(req.identity)
    items = identity.training_items()
    if not items:
        raise FaceChainError("no_usable_photos", f"Identity {identity.name!r} has no prepared photos to train on.", identity=identity.name)
    check_model(model)
    lora_name = req.lora_name or identity.name
    folder = ctx.settings.facechain_lora_dir
    check_lora_name(lora_name, folder, req.overwrite)
    config = build_config(req)

    handle.progress(0, 1, f"Loading {len(items)} training photos of {identity.name}")
    images = _load_items(items)
    trained = _train(model, images, config, handle)
    outcome = _choose_snapshot(ctx, identity, model, trained, config, req, handle, render_validation)
    if handle.cancelled:
        raise FaceChainError("cancelled", "Training was cancelled before the LoRA was saved; nothing was written.")

    model_name = model_name or getattr(model, "checkpoint_name", None) or "unknown"
    facts = TrainingFacts(identity, config, len(images), model_name, outcome.validation)
    target = folder / f"{lora_name}.safetensors"
    recorded: dict[str, Any] = {}

    def record_on_identity() -> None:  # runs with the new set in place; a failure puts the old set back
        if handle.cancelled:
            raise FaceChainError("cancelled", "Training was cancelled before the LoRA was saved; nothing was changed.")
        recorded.update(lora_record(lora_name, target, identity.activation_text))
        ctx.identities.add_lora(identity.name, recorded)

    path = write_lora_set(
        folder, lora_name, state_dict=outcome.state_dict, metadata=lora_metadata(lora_name, facts, outcome.state_dict),
        sidecar=lora_sidecar(facts), preview=outcome.best_image or _photo(identity.best_photo_path), save_fn=_save_lora,
        check=record_on_identity,
    )
    record = recorded
    notes = outcome.notes + save_validation_images(ctx.settings.models_dir / "training" / lora_name, outcome)
    handle.progress(1, 1, f"Saved {path.name}")
    return {
        "lora": {key: record[key] for key in ("name", "path", "prompt", "sha256")},
        "validation": outcome.validation,
        "notes": notes,
        "losses": loss_summary(trained.losses),
        "steps": config.total_steps(len(images)),
        "identity": identity.name,
    }


def _load_items(items: Sequence[tuple[Path, str]]) -> list[tuple[Image.Image, str]]:
    from ..imaging import load_image

    return [(load_image(path, Path(path).name), caption) for path, caption in items]


def _photo(path: Path | None) -> Image.Image | None:
    if path is None or not Path(path).is_file():
        return None
    from ..imaging import load_image

    return load_image(path, Path(path).name)


def _train(model: DiffusionModel, images: list, config: Any, handle: JobHandle) -> Any:
    from ..lora.trainer import train_lora

    def on_step(info: Any) -> None:
        handle.progress(info.step, info.total, f"Training step {info.step}/{info.total}, loss {info.loss:.4f}")

    return train_lora(model, images, config, on_step=on_step, should_stop=lambda: handle.cancelled)


def _choose_snapshot(ctx, identity, model, trained, config, req, handle, render) -> ValidationOutcome:
    """Score every snapshot with validation portraits (when the caller can render) and return the chosen weights."""
    snapshots = list(trained.snapshots)
    if not snapshots:
        raise FaceChainError("internal_error", "The trainer returned no snapshot to save.")
    if render is None or req.validation_images <= 0:
        last = snapshots[-1]
        entry = {"step": last.step, "score": None, "image_scores": [], "faces": 0, "chosen": True, "images": []}
        return ValidationOutcome(last.state_dict, [entry], {}, None, ["No validation renders: kept the last snapshot."])
    analyzer = ctx.analyzer()
    reference = ctx.identities.reference_embedding(identity.name, analyzer)
    prompts = [f"{identity.activation_text}, {VALIDATION_SUFFIX}"] * req.validation_images
    seeds = [int(config.seed) + i for i in range(req.validation_images)]
    return validate_snapshots(
        snapshots, model, config, prompts, seeds, render,
        lambda image: face_similarity(image, analyzer, reference), handle, top_k=req.average_top_k,
    )


def _save_lora(path: Path, state_dict: dict, metadata: dict) -> None:
    from ..lora.io import save_lora

    save_lora(path, state_dict, metadata, atomic=False)  # `path` is already a temp of the LoRA set's publication


def facechain_loras(ctx: Any) -> list[dict[str, Any]]:
    """Every FaceChain-made LoRA in `<lora_dir>/FaceChain` (for the API and the tab)."""
    return list_facechain_loras(ctx.settings.facechain_lora_dir)
