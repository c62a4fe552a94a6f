"""IdentityStore on a real preparation report (dlib): layout, round trip, names, atomic writes, embeddings, LoRA records."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facechain_ext import identities as identities_module
from facechain_ext.config import Settings
from facechain_ext.errors import FaceChainError
from facechain_ext.faces import create_analyzer
from facechain_ext.faces.analyzer import FaceAnalyzer
from facechain_ext.faces.similarity import mean_embedding
from facechain_ext.identities import IdentityStore
from facechain_ext.prep import prepare_photos

OBAMA = ["face_recognition_obama.jpg", "face_recognition_obama2.jpg", "face_recognition_knn_test_obama1.jpg"]


@pytest.fixture(scope="session")
def analyzer(tmp_path_factory: pytest.TempPathFactory) -> FaceAnalyzer:
    return create_analyzer(Settings(models_dir=tmp_path_factory.mktemp("models"), face_backend="dlib"), "dlib")


@pytest.fixture(scope="module")
def report(data_dir: Path, analyzer: FaceAnalyzer):
    photos = [(name, data_dir / "faces" / "obama" / name) for name in OBAMA]
    photos.append(("noise.png", data_dir / "edge" / "noface_noise.png"))
    return prepare_photos(photos, analyzer)


@pytest.fixture
def store(tmp_path: Path) -> IdentityStore:
    return IdentityStore(tmp_path / "identities")


class RenamedBackend:
    """The dlib analyzer under another backend name: stands for 'a backend the identity was not prepared with'."""

    def __init__(self, inner: FaceAnalyzer, name: str) -> None:
        self.inner, self.name = inner, name
        self.threshold, self.embedding_dim = inner.threshold, inner.embedding_dim
        self.calls = 0

    def detect(self, image, *, embed: bool = True):
        self.calls += 1
        return self.inner.detect(image, embed=embed)


def test_create_writes_the_layout_and_get_reads_it_back(store: IdentityStore, report) -> None:
    created = store.create("obama", report)
    folder = store.root / "obama"
    assert created.dir == folder and created.name == "obama" and created.photo_count == 3
    assert (created.trigger, created.phrase, created.backend) == ("fcsks", "a person", "dlib")
    assert created.activation_text == "fcsks, a person" and created.loras == []
    names = sorted(p.name for p in (folder / "photos").iterdir())
    assert names == ["01.png", "01.txt", "02.png", "02.txt", "03.png", "03.txt"]
    for (crop_path, caption), photo in zip(created.training_items(), report.accepted, strict=True):
        assert caption == "fcsks, a person"
        np.testing.assert_array_equal(np.asarray(Image.open(crop_path)), np.asarray(photo.crop))
    np.testing.assert_array_equal(np.asarray(Image.open(created.best_photo_path)), np.asarray(report.best.crop))
    stored_report = json.loads((folder / "report.json").read_text())
    assert stored_report["name"] == "obama" and stored_report["best_photo"] == report.best_photo
    assert [p["crop"] for p in stored_report["photos"]] == ["photos/01.png", "photos/02.png", "photos/03.png", None]
    assert stored_report["photos"][3]["code"] == "no_face"
    meta = json.loads((folder / "identity.json").read_text())
    assert {k: meta[k] for k in ("name", "trigger", "phrase", "backend", "photo_count", "loras")} == {
        "name": "obama",
        "trigger": "fcsks",
        "phrase": "a person",
        "backend": "dlib",
        "photo_count": 3,
        "loras": [],
    }
    assert np.load(folder / "embeddings_dlib.npy").shape == (3, 128)
    again = store.get("obama")
    assert again.to_dict() == created.to_dict()
    assert json.loads(json.dumps(again.to_dict()))["activation_text"] == "fcsks, a person"
    assert store.report("obama")["counts"]["accepted"] == 3


def test_names_are_validated(store: IdentityStore, report) -> None:
    for bad in ["", "a b", "../escape", "x" * 65, "ÿ", "name.png", "trailing\n", None]:
        for call in (lambda n: store.create(n, report), store.get, store.delete):
            with pytest.raises(FaceChainError) as info:
                call(bad)
            assert info.value.code == "invalid_name" and info.value.http_status == 422
    assert not store.root.exists() or not any(store.root.iterdir())
    assert store.create("A-z_0-9" + "x" * 57, report).name == "A-z_0-9" + "x" * 57  # 64 chars is fine


def test_no_overwrite_unless_asked(store: IdentityStore, report, data_dir: Path, analyzer: FaceAnalyzer) -> None:
    first = store.create("twin", report)
    with pytest.raises(FaceChainError) as info:
        store.create("twin", report)
    assert info.value.code == "name_taken" and info.value.http_status == 409
    assert store.get("twin").to_dict() == first.to_dict()
    smaller = prepare_photos([("one.jpg", data_dir / "faces" / "obama" / OBAMA[0])], analyzer)
    replaced = store.create("twin", smaller, overwrite=True)
    assert replaced.photo_count == 1 and sorted(p.name for p in (replaced.dir / "photos").iterdir()) == ["01.png", "01.txt"]
    assert [p.name for p in store.root.iterdir()] == ["twin"]  # no temp or trash folder left


def test_a_failure_mid_write_leaves_nothing_behind(store: IdentityStore, report, monkeypatch: pytest.MonkeyPatch) -> None:
    original = identities_module.write_json_atomic

    def failing(path: Path, data) -> None:
        if path.name == "identity.json":
            raise OSError(28, "No space left on device")
        original(path, data)

    monkeypatch.setattr(identities_module, "write_json_atomic", failing)
    with pytest.raises(OSError):
        store.create("halfway", report)
    assert list(store.root.iterdir()) == []
    monkeypatch.setattr(identities_module, "write_json_atomic", original)
    kept = store.create("halfway", report)
    monkeypatch.setattr(identities_module, "write_json_atomic", failing)
    with pytest.raises(OSError):
        store.create("halfway", report, overwrite=True)  # the old identity survives a failed overwrite
    assert [p.name for p in store.root.iterdir()] == ["halfway"]
    assert store.get("halfway").to_dict() == kept.to_dict()


def test_list_skips_and_reports_broken_folders_and_delete_removes(store: IdentityStore, report) -> None:
    store.create("bob", report)
    store.create("alice", report)
    (store.root / "broken").mkdir()
    (store.root / "broken" / "identity.json").write_text("{not json")
    (store.root / "no_meta").mkdir()
    (store.root / ".tmp-carol-123").mkdir()  # an interrupted write: ignored
    identities, broken = store.scan()
    assert [i.name for i in identities] == ["alice", "bob"] and [i.name for i in store.list()] == ["alice", "bob"]
    assert sorted(broken) == ["broken", "no_meta"] and "damaged" in broken["broken"]
    with pytest.raises(FaceChainError) as info:
        store.get("broken")
    assert info.value.code == "identity_broken"
    store.delete("bob")
    store.delete("broken")  # broken folders can be deleted too
    assert [i.name for i in store.list()] == ["alice"] and not (store.root / "bob").exists()
    for call in (store.get, store.delete):
        with pytest.raises(FaceChainError) as info:
            call("bob")
        assert info.value.code == "identity_not_found" and info.value.http_status == 404


def test_delete_removes_only_what_facechain_created(store: IdentityStore, report) -> None:
    (store.root / "backup").mkdir(parents=True)  # a user's folder in the store, no identity.json
    (store.root / "backup" / "x.jpg").write_bytes(b"user data")
    with pytest.raises(FaceChainError) as info:
        store.delete("backup")
    assert info.value.code == "identity_not_found" and "identity.json" in info.value.message
    assert (store.root / "backup" / "x.jpg").read_bytes() == b"user data"

    identity = store.create("carol", report)
    (identity.dir / "notes.txt").write_text("mine")
    (identity.dir / "photos" / "original.jpg").write_bytes(b"raw")
    with pytest.raises(FaceChainError) as info:
        store.delete("carol")
    assert info.value.code == "identity_has_user_files" and info.value.http_status == 409
    assert "notes.txt" in info.value.message and "photos/original.jpg" in info.value.message
    assert store.get("carol").photo_count == identity.photo_count and (identity.dir / "notes.txt").read_text() == "mine"
    (identity.dir / "notes.txt").unlink()
    (identity.dir / "photos" / "original.jpg").unlink()
    (identity.dir / "fact_tokens.safetensors").write_bytes(b"cache")  # FaceChain's own FACT token cache is ours
    store.delete("carol")
    assert not (store.root / "carol").exists()


def test_reference_embedding_is_cached_per_backend(store: IdentityStore, report, analyzer: FaceAnalyzer) -> None:
    identity = store.create("ref", report)
    expected = mean_embedding([p.face.embedding for p in report.accepted])
    ref = store.reference_embedding("ref", analyzer)
    assert ref.shape == (128,) and float(ref @ expected) > 0.9999 and abs(float(np.linalg.norm(ref)) - 1) < 1e-5
    other = RenamedBackend(analyzer, "otherbackend")  # computed lazily from the stored crops
    assert not (identity.dir / "embeddings_otherbackend.npy").exists()
    from_crops = store.reference_embedding("ref", other)
    assert other.calls == 3 and np.load(identity.dir / "embeddings_otherbackend.npy").shape == (3, 128)
    assert float(from_crops @ ref) > 0.99  # the crops show the same faces
    store.reference_embedding("ref", other)
    assert other.calls == 3  # second time from disk
    assert float(store.reference_embedding("ref", analyzer) @ ref) > 0.9999


def test_add_lora_records(store: IdentityStore, report) -> None:
    store.create("lora", report)
    record = {
        "name": "lora_v1",
        "path": "/loras/FaceChain/lora_v1.safetensors",
        "sha256": "ab" * 32,
        "prompt": "fcsks, a person",
        "weight": 0.9,
    }
    first = store.add_lora("lora", record)
    assert (
        [r["name"] for r in first.loras] == ["lora_v1"] and first.loras[0]["sha256"] == "ab" * 32 and "created" in first.loras[0]
    )
    second = store.add_lora("lora", {**record, "weight": 0.7})
    store.add_lora("lora", {**record, "name": "lora_v2"})
    loras = store.get("lora").loras
    assert [r["name"] for r in loras] == ["lora_v1", "lora_v2"] and loras[0]["weight"] == 0.7 and second.loras[0]["weight"] == 0.7
    with pytest.raises(FaceChainError) as info:
        store.add_lora("lora", {"name": "no path"})
    assert info.value.code == "invalid_request"


def test_concurrent_creates_of_one_name_give_one_identity(store: IdentityStore, report) -> None:
    outcomes: list[str] = []

    def create() -> None:
        try:
            store.create("race", report)
            outcomes.append("ok")
        except FaceChainError as err:
            outcomes.append(err.code)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["name_taken", "name_taken", "name_taken", "ok"]
    assert [p.name for p in store.root.iterdir()] == ["race"]


def test_a_report_without_accepted_photos_is_refused(store: IdentityStore, report) -> None:
    from dataclasses import replace

    empty = replace(report, photos=[p for p in report.photos if not p.accepted])
    with pytest.raises(FaceChainError) as info:
        store.create("empty", empty)
    assert info.value.code == "no_usable_photos" and not (store.root / "empty").exists()
