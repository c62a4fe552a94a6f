"""The store of digital twins: one folder per identity under `<models dir>/identities/<name>/`.

Layout of an identity folder (everything a trainer, the UI or a user with a file browser needs):
    identity.json               name, created, trigger, phrase, backend, photo_count, loras, ...
    report.json                 the preparation report (crop paths relative to the folder)
    photos/NN.png, NN.txt       512x512 training crops and their captions (kohya-style pairs)
    best.png                    the best crop: the reference for fusion and ranking
    embeddings_<backend>.npy    (N, D) identity embeddings of the crops, one file per face backend

Folders are built in a hidden staging sibling and swapped into place (`atomic.publish_dir`), so a reader never sees
half an identity, a failed write leaves nothing behind and a failed overwrite leaves the old identity complete.
Leftovers of a killed process are recovered when the store opens and before each write. One lock per store
serialises writers (web server threads); `create`/`delete` take a `guard` that may refuse the change under that lock
(an identity with a queued or running job cannot be replaced or deleted: `identity_creation.identity_guard`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import ORPHAN_AGE_S, Publication, atomic_write, clean_folder, publish_dir, remove_path, write_json_atomic
from .errors import FaceChainError
from .names import NAME, check_name

if TYPE_CHECKING:
    from .faces.analyzer import FaceAnalyzer
    from .prep.report import PreparationReport

log = logging.getLogger(__name__)

NAME_PATTERN = NAME  # kept for callers that list folders
IDENTITY_FILE = "identity.json"
REPORT_FILE = "report.json"
BEST_FILE = "best.png"
PHOTOS_DIR = "photos"
FORMAT_VERSION = 1
LEGACY_TRASH = re.compile(r"\.trash-(?P<name>[A-Za-z0-9_-]{1,64})-[0-9a-f]{32}")
LEGACY_TMP = re.compile(r"\.tmp-[A-Za-z0-9_-]{1,64}-[a-z0-9_]{8}")
# What `build_identity_dir` writes (plus atomic.py's hidden temp names): anything else in a folder is the user's.
LAYOUT_FILE = re.compile(
    r"(identity|report)\.json|best\.png|embeddings_[A-Za-z0-9_]+\.npy|fact_tokens\.safetensors|\.facechain-[0-9a-f]{12}\..+")
LAYOUT_PHOTO = re.compile(r"[0-9]{2,}\.(png|txt)|\.facechain-[0-9a-f]{12}\..+")


def validate_name(name: object) -> str:
    return check_name(name, "identity name")


def embeddings_file(backend: str) -> str:
    return f"embeddings_{backend}.npy"


@dataclass
class Identity:
    name: str
    created: str  # ISO 8601, UTC
    trigger: str
    phrase: str
    backend: str  # the face backend used for preparation
    photo_count: int
    dir: Path
    best_photo_path: Path | None
    loras: list[dict[str, Any]] = field(default_factory=list)  # {name, path, sha256, created, prompt, weight}

    @property
    def activation_text(self) -> str:
        """The caption the LoRA was trained on (`<trigger>, <phrase>`): put it in the prompt."""
        return f"{self.trigger}, {self.phrase}" if self.trigger else self.phrase

    def training_items(self) -> list[tuple[Path, str]]:
        """(crop path, caption) for every training photo, in order."""
        items = []
        for image in sorted((self.dir / PHOTOS_DIR).glob("*.png")):
            text_file = image.with_suffix(".txt")
            text = text_file.read_text(encoding="utf-8").strip() if text_file.is_file() else self.activation_text
            items.append((image, text))
        return items

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created": self.created,
            "trigger": self.trigger,
            "phrase": self.phrase,
            "activation_text": self.activation_text,
            "backend": self.backend,
            "photo_count": self.photo_count,
            "dir": str(self.dir),
            "best_photo_path": None if self.best_photo_path is None else str(self.best_photo_path),
            "loras": [dict(record) for record in self.loras],
        }


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    def write(temp: Path) -> None:
        with open(temp, "wb") as fh:  # a file object: np.save(path) would append ".npy" to the temp name
            np.save(fh, np.asarray(array, dtype=np.float32))

    atomic_write(path, write)


def build_identity_dir(folder: Path, name: str, report: PreparationReport, created: str) -> None:
    """Write an identity's files into the (empty, not yet published) `folder`."""
    accepted = [(i, p) for i, p in enumerate(report.photos) if p.accepted and p.crop is not None]
    if not accepted:
        raise FaceChainError("no_usable_photos", f"Identity {name}: the report has no accepted photo to store.", name=name)
    photos = folder / PHOTOS_DIR
    photos.mkdir(parents=True)
    crop_paths: dict[int, str] = {}
    for number, (index, photo) in enumerate(accepted, start=1):
        stem = f"{number:02d}"
        photo.crop.save(photos / f"{stem}.png")  # type: ignore[union-attr]
        (photos / f"{stem}.txt").write_text((photo.caption or report.caption) + "\n", encoding="utf-8")
        crop_paths[index] = f"{PHOTOS_DIR}/{stem}.png"
    best = report.best or accepted[0][1]
    best.crop.save(folder / BEST_FILE)  # type: ignore[union-attr]
    embeddings = [p.face.embedding for _, p in accepted if p.face is not None and p.face.embedding is not None]
    if len(embeddings) == len(accepted):
        save_npy_atomic(folder / embeddings_file(report.backend), np.stack(embeddings))
    write_json_atomic(folder / REPORT_FILE, {"name": name, **report.to_dict(crop_paths)})
    meta = {
        "version": FORMAT_VERSION,
        "name": name,
        "created": created,
        "trigger": report.trigger,
        "phrase": report.phrase,
        "backend": report.backend,
        "photo_count": len(accepted),
        "best_photo": BEST_FILE,
        "best_source": best.path,
        "resolution": report.resolution,
        "loras": [],
    }
    write_json_atomic(folder / IDENTITY_FILE, meta)


def is_identity_folder(folder: Path) -> bool:
    """A real folder (not a symlink) holding a readable FaceChain `identity.json` (our format: version, name, trigger,
    photo_count): the only kind of folder FaceChain ever replaces or deletes outside its own store."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    try:
        meta = json.loads((folder / IDENTITY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and {"version", "name", "trigger", "photo_count"} <= set(meta)


def foreign_entries(folder: Path) -> list[str]:
    """Entries of an identity folder that FaceChain did not write (`photos/x` for those in photos/), sorted; replacing
    the folder would delete them (atomic.publish_dir swaps the whole folder)."""
    foreign = []
    for entry in sorted(folder.iterdir()):
        if entry.name == PHOTOS_DIR and entry.is_dir() and not entry.is_symlink():
            foreign += [f"{PHOTOS_DIR}/{p.name}" for p in sorted(entry.iterdir())
                        if not (LAYOUT_PHOTO.fullmatch(p.name) and p.is_file() and not p.is_symlink())]
        elif not (LAYOUT_FILE.fullmatch(entry.name) and entry.is_file() and not entry.is_symlink()):
            foreign.append(entry.name)
    return foreign


def _check_deletable(folder: Path, name: str) -> None:
    """Delete only what FaceChain created: a real folder with our identity.json (readable or not: a broken identity is
    still ours) and nothing else a user put there. Anything else is refused, naming what would have been lost."""
    if folder.is_symlink() or not folder.is_dir() or not (folder / IDENTITY_FILE).is_file():
        raise FaceChainError("identity_not_found", f"{folder} is not a FaceChain identity folder (it has no "
                             f"{IDENTITY_FILE}); FaceChain deletes only folders it created.", name=name)
    foreign = foreign_entries(folder)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise FaceChainError("identity_has_user_files", f"Identity {name!r} holds files FaceChain did not write ({shown}); "
                             f"move them out of {folder} first, then delete again.", name=name, files=foreign)


def recover_legacy_leftovers(root: Path, *, now: float | None = None) -> None:
    """Older versions left `.trash-<name>-<hex>` (an overwrite whose final rename failed: the OLD identity) and
    `.tmp-<name>-<random>` staging folders. Put a lost identity back when its name is free; drop the rest."""
    now = time.time() if now is None else now
    try:
        entries = list(root.iterdir())
    except OSError:
        return
    for entry in entries:
        trash = LEGACY_TRASH.fullmatch(entry.name)
        if trash and entry.is_dir() and not entry.is_symlink():
            target = root / trash["name"]
            if not os.path.lexists(target) and is_identity_folder(entry):
                os.replace(entry, target)
                log.warning("identity %s: restored from an interrupted overwrite (%s)", trash["name"], entry.name)
            else:
                remove_path(entry)
        elif LEGACY_TMP.fullmatch(entry.name) and now - entry.lstat().st_mtime > ORPHAN_AGE_S:
            remove_path(entry)


def name_taken(name: str) -> FaceChainError:
    return FaceChainError(
        "name_taken", f"An identity named {name!r} already exists; choose another name or overwrite it.", name=name
    )


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def read_identity(folder: Path) -> Identity:
    """Load `folder/identity.json`; FaceChainError('identity_broken') when it is missing or malformed."""
    try:
        meta = json.loads((folder / IDENTITY_FILE).read_text(encoding="utf-8"))
        best = folder / meta.get("best_photo", BEST_FILE)
        return Identity(
            name=str(meta["name"]),
            created=str(meta["created"]),
            trigger=str(meta["trigger"]),
            phrase=str(meta["phrase"]),
            backend=str(meta["backend"]),
            photo_count=int(meta["photo_count"]),
            dir=folder,
            best_photo_path=best if best.is_file() else None,
            loras=list(meta.get("loras", [])),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FaceChainError(
            "identity_broken",
            f"Identity folder {folder} is damaged ({type(exc).__name__}: {exc}); delete it or prepare it again.",
            path=str(folder),
        ) from exc


class IdentityStore:
    """Create, read, list and delete identities under `root`; safe to share between web-server threads."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._lock = threading.RLock()
        self.recover()

    @property
    def lock(self) -> threading.RLock:
        """Held while the store changes; callers that must check something atomically with a change take it too."""
        return self._lock

    def recover(self) -> None:
        """Finish or undo writes a killed process left (our hidden names only); run at start and before each write."""
        with self._lock:
            if self.root.is_dir():
                clean_folder(self.root)
                recover_legacy_leftovers(self.root)

    def path(self, name: str) -> Path:
        return self.root / validate_name(name)

    def exists(self, name: str) -> bool:
        return self.path(name).is_dir()

    def create(
        self, name: str, report: PreparationReport, overwrite: bool = False, *, guard: Callable[[], None] | None = None
    ) -> Identity:
        """Store a prepared identity; `name_taken` if it exists and `overwrite` is false (LoRA records are not kept).

        `guard()` runs under the store lock right before an existing identity is replaced and may refuse by raising
        (e.g. `job_running`). The old folder stays complete until the new one is in place (atomic.publish_dir).
        """
        target = self.path(name)
        with self._lock:
            if os.path.lexists(target):
                if not overwrite:
                    raise name_taken(name)
                if guard is not None:
                    guard()
            publish_dir(target, lambda tmp: build_identity_dir(tmp, name, report, now_iso()), overwrite=True)
            log.info("stored identity %s (%d photos) in %s", name, len(report.accepted), target)
            return read_identity(target)

    def get(self, name: str) -> Identity:
        folder = self.path(name)
        with self._lock:
            if not folder.is_dir():
                raise FaceChainError("identity_not_found", f"No identity named {name!r} in {self.root}.", name=name)
            return read_identity(folder)

    def scan(self) -> tuple[list[Identity], dict[str, str]]:
        """(identities sorted by name, {folder name: why it is broken}); temporary folders are ignored."""
        identities: list[Identity] = []
        broken: dict[str, str] = {}
        with self._lock:
            if not self.root.is_dir():
                return identities, broken
            for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
                if not NAME_PATTERN.fullmatch(folder.name):
                    broken[folder.name] = "not a valid identity name"
                    continue
                try:
                    identities.append(read_identity(folder))
                except FaceChainError as err:
                    broken[folder.name] = err.message
        for name, reason in broken.items():
            log.warning("skipping identity folder %s: %s", name, reason)
        return identities, broken

    def list(self) -> list[Identity]:
        return self.scan()[0]

    def delete(self, name: str, *, guard: Callable[[], None] | None = None) -> None:
        """Remove an identity (also a broken one); `guard()` runs under the store lock first and may refuse.
        Refused (nothing removed) for a folder without our identity.json (`identity_not_found`) or one holding files
        FaceChain did not write (`identity_has_user_files`, 409).
        The folder disappears at once (one rename), then its files are removed; a symlink is removed, never followed."""
        folder = self.path(name)
        with self._lock:
            if not os.path.lexists(folder):
                raise FaceChainError("identity_not_found", f"No identity named {name!r} in {self.root}.", name=name)
            _check_deletable(folder, name)
            if guard is not None:
                guard()
            with Publication(self.root) as publication:
                publication.add(name, None)
                publication.commit()

    def report(self, name: str) -> dict[str, Any]:
        """The stored preparation report (crop paths relative to the identity folder)."""
        identity = self.get(name)
        try:
            return json.loads((identity.dir / REPORT_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FaceChainError("identity_broken", f"Identity {name!r}: report.json is unreadable ({exc}).", name=name) from exc

    def embeddings(self, name: str, analyzer: FaceAnalyzer) -> np.ndarray:
        """(N, D) embeddings of the identity's crops for `analyzer`'s backend, computed once and cached on disk."""
        with self._lock:
            identity = self.get(name)
            cache = identity.dir / embeddings_file(analyzer.name)
            if cache.is_file():
                try:
                    cached = np.load(cache)
                    if cached.ndim == 2 and cached.shape[0] > 0 and cached.shape[1] == analyzer.embedding_dim:
                        return cached
                except (OSError, ValueError):
                    pass
                log.warning("identity %s: %s is unusable; recomputing", name, cache.name)
            computed = self._embed_crops(identity, analyzer)
            save_npy_atomic(cache, computed)
            return computed

    def reference_embedding(self, name: str, analyzer: FaceAnalyzer) -> np.ndarray:
        """The identity's reference vector for `analyzer`'s backend: L2-normalised mean over its crops."""
        from .faces.similarity import mean_embedding

        return mean_embedding(self.embeddings(name, analyzer))

    @staticmethod
    def _embed_crops(identity: Identity, analyzer: FaceAnalyzer) -> np.ndarray:
        from PIL import Image

        vectors = []
        for path, _caption in identity.training_items():
            with Image.open(path) as crop:
                faces = analyzer.detect(crop.convert("RGB"))
            if faces and faces[0].embedding is not None:
                vectors.append(faces[0].embedding)
            else:
                log.warning("identity %s: no face found by %s in %s", identity.name, analyzer.name, path.name)
        if not vectors:
            raise FaceChainError(
                "no_face",
                f"Identity {identity.name!r}: the {analyzer.name} face backend finds no face in any of its crops.",
                name=identity.name,
                backend=analyzer.name,
            )
        return np.stack(vectors).astype(np.float32)

    def add_lora(self, name: str, record: dict[str, Any]) -> Identity:
        """Record a trained LoRA ({name, path, sha256, created, prompt, weight}); a record with the same name is replaced."""
        if not isinstance(record, dict) or not record.get("name") or not record.get("path"):
            raise FaceChainError("invalid_request", "A LoRA record needs at least 'name' and 'path'.", record=str(record))
        with self._lock:
            identity = self.get(name)
            meta_path = identity.dir / IDENTITY_FILE
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            loras = [r for r in meta.get("loras", []) if r.get("name") != record["name"]]
            loras.append({"created": now_iso(), **record})
            meta["loras"] = loras
            write_json_atomic(meta_path, meta)
            return read_identity(identity.dir)
