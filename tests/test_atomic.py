"""atomic.py: file sets and folders are published all-or-nothing, also when any single rename fails, when every rename
from some point on fails, and when the process is killed mid-publish; leftovers are ours only and never accumulate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facechain_ext import atomic
from facechain_ext.atomic import Publication, clean_folder, publish_dir, publish_files
from facechain_ext.identities import IdentityStore

REPO_ROOT = Path(__file__).resolve().parents[1]
OLD = {"a.png": b"old preview", "a.json": b'{"old": 1}', "a.safetensors": b"old weights"}
NEW = {"a.png": b"new preview", "a.json": b'{"new": 2}', "a.safetensors": b"new weights"}


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


def old_set(folder: Path, files: dict[str, bytes] = OLD) -> None:
    for path in folder.iterdir():
        atomic.remove_path(path)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def writers(new: dict[str, bytes | None]) -> dict:
    return {name: (None if data is None else (lambda temp, data=data: temp.write_bytes(data))) for name, data in new.items()}


class RenameFailures:
    """Counts os.replace/os.rename calls; fails call number `k` (or every call from `k` on when `persistent`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, k: int | None, persistent: bool = False) -> None:
        self.k, self.persistent, self.calls = k, persistent, 0
        self.real_replace, self.real_rename = os.replace, os.rename
        monkeypatch.setattr(os, "replace", self.wrap(self.real_replace))
        monkeypatch.setattr(os, "rename", self.wrap(self.real_rename))

    def wrap(self, real):
        def call(src, dst, *args, **kwargs):
            self.calls += 1
            if self.k is not None and (self.calls == self.k or (self.persistent and self.calls > self.k)):
                raise OSError(5, f"injected failure at rename {self.calls}")
            return real(src, dst, *args, **kwargs)

        return call


def steps_of(monkeypatch: pytest.MonkeyPatch, run) -> int:
    with monkeypatch.context() as patch:
        counter = RenameFailures(patch, None)
        run()
        return counter.calls


@pytest.mark.parametrize("new", [NEW, {**NEW, "a.png": None}], ids=["replace-all", "new-set-without-preview"])
def test_a_failure_at_every_rename_leaves_the_old_or_the_new_set_complete(tmp_path, monkeypatch, new):
    folder = tmp_path / "Lora"
    folder.mkdir()
    expected_new = {name: data for name, data in new.items() if data is not None}
    old_set(folder)
    total = steps_of(monkeypatch, lambda: publish_files(folder, writers(new)))
    assert contents(folder) == expected_new and total >= 5  # journal + (backup, replace) per file
    for persistent in (False, True):
        for k in range(1, total + 1):
            old_set(folder)
            with monkeypatch.context() as patch:
                RenameFailures(patch, k, persistent)
                with pytest.raises(OSError, match="injected"):
                    publish_files(folder, writers(new))
            if persistent:  # the rollback could not run: the next start or write finishes it
                clean_folder(folder)
            assert contents(folder) == OLD, (k, persistent)
            assert sorted(os.listdir(folder)) == sorted(OLD), (k, persistent)  # no temp, backup, journal or lock


def test_a_failing_check_puts_the_old_set_back_byte_identical(tmp_path):
    folder = tmp_path / "Lora"
    folder.mkdir()
    old_set(folder, {"a.json": b"old", "a.safetensors": b"old weights"})  # no old preview: the new one must go again

    def check() -> None:
        assert contents(folder) == NEW  # the check sees the complete new set in place
        raise RuntimeError("recording the LoRA on its identity failed")

    with pytest.raises(RuntimeError):
        publish_files(folder, writers(NEW), check=check)
    assert contents(folder) == {"a.json": b"old", "a.safetensors": b"old weights"}
    assert sorted(os.listdir(folder)) == ["a.json", "a.safetensors"]


def test_a_failure_at_every_rename_of_a_folder_swap_keeps_the_old_folder(tmp_path, monkeypatch):
    target = tmp_path / "identities" / "alice"
    target.mkdir(parents=True)

    def build(stage: Path) -> None:
        (stage / "identity.json").write_text('{"new": true}')

    def reset() -> None:
        atomic.remove_path(target)
        target.mkdir()
        (target / "identity.json").write_text('{"old": true}')

    reset()
    total = steps_of(monkeypatch, lambda: publish_dir(target, build, overwrite=True))
    assert (target / "identity.json").read_text() == '{"new": true}' and total == 3
    for persistent in (False, True):
        for k in range(1, total + 1):
            reset()
            with monkeypatch.context() as patch:
                RenameFailures(patch, k, persistent)
                with pytest.raises(OSError):
                    publish_dir(target, build, overwrite=True)
            if persistent:
                clean_folder(target.parent)
            assert (target / "identity.json").read_text() == '{"old": true}', (k, persistent)
            assert os.listdir(target.parent) == ["alice"], (k, persistent)


KILLED_PUBLISH = """
import os, sys
from pathlib import Path
from facechain_ext.atomic import publish_files
folder = Path(sys.argv[1])
new = {"a.png": b"new preview", "a.json": b'{"new": 2}', "a.safetensors": b"new weights"}
publish_files(folder, {n: (lambda t, d=d: t.write_bytes(d)) for n, d in new.items()}, check=lambda: os._exit(9))
"""


def test_a_process_killed_mid_publish_is_rolled_back_at_the_next_start(tmp_path):
    folder = tmp_path / "Lora"
    folder.mkdir()
    old_set(folder)
    proc = subprocess.run([sys.executable, "-c", KILLED_PUBLISH, str(folder)], cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 9
    assert (folder / "a.safetensors").read_bytes() == b"new weights"  # killed with the new set in, backups aside
    assert any(name.endswith(".journal") for name in os.listdir(folder))
    removed = clean_folder(folder)  # what the next start (FaceChainContext.recover_leftovers) or write runs
    assert contents(folder) == OLD and sorted(os.listdir(folder)) == sorted(OLD)
    assert removed and all(name.startswith(".facechain-") for name in removed)


def test_an_identity_overwrite_killed_mid_swap_comes_back_when_the_store_opens(tmp_path):
    root = tmp_path / "identities"
    (root / "alice").mkdir(parents=True)
    (root / "alice" / "identity.json").write_text('{"old": true}')
    script = ("import os, sys; from pathlib import Path; from facechain_ext.atomic import publish_dir; "
              "publish_dir(Path(sys.argv[1]), lambda s: (s / 'identity.json').write_text('{}'), overwrite=True, "
              "check=lambda: os._exit(9))")
    assert subprocess.run([sys.executable, "-c", script, str(root / "alice")], cwd=REPO_ROOT, timeout=120).returncode == 9
    assert (root / "alice" / "identity.json").read_text() == "{}" and len(os.listdir(root)) > 1
    IdentityStore(root)  # opening the store recovers
    assert os.listdir(root) == ["alice"] and (root / "alice" / "identity.json").read_text() == '{"old": true}'


def test_leftovers_are_removed_only_when_ours_and_not_in_use(tmp_path):
    folder = tmp_path / "Lora"
    folder.mkdir()
    stale = folder / ".facechain-0123456789ab.a.safetensors.tmp"  # a single-file write of a dead process
    fresh = folder / ".facechain-ba9876543210.b.safetensors.tmp"  # possibly being written right now
    after_commit = folder / ".facechain-00000000000a.c.safetensors.bak"  # killed between commit and backup removal
    (folder / ".facechain-00000000000a.lock").write_text("4242")  # its unlocked lock file (the owner died)
    foreign = [folder / ".facechain-notes.txt", folder / "user.tmp", folder / ".hidden.bak"]
    for path in [stale, fresh, after_commit, *foreign]:
        path.write_bytes(b"x")
    old = time.time() - atomic.ORPHAN_AGE_S - 60
    os.utime(stale, (old, old))
    removed = clean_folder(folder)
    assert sorted(removed) == sorted([stale.name, after_commit.name])
    assert fresh.exists() and all(path.exists() for path in foreign)
    assert not (folder / ".facechain-00000000000a.lock").exists()
    with Publication(folder) as live:  # another writer's publication in progress: never touched
        temp = live.temp_path("d.safetensors")
        temp.write_bytes(b"in progress")
        assert clean_folder(folder) == [] and temp.exists()
    assert not temp.exists() and not any(name.endswith(".lock") for name in os.listdir(folder))
    later = time.time() + atomic.ORPHAN_AGE_S + 60
    assert clean_folder(folder, now=later) == [fresh.name]  # stale by then: never accumulates


def test_legacy_trash_of_a_failed_overwrite_is_restored(tmp_path):
    root = tmp_path / "identities"
    lost = root / ".trash-alice-0123456789abcdef0123456789abcdef"
    lost.mkdir(parents=True)
    meta = {"version": 1, "name": "alice", "created": "2024-01-01T00:00:00+00:00", "trigger": "fcsks",
            "phrase": "a person", "backend": "dlib", "photo_count": 1}
    (lost / "identity.json").write_text(json.dumps(meta))
    store = IdentityStore(root)
    assert os.listdir(root) == ["alice"] and store.get("alice").photo_count == 1
