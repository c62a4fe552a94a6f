"""Create an identity from photos: the ONE service the tab, the HTTP route and the CLI call.

Steps: check the request (name valid and free, at least one photo) before any face work → prepare the photos with
the same options everywhere (`prep.options_for`: phrase, trigger, head mask when the parsing model is installed
unless the caller says otherwise) → store the identity (or, for the CLI's `--out DIR`, publish the folder there).
Surfaces only translate their inputs (uploaded files, base64, paths) into `(label, source)` pairs and render the result.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from .errors import FaceChainError
from .identities import build_identity_dir, name_taken, now_iso, publish_dir, validate_name

if TYPE_CHECKING:
    from .identities import Identity
    from .prep.report import PreparationReport


@dataclasses.dataclass(frozen=True)
class IdentityFromPhotos:
    """What a user asks for. `photos`: (label used in messages, path | bytes | PIL image), in the user's order."""

    name: str
    photos: Sequence[tuple[str, Any]]
    overwrite: bool = False
    phrase: Optional[str] = None  # caption class phrase; None: from the detected gender/age
    trigger: Optional[str] = None  # None: PrepOptions' default trigger word
    backend: Optional[str] = None  # face backend; None: the configured one
    head_mask: Optional[bool] = None  # None: mask when the parsing model is installed; True: require it; False: never
    out_dir: Optional[Path] = None  # write the identity folder here instead of the store (CLI --out)


@dataclasses.dataclass
class CreatedIdentity:
    name: str
    dir: Path
    report: PreparationReport  # the in-memory report (crops as images), for galleries
    identity: Optional[Identity]  # None when written to `out_dir`

    def stored_report(self) -> dict[str, Any]:
        """report.json as stored (crop paths relative to the identity folder)."""
        return json.loads((self.dir / "report.json").read_text(encoding="utf-8"))


def check_request(ctx: Any, request: IdentityFromPhotos) -> str:
    """The validated name; FaceChainError (invalid_name, invalid_request, name_taken) before any photo work."""
    name = validate_name(request.name)
    if not request.photos:
        raise FaceChainError("invalid_request", "No photos were given: upload at least one photo of the person.")
    if request.out_dir is not None:
        _check_out_dir(Path(request.out_dir).resolve(), request.overwrite)
    elif not request.overwrite and ctx.identities.exists(name):
        raise name_taken(name)
    return name


def create_identity_from_photos(
    ctx: Any, request: IdentityFromPhotos, *, progress: Callable[[int, int, str], None] | None = None
) -> CreatedIdentity:
    """Prepare `request.photos` and store the identity; see the module doc for the order of checks."""
    from .prep import options_for, prepare_photos

    name = check_request(ctx, request)
    analyzer = ctx.analyzer(request.backend)
    options = options_for(ctx.settings, phrase=request.phrase, head_mask=request.head_mask, trigger=request.trigger)
    report = prepare_photos(list(request.photos), analyzer, options, progress=progress)
    if request.out_dir is not None:
        target = _publish_to_folder(Path(request.out_dir), name, report, request.overwrite)
        return CreatedIdentity(name, target, report, None)
    identity = ctx.identities.create(name, report, overwrite=request.overwrite)
    return CreatedIdentity(name, identity.dir, report, identity)


def _check_out_dir(target: Path, overwrite: bool) -> None:
    if target.exists() and not target.is_dir():
        raise FaceChainError("invalid_request", f"--out {target} is a file; give a folder.", path=str(target))
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise FaceChainError("name_taken", f"{target} exists and is not empty; use --overwrite.", path=str(target))


def _publish_to_folder(out_dir: Path, name: str, report: PreparationReport, overwrite: bool) -> Path:
    target = out_dir.resolve()
    _check_out_dir(target, overwrite)  # again: the folder may have changed during the photo work
    publish_dir(target, lambda tmp: build_identity_dir(tmp, name, report, now_iso()), overwrite=True)
    return target
