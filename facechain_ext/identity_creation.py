"""Create an identity from photos (and delete one): the ONE service the tab, the HTTP routes and the CLI call.

Steps: check the request (name valid and free, at least one photo, no job using the identity, a safe `--out`) before
any face work → prepare the photos with the same options everywhere (`prep.options_for`: phrase, trigger, head mask
when the parsing model is installed unless the caller says otherwise) → store the identity (or, for the CLI's
`--out DIR`, publish the folder there). Surfaces only translate their inputs (uploaded files, base64, paths) into
`(label, source)` pairs and render the result.

Rules (data safety): an identity with a queued or running job (a training) is never overwritten or deleted:
`job_running` (409) naming the job, checked again under the store lock at the moment of the change. `--out DIR` is
only ever replaced when DIR is a FaceChain identity folder (`identities.is_identity_folder`) holding nothing but what
FaceChain wrote (`identities.foreign_entries`), never when it holds one of the input photos, never through a symbolic
link.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from .atomic import publish_dir
from .errors import FaceChainError
from .identities import build_identity_dir, foreign_entries, is_identity_folder, name_taken, now_iso, validate_name

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


def identity_subject(name: str) -> str:
    """The `jobs` subject of an identity (a training job declares it; see `JobQueue.require_idle`)."""
    return f"identity:{name}"


def identity_guard(ctx: Any, name: str, action: str) -> Callable[[], None]:
    """A store guard that refuses (`job_running`) while a job uses the identity."""
    return lambda: ctx.jobs.require_idle(identity_subject(name), action)


def delete_identity(ctx: Any, name: str) -> None:
    """Delete an identity unless a job uses it (tab and route)."""
    ctx.identities.delete(name, guard=identity_guard(ctx, name, f"delete identity {name!r}"))


def check_request(ctx: Any, request: IdentityFromPhotos) -> str:
    """The validated name; FaceChainError (invalid_name, invalid_request, name_taken, job_running) before photo work."""
    name = validate_name(request.name)
    if not request.photos:
        raise FaceChainError("invalid_request", "No photos were given: upload at least one photo of the person.")
    if request.out_dir is not None:
        check_out_dir(out_path(request.out_dir), request.overwrite, [label for label, _ in request.photos],
                      [source for _, source in request.photos])
    elif ctx.identities.exists(name):
        if not request.overwrite:
            raise name_taken(name)
        identity_guard(ctx, name, f"overwrite identity {name!r}")()  # early answer; checked again when storing
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
        target = _publish_to_folder(Path(request.out_dir), name, report, request.overwrite, request.photos)
        return CreatedIdentity(name, target, report, None)
    guard = identity_guard(ctx, name, f"overwrite identity {name!r}")
    identity = ctx.identities.create(name, report, overwrite=request.overwrite, guard=guard)
    return CreatedIdentity(name, identity.dir, report, identity)


def out_path(out_dir: Path | str) -> Path:
    """Absolute, with symlinks NOT resolved: the path the user named is the one that is checked and written."""
    return Path(os.path.abspath(os.path.expanduser(str(out_dir))))


def check_out_dir(target: Path, overwrite: bool, labels: Sequence[str] = (), sources: Sequence[Any] = ()) -> None:
    """Refuse an `--out` folder FaceChain must not write: a symlink, a file, a folder holding an input photo, and
    (with --overwrite) any non-empty folder that is not a FaceChain identity folder."""
    if target.is_symlink():
        raise FaceChainError("invalid_request", f"--out {target} is a symbolic link; give a real folder.", path=str(target))
    if target.exists() and not target.is_dir():
        raise FaceChainError("invalid_request", f"--out {target} is a file; give a folder.", path=str(target))
    for label, source in zip(labels, sources, strict=False):
        if isinstance(source, (str, os.PathLike)) and _inside(Path(source), target):
            raise FaceChainError("invalid_request", f"--out {target} contains the input photo {label}; choose a "
                                 "folder outside the photos.", path=str(target), photo=str(label))
    if not target.exists() or not any(target.iterdir()):
        return
    if not overwrite:
        raise FaceChainError("name_taken", f"{target} exists and is not empty; use --overwrite.", path=str(target))
    if not is_identity_folder(target):
        raise FaceChainError("invalid_request", f"--out {target} is not a FaceChain identity folder (no identity.json "
                             "of ours); --overwrite only replaces those. Choose an empty or new folder.", path=str(target))
    foreign = foreign_entries(target)
    if foreign:  # the swap replaces the whole folder: these would be lost
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise FaceChainError("invalid_request", f"--out {target} holds files FaceChain did not write ({shown}); "
                             "--overwrite would delete them. Move them out or choose another folder.",
                             path=str(target), entries=foreign[:20])


def _inside(path: Path, folder: Path) -> bool:
    """`path` is `folder` or below it, compared both as written and with symlinks resolved."""
    for candidate in {out_path(path), Path(os.path.realpath(path))}:
        for root in {folder, Path(os.path.realpath(folder))}:
            if candidate == root or root in candidate.parents:
                return True
    return False


def _publish_to_folder(out_dir: Path, name: str, report: PreparationReport, overwrite: bool, photos: Sequence) -> Path:
    target = out_path(out_dir)
    labels, sources = [label for label, _ in photos], [source for _, source in photos]
    check_out_dir(target, overwrite, labels, sources)  # again: the folder may have changed during the photo work
    publish_dir(target, lambda tmp: build_identity_dir(tmp, name, report, now_iso()), overwrite=True)
    return target
