"""Face fusion: pull a generated (or any) face toward a person's best photo, leaving the rest of the image alone.

    result = fuse_face(generated, best_photo, analyzer, strength=0.7)
    result.image, result.applied, result.reason   # reason "no_face" when the target has no face

Backends: `BlendFusion` (default, weight-free) and `InswapperFusion` (optional learned model); pick one with
`create_fusion_backend(settings, analyzer, "auto" | "blend" | "inswapper")`. An optional `restore` callable (the host's
face restoration, see `fusion.restore`) is applied to each fused face afterwards. Importing this package is cheap:
OpenCV and ONNX Runtime load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional, Protocol

import numpy as np
from PIL import Image

from ..errors import FaceChainError
from ..faces.backend import ImageLike, as_rgb_array
from ..faces.types import Face
from .result import NO_FACE, ZERO_STRENGTH, FusionResult

if TYPE_CHECKING:
    from ..config import Settings
    from ..faces.analyzer import FaceAnalyzer
    from .mask import FaceMask

__all__ = ["FusionBackend", "FusionResult", "create_fusion_backend", "fuse_face", "reference_face_of"]


class FusionBackend(Protocol):
    name: str

    def fuse_one(
        self, target: np.ndarray, target_face: Face, reference: np.ndarray, reference_face: Face
    ) -> tuple[np.ndarray, FaceMask]: ...


def fuse_face(
    target: ImageLike,
    reference: ImageLike,
    analyzer: FaceAnalyzer,
    *,
    strength: float = 0.7,
    target_face: Face | None = None,
    reference_face: Face | None = None,
    all_faces: bool = False,
    backend: FusionBackend | None = None,
    restore: Optional[Callable[[np.ndarray], np.ndarray]] = None,
    restore_visibility: float = 1.0,
) -> FusionResult:
    """Fuse the reference face into the largest face of `target` (every face with `all_faces`).

    `strength` 0 returns the target unchanged, 1 the fully fused face. A target without a face comes back unchanged
    with `applied=False, reason="no_face"`; a reference without a face raises FaceChainError("no_face").
    Pass `reference_face` (and `target_face`) when already known, to skip detection. `result.target_faces` holds
    the target's detected faces (fusion does not move them): pass them to `ranking.score_images(faces=...)`.
    `restore` (RGB uint8 array -> same, e.g. the host's `face_restoration.restore_faces`) is applied to each fused face
    only, mixed in by `restore_visibility` (0..1); a restorer that fails leaves the fused image as it was and sets
    `result.restore_error` (never raised: the fusion itself succeeded).
    """
    strength = _checked_strength(strength)
    from .restore import checked_visibility

    visibility = checked_visibility(restore_visibility)
    target_rgb = as_rgb_array(target, "target")
    if strength == 0.0:
        return FusionResult(Image.fromarray(target_rgb), applied=False, reason=ZERO_STRENGTH)
    reference_rgb = as_rgb_array(reference, "reference")
    ref_face = reference_face or reference_face_of(reference_rgb, analyzer)
    faces = [target_face] if target_face is not None else analyzer.detect(target_rgb, embed=False)
    if not faces:
        return FusionResult(Image.fromarray(target_rgb), applied=False, reason=NO_FACE, target_faces=[])
    chosen = faces if all_faces else faces[:1]
    engine = backend or _default_backend()
    result = _fuse_faces(target_rgb, chosen, reference_rgb, ref_face, engine, strength, (restore, visibility))
    result.target_faces = list(faces)
    return result


def reference_face_of(reference: ImageLike, analyzer: FaceAnalyzer, name: str = "reference") -> Face:
    """The largest face of the reference photo (searched upright, like every photo: `FaceAnalyzer.find_faces`), in
    its own pixels, or FaceChainError("no_face") naming it."""
    found = analyzer.find_faces(as_rgb_array(reference, name), embed=False)
    if found.best is None:
        raise FaceChainError(
            "no_face",
            f"{name}: no face found in the reference photo (also tried it turned by 90, 180 and 270 degrees), so "
            "there is nothing to fuse. Use a clear, frontal photo.",
            input=name,
        )
    return found.best


def create_fusion_backend(
    settings: Settings, analyzer: FaceAnalyzer, name: str = "auto", *, allow_learned: bool = False
) -> FusionBackend:
    """Pick the fusion backend ("auto" | "blend" | "inswapper"); see `fusion.backends`."""
    from .backends import select_backend

    return select_backend(settings, analyzer, name, allow_learned=allow_learned)


def _fuse_faces(
    target: np.ndarray,
    faces: list[Face],
    reference: np.ndarray,
    reference_face: Face,
    engine: FusionBackend,
    strength: float,
    restoration: tuple[Optional[Callable[[np.ndarray], np.ndarray]], float],
) -> FusionResult:
    from .composite import bounding_region, composite_into

    output = target.copy()
    written = np.zeros(target.shape[:2], bool)
    restored, restore_error = 0, None
    restore, visibility = restoration
    for face in faces:
        # Each face is fused against the current output so overlapping faces compose instead of fighting.
        fused_crop, mask = engine.fuse_one(output, face, reference, reference_face)
        fused_here = composite_into(output, fused_crop, mask, strength)
        written |= fused_here
        if restore is not None and restore_error is None and visibility > 0 and fused_here.any():
            restored, restore_error = _restore_one(output, mask, restore, visibility, written, restored)
    region = bounding_region(written)
    if region is None:  # every face lay outside the image or the reference covered none of it
        return FusionResult(Image.fromarray(target), applied=False, reason="face_out_of_frame", backend=engine.name)
    return FusionResult(
        Image.fromarray(output),
        applied=True,
        backend=engine.name,
        faces_fused=len(faces),
        mask=written,
        region=region,
        restored=restored > 0 and restore_error is None,
        restore_error=restore_error,
        details={"strength": strength, "restore_visibility": visibility if restore is not None else None},
    )


def _restore_one(
    output: np.ndarray, mask: FaceMask, restore: Callable[[np.ndarray], np.ndarray], visibility: float, written: np.ndarray,
    count: int,
) -> tuple[int, Optional[str]]:
    """Restore one fused face in `output` (in place; `written` updated). Returns (faces restored, error or None)."""
    from .restore import restore_face_region

    try:
        # `output` is written only once the restorer returned a valid image: a failure leaves the fused face as it was.
        written |= restore_face_region(output, mask, restore, visibility)
    except FaceChainError as exc:
        return count, exc.message
    except Exception as exc:  # noqa: BLE001 - the restorer is third-party code: keep the fused image, report why
        return count, f"{type(exc).__name__}: {exc}"
    return count + 1, None


def _default_backend() -> FusionBackend:
    from .blend import BlendFusion

    return BlendFusion()


def _checked_strength(strength: float) -> float:
    value = float(strength)
    if not 0.0 <= value <= 1.0:
        raise FaceChainError("invalid_request", f"The fusion strength {strength} is outside 0 to 1.", field="strength", value=strength)
    return value
