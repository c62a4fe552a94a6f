"""Nothing lost: an identity a job uses is never deleted or overwritten (API 409, tab message, store guard), and the
CLI's `--out DIR --overwrite` only ever replaces a FaceChain identity folder (never one holding an input, never
through a symlink)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from test_webui_api_faces import AUTH, V1, start

from facechain_ext.config import Settings
from facechain_ext.context import FaceChainContext
from facechain_ext.errors import FaceChainError
from facechain_ext.identity_creation import (
    IdentityFromPhotos,
    check_request,
    delete_identity,
    identity_subject,
    out_path,
)

META = {"version": 1, "created": "2024-01-01T00:00:00+00:00", "trigger": "fcsks", "phrase": "a person",
        "backend": "dlib", "photo_count": 1, "loras": []}


def stored_identity(root: Path, name: str) -> Path:
    folder = root / name
    (folder / "photos").mkdir(parents=True)
    (folder / "photos" / "01.txt").write_text("fcsks, a person\n")
    (folder / "identity.json").write_text(json.dumps({**META, "name": name}))
    return folder


def blocking_job(ctx: FaceChainContext, name: str) -> tuple[object, threading.Event]:
    release = threading.Event()
    job = ctx.jobs.submit("train", lambda handle: release.wait(30) and {}, subjects=[identity_subject(name)])
    return job, release


@pytest.fixture
def ctx(tmp_path: Path) -> FaceChainContext:
    return FaceChainContext(Settings(models_dir=tmp_path / "models", face_backend="dlib"))


def test_an_identity_with_a_running_job_cannot_be_deleted_or_overwritten(ctx):
    folder = stored_identity(ctx.settings.identities_dir, "alice")
    before = sorted(p.name for p in folder.rglob("*"))
    job, release = blocking_job(ctx, "alice")
    try:
        with pytest.raises(FaceChainError) as err:
            delete_identity(ctx, "alice")
        assert err.value.code == "job_running" and err.value.http_status == 409
        assert err.value.context["job_id"] == job.id and job.id in err.value.message
        with pytest.raises(FaceChainError) as err:  # refused before any photo work
            check_request(ctx, IdentityFromPhotos(name="alice", photos=[("x.jpg", b"")], overwrite=True))
        assert err.value.code == "job_running" and err.value.context["job_id"] == job.id
        with pytest.raises(FaceChainError):  # the store's guard: checked again at the moment of the change
            ctx.identities.create("alice", report=None, overwrite=True,  # type: ignore[arg-type]
                                  guard=lambda: ctx.jobs.require_idle(identity_subject("alice"), "overwrite"))
        assert sorted(p.name for p in folder.rglob("*")) == before
    finally:
        release.set()
    ctx.jobs.wait(job.id, 30)
    delete_identity(ctx, "alice")  # the job is over: allowed
    assert not folder.exists() and os.listdir(ctx.settings.identities_dir) == []
    ctx.jobs.shutdown()


def test_the_route_and_the_tab_answer_job_running(fake_host, tmp_path):
    client, extension = start(fake_host, tmp_path, ["--api", "--api-auth", f"{AUTH[0]}:{AUTH[1]}"])
    client.auth = AUTH
    ctx = extension.ctx
    stored_identity(ctx.settings.identities_dir, "alice")
    job, release = blocking_job(ctx, "alice")
    try:
        answer = client.delete(f"{V1}/identities/alice")
        assert answer.status_code == 409
        detail = answer.json()["detail"]
        assert detail["code"] == "job_running" and detail["context"]["job_id"] == job.id
        answer = client.post(f"{V1}/identities", json={"name": "alice", "images": ["aGVsbG8="], "overwrite": True})
        assert answer.status_code == 409 and answer.json()["detail"]["code"] == "job_running"
        from facechain_ext.webui.tab_identities import IdentityHandlers

        message = IdentityHandlers(ctx).delete("alice")[0]
        assert "job_running" in message and job.id in message
        assert client.get(f"{V1}/identities/alice").status_code == 200
    finally:
        release.set()
        ctx.jobs.wait(job.id, 30)
    assert client.delete(f"{V1}/identities/alice").status_code == 200


def out_request(out: Path, photos: list[Path], overwrite: bool = True) -> IdentityFromPhotos:
    return IdentityFromPhotos(name="solo", photos=[(str(p), p) for p in photos], overwrite=overwrite, out_dir=out)


def test_out_overwrite_never_replaces_a_folder_that_is_not_ours(ctx, tmp_path):
    photo = tmp_path / "photos" / "me.jpg"
    photo.parent.mkdir()
    photo.write_bytes(b"jpeg")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.txt").write_text("years of work")
    with pytest.raises(FaceChainError) as err:
        check_request(ctx, out_request(notes, [photo]))
    assert err.value.code == "invalid_request" and "not a FaceChain identity folder" in err.value.message
    with pytest.raises(FaceChainError) as err:  # the photos' own folder
        check_request(ctx, out_request(photo.parent, [photo]))
    assert err.value.code == "invalid_request" and "contains the input photo" in err.value.message
    assert (notes / "thesis.txt").read_text() == "years of work" and photo.read_bytes() == b"jpeg"


def test_out_overwrite_refuses_an_identity_folder_holding_an_input_and_symlinks(ctx, tmp_path):
    ours = stored_identity(tmp_path, "dataset")
    inside = ours / "photos" / "01.png"
    inside.write_bytes(b"png")
    with pytest.raises(FaceChainError) as err:
        check_request(ctx, out_request(ours, [inside]))
    assert "contains the input photo" in err.value.message
    link = tmp_path / "link"
    link.symlink_to(ours, target_is_directory=True)
    with pytest.raises(FaceChainError) as err:
        check_request(ctx, out_request(link, [tmp_path / "elsewhere.jpg"]))
    assert "symbolic link" in err.value.message and (ours / "identity.json").is_file()
    via_link = tmp_path / "photos_link"
    via_link.symlink_to(ours, target_is_directory=True)
    with pytest.raises(FaceChainError):  # the input named through a symlink still lies inside the folder
        check_request(ctx, out_request(ours, [via_link / "photos" / "01.png"]))
    assert out_path(link) == tmp_path / "link"  # never resolved
    check_request(ctx, out_request(ours, [tmp_path / "elsewhere.jpg"]))  # ours, no input inside: may be replaced
    with pytest.raises(FaceChainError) as err:
        check_request(ctx, out_request(ours, [tmp_path / "elsewhere.jpg"], overwrite=False))
    assert err.value.code == "name_taken"


def test_out_overwrite_refuses_an_identity_folder_holding_files_we_did_not_write(ctx, tmp_path):
    """A user's own file or folder put into an identity folder would be deleted by the swap: refuse, name it."""
    ours = stored_identity(tmp_path, "dataset")
    (ours / "photos" / "01.png").write_bytes(b"png")
    (ours / "embeddings_dlib.npy").write_bytes(b"npy")
    check_request(ctx, out_request(ours, [tmp_path / "elsewhere.jpg"]))  # only our layout: may be replaced
    (ours / "originals").mkdir()
    (ours / "originals" / "raw.jpg").write_bytes(b"raw")
    with pytest.raises(FaceChainError) as err:
        check_request(ctx, out_request(ours, [tmp_path / "elsewhere.jpg"]))
    assert err.value.code == "invalid_request" and "originals" in err.value.message
    (ours / "originals" / "raw.jpg").unlink()
    (ours / "originals").rmdir()
    (ours / "photos" / "notes.md").write_text("mine")
    with pytest.raises(FaceChainError) as err:
        check_request(ctx, out_request(ours, [tmp_path / "elsewhere.jpg"]))
    assert "photos/notes.md" in err.value.message and (ours / "photos" / "notes.md").read_text() == "mine"
