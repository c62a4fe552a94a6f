"""POST /facechain/v1/models/{name}/download through the fake host: auth, 404/422/403, a 202 job that ends done
(or failed with the verification error), the tab's download handler, and the `models` CLI commands."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from model_server import file_spec, model_server, payload, sha

from facechain_ext import models
from facechain_ext.webui import register

AUTH = ("alice", "pw")
V1 = "/facechain/v1"
SIZE = 30_000


@pytest.fixture
def server(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with model_server() as srv:
        good = payload(SIZE)
        extra = (file_spec("tiny", srv.add("/tiny.onnx", good), good),
                 file_spec("broken", srv.add("/broken.onnx", good), good, sha256="0" * 64))
        monkeypatch.setattr(models, "MANIFEST", models.MANIFEST + extra)
        yield srv


@pytest.fixture
def host(fake_host, tmp_path, server):
    fake_host.reset_host(tmp_path / "webui", ["--api", "--api-auth", f"{AUTH[0]}:{AUTH[1]}"])
    from modules import script_callbacks

    extension = register()
    script_callbacks.ui_settings_callback()
    app = FastAPI()
    fake_host.start_app(app)
    assert fake_host.reported_errors() == []
    client = TestClient(app)
    client.auth = AUTH
    yield client, extension
    extension.on_script_unloaded()


def allow_downloads(value: bool = True) -> None:
    from modules import shared

    shared.opts.set("facechain_allow_downloads", value)  # the host runs our onchange: settings are re-read


def detail(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()["detail"]
    assert body["code"] == code and body["message"]
    return body


def test_refusals_come_before_any_network_access(host, server):
    client, _ = host
    assert TestClient(client.app).post(f"{V1}/models/tiny/download").status_code == 401
    detail(client.post(f"{V1}/models/nope/download"), 404, "not_found")
    body = detail(client.post(f"{V1}/models/tiny/download"), 403, "downloads_disabled")
    assert "Allow FaceChain to download" in body["message"] and body["context"]["allow_downloads"] is False
    allow_downloads()
    body = detail(client.post(f"{V1}/models/face_parsing_bisenet/download"), 422, "unverifiable_model")
    assert "manual install only" in body["message"] and body["context"]["path"].endswith("parsing")
    assert server.requests == []


def test_a_download_job_runs_to_done_and_the_model_is_present(host, server):
    client, extension = host
    listed = {m["name"]: m for m in client.get(f"{V1}/models").json()["models"]}
    assert listed["tiny"]["downloadable"] is True and "Allow FaceChain" in listed["tiny"]["download_blocked"]
    allow_downloads()
    response = client.post(f"{V1}/models/tiny/download")
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    assert response.json()["model"] == "tiny"
    extension.ctx.jobs.wait(job_id, timeout=30)
    record = client.get(f"{V1}/jobs/{job_id}").json()
    assert record["status"] == "done" and record["kind"] == "model_download" and record["progress"] == 1.0
    assert record["result"]["files"] == [{"name": "tiny.onnx", "size": SIZE, "sha256": sha(payload(SIZE))}]
    tiny = {m["name"]: m for m in client.get(f"{V1}/models").json()["models"]}["tiny"]
    assert tiny["present"] is True and tiny["files"][0]["size_ok"] is True and tiny["download_blocked"] is None
    assert server.requests == ["/tiny.onnx"]


def test_a_failed_verification_is_the_job_error(host, server, tmp_path):
    client, extension = host
    allow_downloads()
    job_id = client.post(f"{V1}/models/broken/download").json()["job_id"]
    extension.ctx.jobs.wait(job_id, timeout=30)
    record = client.get(f"{V1}/jobs/{job_id}").json()
    assert record["status"] == "failed" and record["error"]["code"] == "checksum_mismatch"
    folder = extension.ctx.settings.models_dir / "fake"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_the_tab_download_handler_reports_progress_and_refusals(host, server):
    from facechain_ext.webui.tab_models import ModelDownloads

    _, extension = host
    handlers = ModelDownloads(extension.ctx, poll_s=0.01)
    refused = list(handlers.download("tiny"))
    assert len(refused) == 1 and "data-code='downloads_disabled'" in refused[0] and server.requests == []
    allow_downloads()
    updates = list(handlers.download("tiny"))
    assert "Downloaded and verified" in updates[-1] and "facechain-error" not in updates[-1]
    assert (extension.ctx.settings.models_dir / "fake" / "tiny.onnx").stat().st_size == SIZE


def test_cli_models_status_and_download(server, tmp_path, capsys, monkeypatch):
    from facechain_ext.cli import main

    monkeypatch.delenv("FACECHAIN_OFFLINE", raising=False)
    root = ["--models-dir", str(tmp_path / "m")]
    assert main([*root, "models"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    assert listed["tiny"]["present"] is False and listed["buffalo_l"]["downloadable"] is True
    assert main([*root, "models", "download", "tiny"]) == 1  # no --allow-download: refused, nothing fetched
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "downloads_disabled" and server.requests == []
    assert main([*root, "models", "download", "tiny", "--allow-download"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"] == "tiny" and (tmp_path / "m" / "fake" / "tiny.onnx").stat().st_size == SIZE


def test_fact_files_are_listed_and_downloaded_from_modelscope_through_the_route(host, server, monkeypatch, tmp_path):
    from modelscope.hub.api import ModelScopeConfig

    from facechain_ext.fact.files import ADAPTER_FILES
    from facechain_ext.models import FACT_REPO

    client, extension = host
    monkeypatch.setattr(ModelScopeConfig, "path_credential", str(tmp_path / "modelscope_credentials"))
    monkeypatch.setenv("FACECHAIN_MODELSCOPE_ENDPOINT", server.base_url)
    adapter = payload(SIZE, 5)
    server.modelscope(FACT_REPO.repo, FACT_REPO.revision, {ADAPTER_FILES["maj"]: adapter})
    listed = {m["name"]: m for m in client.get(f"{V1}/models").json()["models"]}
    folder = extension.ctx.settings.models_dir / "fact"
    for name in ("transface_s", "fact_adapter_maj", "fact_adapter_film"):
        entry = listed[name]
        assert entry["path"] == str(folder) and entry["present"] is False and entry["downloadable"] is True
        assert entry["files"][0]["present"] is False and entry["licence"]
    assert [f["name"] for f in listed["fact_adapter_maj"]["files"]] == [ADAPTER_FILES["maj"]]
    detail(client.post(f"{V1}/models/fact_adapter_maj/download"), 403, "downloads_disabled")
    assert server.requests == []
    allow_downloads()  # settings are re-read: the endpoint variable is picked up as well
    job_id = client.post(f"{V1}/models/fact_adapter_maj/download").json()["job_id"]
    extension.ctx.jobs.wait(job_id, timeout=60)
    record = client.get(f"{V1}/jobs/{job_id}").json()
    assert record["status"] == "done", record
    assert record["result"]["files"] == [{"name": ADAPTER_FILES["maj"], "size": len(adapter), "sha256": None}]
    assert (folder / ADAPTER_FILES["maj"]).read_bytes() == adapter and sorted(p.name for p in folder.iterdir()) == [
        ADAPTER_FILES["maj"]]
    maj = {m["name"]: m for m in client.get(f"{V1}/models").json()["models"]}["fact_adapter_maj"]
    assert maj["present"] is True and maj["files"][0]["installed_as"] == ADAPTER_FILES["maj"]
