"""facechain_ext.downloads against a real HTTP server on 127.0.0.1: consent, verification, zips, cancel, failures.

After every refused or failed download the target folder must hold no file at all (no temp, no partial model).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from model_server import file_spec, make_zip, model_server, payload, sha, zip_spec

from facechain_ext import downloads
from facechain_ext.config import Settings
from facechain_ext.errors import FaceChainError
from facechain_ext.models import MANIFEST, manual_reason, model_status, status

SIZE = 40_000


@pytest.fixture
def server():
    with model_server() as srv:
        yield srv


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(models_dir=tmp_path / "facechain", allow_downloads=True)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(downloads, "CHUNK_BYTES", 4096)  # many chunks per small file: progress and cancel points
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def folder_files(settings: Settings) -> list[str]:
    folder = settings.models_dir / "fake"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def refused(spec, settings, code: str, status_code: int, **kwargs) -> FaceChainError:
    with pytest.raises(FaceChainError) as info:
        downloads.download_model(spec, settings, **kwargs)
    assert info.value.code == code and info.value.http_status == status_code, info.value
    return info.value


def test_a_file_is_streamed_verified_and_installed_with_progress(server, settings):
    data = payload(SIZE)
    spec = file_spec("tiny", server.add("/tiny.onnx", data), data)
    reports: list[tuple[int, int, str]] = []
    result = downloads.download_model(spec, settings, progress=lambda d, t, s: reports.append((d, t, s)))
    installed = settings.models_dir / "fake" / "tiny.onnx"
    assert installed.read_bytes() == data and sha(installed.read_bytes()) == spec.files[0].sha256
    assert folder_files(settings) == ["tiny.onnx"]  # the temp file is gone
    assert result["downloaded_bytes"] == SIZE and result["already_present"] is False
    assert result["files"] == [{"name": "tiny.onnx", "size": SIZE, "sha256": sha(data)}]
    done = [d for d, _, _ in reports]
    assert len(reports) >= SIZE // 4096 and done == sorted(done) and done[-1] == SIZE
    assert all(total == SIZE for _, total, _ in reports) and "installed" in reports[-1][2]
    state = status(spec, settings)
    assert state["present"] and state["files"][0]["size_ok"] is True and state["hint"] is None
    # a second request is a no-op that never touches the network
    assert downloads.download_model(spec, settings)["already_present"] is True
    assert server.requests == ["/tiny.onnx"]


def test_a_checksum_mismatch_leaves_nothing_behind(server, settings):
    data = payload(SIZE)
    spec = file_spec("tiny", server.add("/tiny.onnx", data), data, sha256="0" * 64)
    err = refused(spec, settings, "checksum_mismatch", 502)
    assert sha(data) in err.message and "0" * 64 in err.message and "tiny.onnx" in err.message
    assert folder_files(settings) == []
    # the size is checked too, and a body longer than the published size is cut off early
    err = refused(file_spec("tiny", server.add("/tiny.onnx", data), data, size=SIZE - 1), settings,
                  "checksum_mismatch", 502)
    assert str(SIZE - 1) in err.message and folder_files(settings) == []


@pytest.mark.parametrize("flags, hint", [({"allow_downloads": False}, "Allow FaceChain to download"),
                                         ({"offline": True}, "--facechain-offline")])
def test_without_consent_or_offline_nothing_is_fetched(server, settings, flags, hint):
    data = payload(SIZE)
    spec = file_spec("tiny", server.add("/tiny.onnx", data), data)
    err = refused(spec, settings.with_(**flags), "downloads_disabled", 403)
    assert hint in err.message and str(settings.models_dir / "fake") in err.message
    assert server.requests == [] and not (settings.models_dir / "fake").exists()


def test_a_model_without_checksum_or_size_is_manual_install_only(server, settings):
    data = payload(SIZE)
    spec = file_spec("tiny", server.add("/tiny.onnx", data), data, sha256=None, size=None)
    err = refused(spec, settings, "unverifiable_model", 422)
    assert "manual install only" in err.message and str(settings.models_dir / "fake") in err.message
    assert "tiny.onnx" in err.message and server.requests == []
    # without an address it is manual too, and status says so before anyone presses a button
    no_url = file_spec("nourl", None, data)
    assert "no download address" in refused(no_url, settings, "unverifiable_model", 422).message
    assert status(no_url, settings)["downloadable"] is False
    assert status(no_url, settings)["download_blocked"].startswith("Manual install only")


def test_size_alone_is_enough_to_verify(server, settings):
    data = payload(SIZE)
    spec = file_spec("tiny", server.add("/tiny.onnx", data), data, sha256=None)
    downloads.download_model(spec, settings)
    assert (settings.models_dir / "fake" / "tiny.onnx").read_bytes() == data


def test_cancel_mid_stream_removes_the_partial_file(server, settings):
    data = payload(SIZE)
    spec = file_spec("tiny", server.add("/tiny.onnx", data), data)
    seen: list[int] = []

    def should_stop() -> bool:
        return len(seen) >= 3  # after three chunks arrived

    refused(spec, settings, "cancelled", 409, progress=lambda d, t, s: seen.append(d), should_stop=should_stop)
    assert 0 < seen[-1] < SIZE and folder_files(settings) == []


def test_a_zip_is_verified_and_only_expected_members_are_extracted(server, settings):
    members = {"det.onnx": payload(SIZE, 1), "rec.onnx": payload(SIZE // 2, 2)}
    archive = make_zip({**members, "unused_3d_landmarks.onnx": payload(1000, 3), "readme/": b""})
    spec = zip_spec("pack", server.add("/pack.zip", archive), archive, members)
    result = downloads.download_model(spec, settings)
    assert folder_files(settings) == ["det.onnx", "rec.onnx"]  # no zip, no temp, no unused member
    for name, data in members.items():
        assert (settings.models_dir / "fake" / name).read_bytes() == data
    assert result["downloaded_bytes"] == len(archive) and status(spec, settings)["present"] is True


def test_a_zip_with_a_traversal_member_is_refused(server, settings, tmp_path):
    members = {"det.onnx": payload(SIZE, 1)}
    archive = make_zip({**members, "../../escaped.onnx": b"evil"})
    spec = zip_spec("pack", server.add("/pack.zip", archive), archive, members)
    err = refused(spec, settings, "unsafe_archive", 502)
    assert "../../escaped.onnx" in err.message
    assert folder_files(settings) == [] and not list(tmp_path.rglob("escaped.onnx"))


def test_a_corrupt_zip_fails_its_checksum_before_it_is_opened(server, settings):
    members = {"det.onnx": payload(SIZE, 1)}
    archive = make_zip(members)
    spec = zip_spec("pack", server.add("/pack.zip", archive[:-10] + b"x" * 10), archive, members)
    refused(spec, settings, "checksum_mismatch", 502)
    assert folder_files(settings) == []


def test_network_failures_name_the_url(server, settings):
    data = payload(SIZE)
    missing = file_spec("tiny", f"{server.base_url}/nowhere.onnx", data)
    err = refused(missing, settings, "download_failed", 502)
    assert f"{server.base_url}/nowhere.onnx" in err.message and "404" in err.message
    dropped = file_spec("tiny", server.add("/short.onnx", data[:1000], announce=SIZE), data)
    err = refused(dropped, settings, "download_failed", 502)
    assert "/short.onnx" in err.message and folder_files(settings) == []
    refused_port = file_spec("tiny", "http://127.0.0.1:9/tiny.onnx", data)  # discard port: nothing listens
    assert "127.0.0.1:9" in refused(refused_port, settings, "download_failed", 502).message
    assert folder_files(settings) == []


def test_the_real_manifest_only_offers_verifiable_downloads(tmp_path):
    settings = Settings(models_dir=tmp_path)
    downloadable = {spec.name for spec in MANIFEST if manual_reason(spec) is None}
    assert downloadable == {"buffalo_l", "inswapper_128", "transface_s", "fact_adapter_maj", "fact_adapter_film"}
    hexdigest = re.compile(r"^[0-9a-f]{64}$")
    for spec in MANIFEST:
        checksums = [f.sha256 for f in spec.files if f.sha256] + ([spec.archive.sha256] if spec.archive else [])
        assert all(hexdigest.match(c) for c in checksums if c), spec.name
        if spec.name in downloadable and spec.modelscope is None:
            assert spec.checksum_source and checksums and all(u.startswith("https://") for u in _urls(spec))
        elif spec.name in downloadable:  # checked against the sha256 of ModelScope's own file listing
            assert "sha256" in spec.checksum_source and spec.sources[0]["url"].startswith("https://www.modelscope.cn/")
    by_name = {m["name"]: m for m in model_status(settings)}
    assert by_name["buffalo_l"]["download_size"] == 288621354
    assert "POST /facechain/v1/models/buffalo_l/download" in by_name["buffalo_l"]["hint"]
    parsing = by_name["face_parsing_bisenet"]
    assert parsing["downloadable"] is False and "POST" not in parsing["hint"]
    assert "Allow FaceChain to download" in by_name["buffalo_l"]["download_blocked"]


def _urls(spec) -> list[str]:
    return [spec.archive.url] if spec.archive else [f.url or "" for f in spec.files]


def test_nothing_is_left_when_a_later_file_of_the_model_fails(server, settings):
    """Files are only renamed into place once all of them verified: the first good file must not appear alone."""
    from facechain_ext.models import ModelFile, ModelSpec

    good, bad = payload(SIZE, 1), payload(SIZE, 2)
    spec = ModelSpec(
        name="two", kind="face_fusion", description="", licence="test", sources=({"site": "test"},),
        folders=lambda s: [s.models_dir / "fake"],
        files=(ModelFile("a.onnx", SIZE, sha(good), server.add("/a.onnx", good)),
               ModelFile("b.onnx", SIZE, "f" * 64, server.add("/b.onnx", bad))),
    )
    refused(spec, settings, "checksum_mismatch", 502)
    assert folder_files(settings) == [] and server.requests == ["/a.onnx", "/b.onnx"]
    assert not Path(settings.models_dir / "fake" / "a.onnx").exists()
