"""FACT weights from ModelScope: the real manifest entries, the real modelscope hub client, a fake endpoint on 127.0.0.1.

The client lists the repository (per-file Size and Sha256) and builds the download addresses; facechain_ext.downloads
streams the bytes and verifies them against that listing before renaming them into place. After every refused or
failed download the fact folder holds no file at all, and a refusal never reaches the network.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from model_server import model_server, payload, sha

from facechain_ext import downloads
from facechain_ext.config import Settings
from facechain_ext.errors import FaceChainError
from facechain_ext.fact.files import ADAPTER_FILES, ENCODER_FILE, converted_name, find_fact_files
from facechain_ext.models import FACT_REPO, MANIFEST, get_spec, manual_reason, status

SIZE = 50_000
ENCODER, ADAPTER = payload(SIZE, 11), payload(SIZE + 123, 12)


@pytest.fixture
def server(monkeypatch, tmp_path):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    from modelscope.hub.api import ModelScopeConfig

    # the client writes a session id file under its credentials folder: keep it out of the real home
    monkeypatch.setattr(ModelScopeConfig, "path_credential", str(tmp_path / "modelscope_credentials"))
    monkeypatch.setattr(downloads, "CHUNK_BYTES", 4096)
    with model_server() as srv:
        srv.modelscope(FACT_REPO.repo, FACT_REPO.revision, {ENCODER_FILE: ENCODER, ADAPTER_FILES["maj"]: ADAPTER})
        yield srv


@pytest.fixture
def settings(server, tmp_path) -> Settings:
    return Settings(models_dir=tmp_path / "facechain", allow_downloads=True, modelscope_endpoint=server.base_url)


def fact_files(settings: Settings) -> list[str]:
    folder = settings.models_dir / "fact"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def refused(name: str, settings: Settings, code: str, status_code: int) -> FaceChainError:
    with pytest.raises(FaceChainError) as info:
        downloads.download_model(get_spec(name), settings)
    assert info.value.code == code and info.value.http_status == status_code, info.value
    return info.value


def test_the_manifest_lists_both_adapters_and_the_encoder_from_modelscope(tmp_path):
    fact = {spec.name: spec for spec in MANIFEST if spec.modelscope is not None}
    assert {name: spec.files[0].name for name, spec in fact.items()} == {
        "transface_s": ENCODER_FILE, "fact_adapter_maj": ADAPTER_FILES["maj"], "fact_adapter_film": ADAPTER_FILES["film"],
    }
    for spec in fact.values():
        assert spec.modelscope == FACT_REPO and manual_reason(spec) is None and "ModelScope" in spec.checksum_source
        assert spec.folders(Settings(models_dir=tmp_path)) == [tmp_path / "fact"]
    assert fact["fact_adapter_maj"].licence.startswith("Apache-2.0")
    assert "no LICENSE file" in fact["transface_s"].licence


def test_fact_files_are_downloaded_verified_against_the_listing_and_found_by_fact(server, settings):
    reports: list[tuple[int, int, str]] = []
    result = downloads.download_model(get_spec("transface_s"), settings, progress=lambda *r: reports.append(r))
    downloads.download_model(get_spec("fact_adapter_maj"), settings)
    folder = settings.models_dir / "fact"
    assert fact_files(settings) == sorted([ENCODER_FILE, ADAPTER_FILES["maj"]])  # no temp file left
    assert sha((folder / ENCODER_FILE).read_bytes()) == sha(ENCODER) and (folder / ADAPTER_FILES["maj"]).read_bytes() == ADAPTER
    assert result["downloaded_bytes"] == SIZE and result["already_present"] is False
    done = [d for d, _, _ in reports]
    assert done == sorted(done) and done[-1] == SIZE and reports[-1][1] == SIZE and "installed" in reports[-1][2]
    listing = f"/api/v1/models/{FACT_REPO.repo}/repo/files"
    assert [r.split("?")[0] for r in server.requests] == [listing, f"/api/v1/models/{FACT_REPO.repo}/repo"] * 2
    assert f"FilePath={ENCODER_FILE}" in server.requests[1] and "Revision=v1.0.0" in server.requests[1]
    files = find_fact_files(settings.models_dir)  # what FACT mode loads
    assert (files.encoder.name, files.adapter.name) == (ENCODER_FILE, ADAPTER_FILES["maj"])
    entry = status(get_spec("transface_s"), settings)
    assert entry["present"] and entry["path"] == str(folder) and entry["files"][0]["installed_as"] == ENCODER_FILE
    count = len(server.requests)
    assert downloads.download_model(get_spec("transface_s"), settings)["already_present"] is True
    assert len(server.requests) == count  # already there: no network


def test_a_sha256_mismatch_with_the_listing_leaves_nothing(server, settings):
    folder = settings.models_dir / "fact"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")  # a file we did not create stays untouched
    server.hub[FACT_REPO.repo].listed_sha256[ENCODER_FILE] = "ab" * 32
    err = refused("transface_s", settings, "checksum_mismatch", 502)
    assert sha(ENCODER) in err.message and "ab" * 32 in err.message and ENCODER_FILE in err.message
    assert fact_files(settings) == ["notes.txt"] and (folder / "notes.txt").read_text() == "mine"
    server.hub[FACT_REPO.repo].listed_sha256.clear()
    server.hub[FACT_REPO.repo].listed_size[ENCODER_FILE] = SIZE - 1  # the size is checked too
    refused("transface_s", settings, "checksum_mismatch", 502)
    assert fact_files(settings) == ["notes.txt"]


def test_no_consent_and_offline_are_refused_before_any_network_access(server, settings):
    err = refused("fact_adapter_maj", settings.with_(allow_downloads=False), "downloads_disabled", 403)
    assert "Allow FaceChain to download" in err.message and ADAPTER_FILES["maj"] not in fact_files(settings)
    err = refused("fact_adapter_maj", settings.with_(offline=True), "downloads_disabled", 403)
    assert "--facechain-offline" in err.message
    assert server.requests == [] and fact_files(settings) == []
    blocked = status(get_spec("fact_adapter_maj"), settings.with_(offline=True))
    assert blocked["downloadable"] is True and "offline" in blocked["download_blocked"]


def test_a_listing_without_sha256_or_without_the_file_is_refused(server, settings):
    server.hub[FACT_REPO.repo].listed_sha256[ENCODER_FILE] = None  # what modelscope >= 1.38 returns
    err = refused("transface_s", settings, "unverifiable_model", 422)
    assert "no sha256" in err.message and "modelscope>=1.28,<1.38" in err.message
    err = refused("fact_adapter_film", settings, "download_failed", 502)  # not served by the fake repository
    assert ADAPTER_FILES["film"] in err.message and FACT_REPO.repo in err.message
    assert all("FilePath" not in r for r in server.requests) and fact_files(settings) == []


def test_without_the_modelscope_package_the_download_is_refused_before_the_network(server, settings, monkeypatch):
    monkeypatch.setitem(sys.modules, "modelscope", None)  # import modelscope now fails, find_spec says absent
    err = refused("transface_s", settings, "dependency_missing", 503)
    assert "modelscope>=1.28,<1.38" in err.message and server.requests == []
    assert "modelscope package" in status(get_spec("transface_s"), settings)["download_blocked"]


def test_a_converted_copy_counts_as_installed(server, settings):
    folder = settings.models_dir / "fact"
    folder.mkdir(parents=True)
    (folder / converted_name(ENCODER_FILE)).write_bytes(b"fp16 copy")
    entry = status(get_spec("transface_s"), settings)
    assert entry["present"] and entry["files"][0] == {
        "name": ENCODER_FILE, "present": True, "installed_as": converted_name(ENCODER_FILE), "size": 9,
        "expected_size": None, "size_ok": None, "sha256": None,
    }
    assert downloads.download_model(get_spec("transface_s"), settings)["already_present"] is True
    assert server.requests == []


def test_the_fact_missing_message_names_the_file_and_every_way_to_get_it(tmp_path: Path):
    with pytest.raises(FaceChainError) as info:
        find_fact_files(tmp_path)
    message = info.value.message
    assert info.value.code == "model_missing" and ENCODER_FILE in message and str(tmp_path / "fact") in message
    for part in ("Download transface_s", "POST /facechain/v1/models/transface_s/download",
                 "models download transface_s --allow-download", "yucheng1996/FaceChain-FACT", "v1.0.0", "fact convert"):
        assert part in message, part


def test_the_cli_downloads_a_fact_file_only_with_consent(server, tmp_path, capsys, monkeypatch):
    import json

    from facechain_ext.cli import main

    monkeypatch.delenv("FACECHAIN_OFFLINE", raising=False)
    monkeypatch.setenv("FACECHAIN_MODELSCOPE_ENDPOINT", server.base_url)
    root = ["--models-dir", str(tmp_path / "m")]
    assert main([*root, "models", "download", "transface_s"]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "downloads_disabled" and server.requests == []
    assert main([*root, "models", "download", "transface_s", "--allow-download"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["files"] == [{"name": ENCODER_FILE, "size": SIZE, "sha256": None}]
    assert (tmp_path / "m" / "fact" / ENCODER_FILE).read_bytes() == ENCODER
