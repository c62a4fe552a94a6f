"""Reading FACT's released weight files strictly: TransFace-S and the two adapter checkpoints (and our conversions).

What the files hold (modelscope/facechain face_adapter/face_adapter_v1.py; ModelScope yucheng1996/FaceChain-FACT v1.0.0):
- `ms1mv2_model_TransFace_S.pt`: a flat state dict loaded with `VisionTransformer.load_state_dict(...)` (strict), so
  its key set is exactly TransFace's: the backbone (`encoder.TransFaceViT`) plus the unused head (`HEAD_KEY_SHAPES`).
- `adapter_*_00290001.ckpt`: a flat dict (FaceChain iterates `weights.items()`, no wrapper); keys starting with
  `local_fac_prj.` are loaded strictly into the resampler, keys containing `processor` go into the diffusers UNet
  (`<block path>.attn2.processor.<param>`). Anything else in the file is ignored by FaceChain, and by us.

Pickled files are read with `torch.load(weights_only=True)` (no code is ever unpickled); `.safetensors` files
(`fact convert`) by safetensors. A file that does not match fails with `unsupported_model`, naming the file and the first
missing, misshaped or unexpected key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import FaceChainError
from .adapter import FactAdapter
from .encoder import HEAD_KEY_SHAPES, TransFaceViT
from .resampler import CHECKPOINT_PREFIX, Resampler
from .sites import PROCESSOR_INFIX

SAFETENSORS_SUFFIX = ".safetensors"


@dataclass(frozen=True)
class KeySpec:
    """What a checkpoint kind must hold.

    required: key -> shape, every one present with exactly that shape and a floating dtype.
    optional: known keys that may be present (shape-checked) and are not used.
    owns_all: every key of the file is ours (encoder); otherwise only `local_fac_prj.*` and `*.attn2.processor.*`
        keys are (adapter). An unknown key of ours is an error; keys not ours are ignored, as FaceChain ignores them.
    """

    kind: str
    required: Mapping[str, tuple[int, ...]]
    optional: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    owns_all: bool = True

    def owns(self, key: str) -> bool:
        return self.owns_all or key.startswith(CHECKPOINT_PREFIX) or PROCESSOR_INFIX in key


def encoder_spec() -> KeySpec:
    """TransFace-S: the backbone keys required, the recognition head optional (FACT does not run it)."""
    with torch.device("meta"):
        model = TransFaceViT()
    required = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    return KeySpec("TransFace-S face encoder", required, dict(HEAD_KEY_SHAPES), owns_all=True)


def adapter_spec() -> KeySpec:
    """FACT adapter checkpoint: 16 blocks x 19 processor keys + 51 `local_fac_prj.` resampler keys (355 keys)."""
    with torch.device("meta"):
        required = {**FactAdapter().checkpoint_shapes(), **Resampler().checkpoint_shapes()}
    return KeySpec("FACT adapter", required, owns_all=False)


def unsupported(path: Path, spec: KeySpec, reason: str, **context: Any) -> FaceChainError:
    return FaceChainError(
        "unsupported_model",
        f"{path.name} is not a {spec.kind} checkpoint: {reason}.",
        path=str(path),
        kind=spec.kind,
        **context,
    )


def check_shapes(path: Path, spec: KeySpec, shapes: Mapping[str, tuple[int, ...]], floating: Mapping[str, bool]) -> list[str]:
    """Validate a file's key -> shape table against `spec`; returns the keys that will be ignored (sorted).

    Raises `unsupported_model` at the first missing key (in spec order), then the first misshaped or non-float
    required key, then the first unexpected key of ours.
    """
    for key, expected in spec.required.items():
        if key not in shapes:
            raise unsupported(path, spec, f"key {key!r} is missing", key=key, expected=list(expected))
    for key, expected in {**spec.required, **spec.optional}.items():
        if key in shapes and tuple(shapes[key]) != tuple(expected):
            raise unsupported(
                path,
                spec,
                f"key {key!r} has shape {list(shapes[key])}, expected {list(expected)}",
                key=key,
                expected=list(expected),
                found=list(shapes[key]),
            )
        if key in spec.required and not floating.get(key, False):
            raise unsupported(path, spec, f"key {key!r} is not a floating-point tensor", key=key)
    known = set(spec.required) | set(spec.optional)
    for key in shapes:
        if key not in known and spec.owns(key):
            raise unsupported(path, spec, f"unexpected key {key!r}", key=key)
    return sorted(key for key in shapes if key not in spec.required)


def _load_pickle(path: Path) -> Any:
    try:
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):  # legacy (non-zip) files cannot be memory-mapped: read them normally
                raise
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types; all mean "not a weights file"
        raise FaceChainError(
            "unsupported_model",
            f"{path.name} cannot be read as a PyTorch weights file ({type(exc).__name__}: {exc}).",
            path=str(path),
        ) from exc


@dataclass
class CheckedState:
    """A validated checkpoint: the tensors FACT uses (`tensors`, spec order) and what was ignored."""

    path: Path
    kind: str
    tensors: dict[str, torch.Tensor]
    ignored: list[str]
    metadata: dict[str, str]


def _safetensors_float(dtype: str) -> bool:
    return dtype in {"F16", "BF16", "F32", "F64"}


def _load_safetensors(path: Path, spec: KeySpec) -> CheckedState:
    """Validate from the header first (no tensor read), then read only the tensors FACT uses."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            slices = {key: handle.get_slice(key) for key in handle.keys()}
            shapes = {key: tuple(s.get_shape()) for key, s in slices.items()}
            ignored = check_shapes(path, spec, shapes, {key: _safetensors_float(s.get_dtype()) for key, s in slices.items()})
            tensors = {key: handle.get_tensor(key) for key in spec.required}
            return CheckedState(path, spec.kind, tensors, ignored, dict(handle.metadata() or {}))
    except FaceChainError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise FaceChainError(
            "unsupported_model", f"{path.name} is not a readable safetensors file ({exc}).", path=str(path)
        ) from exc


def _load_pickled(path: Path, spec: KeySpec) -> CheckedState:
    state = _load_pickle(path)
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise FaceChainError(
            "unsupported_model",
            f"{path.name} is not a flat state dict of tensors (found {type(state).__name__}).",
            path=str(path),
        )
    shapes = {key: tuple(t.shape) for key, t in state.items()}
    ignored = check_shapes(path, spec, shapes, {key: t.is_floating_point() for key, t in state.items()})
    return CheckedState(path, spec.kind, {key: state[key] for key in spec.required}, ignored, {})


def require_file(path: Path) -> None:
    """model_missing when nothing is at `path`; unsupported_model when it is a folder, FIFO or device."""
    if not path.exists():
        raise FaceChainError("model_missing", f"Model file {path} does not exist.", path=str(path))
    if not path.is_file():
        raise FaceChainError("unsupported_model", f"{path} is not a file (a folder or a device); give the model file.",
                             path=str(path))


def read_key_names(path: Path) -> list[str]:
    """The keys of a `.safetensors` file (header only) or of a pickled state dict (memory-mapped load)."""
    path = Path(path)
    require_file(path)
    if path.suffix == SAFETENSORS_SUFFIX:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                return list(handle.keys())
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise FaceChainError(
                "unsupported_model", f"{path.name} is not a readable safetensors file ({exc}).", path=str(path)
            ) from exc
    state = _load_pickle(path)
    return [str(key) for key in state] if isinstance(state, Mapping) else []


def load_checked(path: Path, spec: KeySpec) -> CheckedState:
    """Read `path` (`.safetensors`, else a pickled state dict) and validate it against `spec` (see `check_shapes`)."""
    path = Path(path)
    require_file(path)
    if path.suffix == SAFETENSORS_SUFFIX:
        return _load_safetensors(path, spec)
    return _load_pickled(path, spec)


def load_encoder_state(path: Path) -> CheckedState:
    """The TransFace-S backbone tensors of `path` (the head keys, if present, are listed in `.ignored`)."""
    return load_checked(path, encoder_spec())


def load_adapter_state(path: Path) -> CheckedState:
    """The 304 adapter + 51 resampler tensors of a FACT adapter checkpoint (foreign keys listed in `.ignored`)."""
    return load_checked(path, adapter_spec())


def split_adapter_state(tensors: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(adapter keys as in the checkpoint, resampler keys without `local_fac_prj.`)."""
    adapter = {k: v for k, v in tensors.items() if not k.startswith(CHECKPOINT_PREFIX)}
    resampler = {k[len(CHECKPOINT_PREFIX) :]: v for k, v in tensors.items() if k.startswith(CHECKPOINT_PREFIX)}
    return adapter, resampler
