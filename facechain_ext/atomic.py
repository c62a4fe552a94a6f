"""All-or-nothing writes: the one helper every FaceChain file, file set and folder write goes through.

A reader (the host's Lora scanner, the tab, another request) must never see half a file or a mixed set, and a failed
or killed write must leave the previous version complete. API:

- `atomic_write(target, write)`: one file. `write(temp)` fills a hidden temp file beside `target`, then
  `os.replace` (an atomic rename on one file system, POSIX rename(2) / Windows MoveFileEx) puts it in place.
- `publish_files(folder, writers, check=None)`: a SET of files (a LoRA's `.safetensors` + `.json` + `.png`, a
  model's files, a token cache and its index): either the complete new set is visible or the complete old one.
- `publish_dir(target, build, overwrite=..., check=None)`: a folder (an identity) built in a hidden staging sibling
  and swapped in.
- `Publication(folder)`: the engine under both, for callers that produce their temp files themselves (downloads):
  `with Publication(folder) as pub: t = pub.temp_path(name); ...write t...; pub.add(name, t); pub.commit(check)`.
  `pub.add(name, None)` removes `name` as part of the set.
- `clean_folder(folder)`: recovery; run by every publication before it starts and by stores when they open.

How a publication stays all-or-nothing: all new entries are written to temp names first; then a journal naming
every (final, temp, backup) is written atomically; each old entry is renamed to a hidden backup and the new one
renamed into place; `check()` runs (e.g. record the LoRA on its identity); deleting the journal is the commit point,
after which backups are deleted. Any failure before the commit point renames the backups back (rollback). If the
rollback itself fails or the process is killed, the journal is still there and the next `clean_folder` finishes
the rollback, so the old set comes back complete.

Our leftovers are recognisable: every name starts with TEMP_PREFIX followed by a 12-hex token, is hidden and ends
in a role suffix (.tmp, .bak, .stage, .journal, .lock), so no scanner looking for `*.safetensors`/`*.png` sees it.
A publication holds an OS file lock on `.facechain-<token>.lock` while it runs (fcntl.flock / msvcrt.locking,
released by the OS when a process dies), so `clean_folder` never touches a live publication; lock-free leftovers
(single-file temps) are removed once they are ORPHAN_AGE_S old.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

TEMP_PREFIX = ".facechain-"
ORPHAN_AGE_S = 300.0  # an unlocked leftover untouched this long belongs to a dead writer
SETUP_GRACE_S = 30.0  # a lock file this young may be between creation and locking
_OURS = re.compile(r"^\.facechain-(?P<token>[0-9a-f]{12})\.(?P<rest>.+)$")

Writer = Callable[[Path], Any]


def our_name(token: str, name: str, role: str) -> str:
    """`.facechain-<token>.<name>.<role>`: a hidden leftover name `clean_folder` recognises."""
    return f"{TEMP_PREFIX}{token}.{name}.{role}"


def new_token() -> str:
    return uuid.uuid4().hex[:12]


def remove_path(path: Path) -> None:
    """Delete a file, a symlink (never its target) or a folder tree; missing is fine."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def atomic_write(target: Path | str, write: Writer) -> Path:
    """`write(temp_path)` then `os.replace(temp_path, target)`; on any failure the temp file is removed and the old
    `target` (if any) is untouched. Returns `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(our_name(new_token(), target.name, "tmp"))
    try:
        write(temp)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return target


def write_text_atomic(target: Path | str, text: str) -> Path:
    return atomic_write(target, lambda temp: temp.write_text(text, encoding="utf-8"))


def write_json_atomic(target: Path | str, data: Any) -> Path:
    """UTF-8 JSON, 2-space indent, non-ASCII kept."""
    return write_text_atomic(target, json.dumps(data, indent=2, ensure_ascii=False))


# ---- OS file locks: held by a live publication, released by the OS when its process dies -----------------------
def _try_lock(fd: int) -> bool:
    try:
        if os.name == "nt":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _release(fd: int, path: Path) -> None:
    if os.name == "nt":  # Windows cannot delete an open file
        os.close(fd)
        path.unlink(missing_ok=True)
    else:  # delete while locked, so no cleaner can mistake the file for a dead owner's
        path.unlink(missing_ok=True)
        os.close(fd)


class Publication:
    """One all-or-nothing publish of named entries (files or folders) into `folder` (see the module doc)."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.token = new_token()
        self._entries: list[dict[str, Any]] = []
        self._temps: list[Path] = []
        self._fd: Optional[int] = None

    def __enter__(self) -> Publication:
        self.folder.mkdir(parents=True, exist_ok=True)
        clean_folder(self.folder)
        lock = self.folder / f"{TEMP_PREFIX}{self.token}.lock"
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            raise OSError(f"could not lock {lock}")
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        for temp in self._temps:  # after a commit the used ones are gone; after a failure all go
            remove_path(temp)
        if self._fd is not None:
            _release(self._fd, self.folder / f"{TEMP_PREFIX}{self.token}.lock")
            self._fd = None

    def temp_path(self, name: str) -> Path:
        """A hidden temp name for the new `name` (write a file there, or mkdir and fill a folder)."""
        temp = self.folder / our_name(self.token, name, "tmp")
        self._temps.append(temp)
        return temp

    def add(self, name: str, source: Optional[Path]) -> None:
        """Publish `source` (a complete temp in this folder) as `name`; None removes `name` as part of the set."""
        if Path(name).name != name or name in (".", ".."):
            raise ValueError(f"not a plain entry name: {name!r}")
        if source is not None and Path(source).parent != self.folder:
            raise ValueError(f"{source} is not in {self.folder}: a rename across folders is not atomic")
        self._entries.append({
            "final": name, "source": None if source is None else Path(source).name,
            "backup": our_name(self.token, name, "bak"), "had_old": os.path.lexists(self.folder / name),
        })

    def commit(self, check: Optional[Callable[[], Any]] = None) -> None:
        """Swap every entry in, run `check()`, commit; any exception rolls back to the old set and is re-raised."""
        journal = self.folder / f"{TEMP_PREFIX}{self.token}.journal"
        _write_journal(journal, self.folder / our_name(self.token, "journal", "tmp"), self._entries)
        try:
            for entry in self._entries:
                final = self.folder / entry["final"]
                if entry["had_old"]:
                    os.replace(final, self.folder / entry["backup"])
                if entry["source"] is not None:
                    os.replace(self.folder / entry["source"], final)
            if check is not None:
                check()
        except BaseException:
            try:
                rollback(self.folder, self._entries)
                journal.unlink(missing_ok=True)
            except OSError:
                pass  # the journal stays: the next clean_folder finishes the rollback
            raise
        journal.unlink()  # the commit point
        for entry in self._entries:
            remove_path(self.folder / entry["backup"])


def _write_journal(journal: Path, temp: Path, entries: list[dict[str, Any]]) -> None:
    try:
        temp.write_text(json.dumps({"pid": os.getpid(), "entries": entries}), encoding="utf-8")
        os.replace(temp, journal)
    finally:
        temp.unlink(missing_ok=True)


def rollback(folder: Path, entries: list[dict[str, Any]]) -> None:
    """Put every old entry back (newest first); raises OSError when a rename fails (the journal must stay)."""
    for entry in reversed(entries):
        final, backup = folder / entry["final"], folder / entry["backup"]
        if os.path.lexists(backup):
            if final.is_dir() and not final.is_symlink():  # os.replace cannot overwrite a non-empty folder
                discard = folder / our_name(_OURS.match(backup.name)["token"], entry["final"], "discard")
                os.replace(final, discard)
                remove_path(discard)
            os.replace(backup, final)
        elif not entry["had_old"] and entry["source"] is not None and not os.path.lexists(folder / entry["source"]):
            remove_path(final)  # the new entry was placed where nothing was before


def publish_files(folder: Path | str, writers: Mapping[str, Optional[Writer]], *, check: Optional[Callable[[], Any]] = None) -> dict[str, Path]:
    """Write a set of files all-or-nothing, in the mapping's order (put the file readers react to last).

    `writers[name](temp_path)` writes the new `name`; a None writer removes `name` as part of the set. Returns the
    final paths. Errors from a writer or from `check` propagate after the old set is back.
    """
    folder = Path(folder)
    with Publication(folder) as pub:
        for name, write in writers.items():
            if write is None:
                pub.add(name, None)
                continue
            temp = pub.temp_path(name)
            write(temp)
            pub.add(name, temp)
        pub.commit(check)
    return {name: folder / name for name in writers}


def publish_dir(target: Path | str, build: Writer, *, overwrite: bool, check: Optional[Callable[[], Any]] = None) -> Path:
    """Build a folder with `build(staging_folder)` and swap it in as `target`; FileExistsError if `target` exists and
    not `overwrite`. The old folder (if any) stays complete until the new one is in place, and comes back on failure."""
    target = Path(target)
    with Publication(target.parent) as pub:
        stage = pub.temp_path(target.name)
        stage.mkdir()
        os.chmod(stage, 0o755)  # an ordinary user folder, like the one it replaces
        build(stage)
        if os.path.lexists(target) and not overwrite:
            raise FileExistsError(str(target))
        pub.add(target.name, stage)
        pub.commit(check)
    return target


def clean_folder(folder: Path | str, *, now: Optional[float] = None) -> list[str]:
    """Finish or undo what dead writers left in `folder` (only our own names); returns the leftover names dealt with
    (rolled back or removed; lock files not listed)."""
    folder = Path(folder)
    groups: dict[str, list[str]] = {}
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    for name in names:
        match = _OURS.match(name)
        if match:
            groups.setdefault(match["token"], []).append(name)
    removed: list[str] = []
    for token, members in groups.items():
        removed.extend(_clean_token(folder, token, members, time.time() if now is None else now))
    return removed


def _clean_token(folder: Path, token: str, members: list[str], now: float) -> list[str]:
    lock = folder / f"{TEMP_PREFIX}{token}.lock"
    journal = folder / f"{TEMP_PREFIX}{token}.journal"
    fd: Optional[int] = None
    if lock.name in members:
        try:
            fd = os.open(lock, os.O_RDWR)
        except OSError:
            return []  # its owner just finished
        if not _try_lock(fd) or (os.fstat(fd).st_size == 0 and now - os.fstat(fd).st_mtime < SETUP_GRACE_S):
            os.close(fd)  # a live publication (or one that is just starting)
            return []
    elif journal.name not in members and any(now - _mtime(folder / name) < ORPHAN_AGE_S for name in members):
        return []  # possibly a single-file write in flight (a journal without its lock file: the owner is gone)
    try:
        if journal.is_file():
            entries = json.loads(journal.read_text(encoding="utf-8"))["entries"]
            rollback(folder, entries)  # an OSError here leaves everything for the next attempt
            journal.unlink()
        for name in members:
            if name != lock.name and os.path.lexists(folder / name):
                remove_path(folder / name)
        return [name for name in members if name != lock.name]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    finally:
        if fd is not None:
            _release(fd, lock)


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0
