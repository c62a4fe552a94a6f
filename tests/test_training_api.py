"""The training routes through register() on the fake host: 202 + polling to done, LoRA listing, cancel, errors."""

from __future__ import annotations

import shutil
import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from training_helpers import IDENTITY, gray_images

from facechain_ext.webui import register

V1 = "/facechain/v1"
AUTH = ("ann", "pw")
JOB_KEYS = {"id", "kind", "status", "progress", "eta_s", "textinfo", "result", "error"}
BODY = {"identity": IDENTITY, "steps": 4, "snapshot_every": 2, "resolution": 64, "validation_images": 1}


@pytest.fixture()
def api(fake_host, tmp_path, prepared, tiny_sd, monkeypatch):
    fake_host.reset_host(tmp_path / "webui", ["--api", "--api-auth", f"{AUTH[0]}:{AUTH[1]}", "--no-half"])
    from modules import processing, script_callbacks

    extension = register()
    script_callbacks.ui_settings_callback()
    app = FastAPI()
    fake_host.start_app(app)
    assert fake_host.reported_errors() == []
    shutil.copytree(prepared, extension.ctx.settings.identities_dir)
    fake_host.load_model(tiny_sd)  # float32: --no-half, as a webui on a CPU needs
    monkeypatch.setattr(processing, "process_images", lambda p: processing.Processed(p, gray_images(1)), raising=False)
    client = TestClient(app)
    client.auth = AUTH
    yield client, extension.ctx
    extension.ctx.jobs.shutdown(10)


def poll(client, job_id: str, until=("done", "failed", "cancelled"), timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"{V1}/jobs/{job_id}")
        assert response.status_code == 200, response.text
        record = response.json()
        if record["status"] in until:
            return record
        assert time.monotonic() < deadline, f"job stuck: {record}"
        time.sleep(0.05)


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    return response.json()["detail"]


def test_train_poll_and_list(api):
    client, ctx = api
    response = client.post(f"{V1}/train", json=BODY)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] in ("queued", "running") and accepted["host_task_id"].startswith("task(")
    record = poll(client, accepted["job_id"])
    assert set(record) == JOB_KEYS
    assert record["status"] == "done" and record["error"] is None and record["progress"] == 1.0
    lora = record["result"]["lora"]
    assert lora["name"] == IDENTITY and lora["prompt"] == f"<lora:{IDENTITY}:0.9>, fcsks, a person"
    assert [v["step"] for v in record["result"]["validation"]] == [2, 4]

    listed = client.get(f"{V1}/loras")
    assert listed.status_code == 200
    (entry,) = listed.json()["loras"]
    assert entry["name"] == IDENTITY and entry["identity"] == IDENTITY and entry["path"] == lora["path"]
    assert entry["sha256"] == lora["sha256"] and entry["prompt"] == lora["prompt"]

    again = client.post(f"{V1}/train", json=BODY)  # the LoRA exists now
    assert error_of(again, 409)["code"] == "name_taken"


def test_cancel_and_errors(api):
    client, ctx = api
    assert error_of(client.get(f"{V1}/jobs/0123456789ab"), 404)["code"] == "job_not_found"
    assert error_of(client.post(f"{V1}/jobs/0123456789ab/cancel"), 404)["code"] == "job_not_found"
    assert error_of(client.post(f"{V1}/train", json={**BODY, "identity": "nobody"}), 404)["code"] == "identity_not_found"
    assert error_of(client.post(f"{V1}/train", json={**BODY, "stepz": 3}), 422)["code"] == "invalid_request"
    assert error_of(client.post(f"{V1}/train", json={**BODY, "rank": 0}), 422)["code"] == "invalid_request"
    assert error_of(TestClient(client.app).post(f"{V1}/train", json=BODY), 401)["code"] == "unauthorized"

    job_id = client.post(f"{V1}/train", json={**BODY, "steps": 3000}).json()["job_id"]
    poll(client, job_id, until=("running",))
    assert error_of(client.post(f"{V1}/train", json={**BODY, "lora_name": "other"}), 409)["code"] == "job_running"
    response = client.post(f"{V1}/jobs/{job_id}/cancel")
    assert response.status_code == 200 and set(response.json()) == JOB_KEYS
    record = poll(client, job_id)
    assert record["status"] == "cancelled" and record["error"]["code"] == "cancelled" and record["result"] is None
    assert client.get(f"{V1}/loras").json() == {"loras": []}
