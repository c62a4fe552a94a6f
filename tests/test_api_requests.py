"""Every /facechain/v1 route answers in one shape, early: auth before the body, a body size limit, strict JSON
(no NaN/Infinity, bounded nesting), one name validator, training options checked at submit, internal errors and
configuration errors as `{"detail": {"code", "message", "context"}}`. The app is started as the host starts it
(fake_host.start_app: the host's `Api` with its app-wide exception handlers), so a FastAPI/host error shape that
leaked out of our routes would show here."""

from __future__ import annotations

import base64
import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from generation_helpers import IDENTITY, SEED, install_sampler, make_context

from facechain_ext.webui import api_common, register
from facechain_ext.webui.api_common import parse_api_auth
from facechain_ext.webui.api_generate import add_routes as add_generation_routes

V1 = "/facechain/v1"
AUTH = ("ann", "pw")
BODY_ROUTES = ["/face/detect", "/face/similarity", "/identities", "/train", "/txt2img", "/face/fuse"]


def detail_of(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert detail["code"] == code and detail["message"] and isinstance(detail["context"], dict), detail
    return detail


@pytest.fixture
def host_app(fake_host, tmp_path):
    """FaceChain registered in a host started with --api --api-auth (no model, no identities)."""
    fake_host.reset_host(tmp_path / "webui", ["--api", "--api-auth", f"{AUTH[0]}:{AUTH[1]}"])
    from modules import script_callbacks

    extension = register()
    script_callbacks.ui_settings_callback()
    app = FastAPI()
    fake_host.start_app(app)
    client = TestClient(app, raise_server_exceptions=False)
    client.auth = AUTH
    yield client, extension.ctx
    extension.ctx.jobs.shutdown(10)


@pytest.fixture(scope="module")
def gen_ctx(tmp_path_factory, data_dir):
    return make_context(tmp_path_factory.mktemp("api_requests"), data_dir)


def raw_post(client, path: str, text: str, **kwargs):
    return client.post(f"{V1}{path}", content=text.encode(), headers={"content-type": "application/json"}, **kwargs)


def test_non_finite_numbers_are_refused_before_any_generation(fake_host, gen_ctx, data_dir):
    sampler = install_sampler(data_dir)
    app = FastAPI()
    fake_host.start_app(app)
    add_generation_routes(app, gen_ctx, parse_api_auth(None))
    client = TestClient(app, raise_server_exceptions=False)
    good = {"prompt": "portrait", "seed": SEED + 2, "steps": 4, "eta": 0.5,
            "override_settings": {"CLIP_stop_at_last_layers": 1}, "facechain": {"identity": IDENTITY}}
    text = json.dumps(good)
    for bad in (text.replace('"eta": 0.5', '"eta": NaN'), text.replace('"eta": 0.5', '"eta": -Infinity'),
                text.replace('"eta": 0.5', '"eta": 1e400'),
                text.replace('"CLIP_stop_at_last_layers": 1', '"CLIP_stop_at_last_layers": Infinity')):
        detail = detail_of(raw_post(client, "/txt2img", bad), 422, "non_finite_number")
        assert detail["context"]["token"] in ("NaN", "-Infinity", "1e400", "Infinity")
    assert sampler.calls == []  # nothing was generated
    response = raw_post(client, "/txt2img", text)  # the same request with finite numbers generates
    assert response.status_code == 200, response.text
    assert len(sampler.calls) == 1


@pytest.mark.parametrize("path", BODY_ROUTES)
def test_every_body_route_parses_json_strictly(host_app, path):
    client, _ = host_app
    detail_of(raw_post(client, path, '{"a": NaN}'), 422, "non_finite_number")
    detail = detail_of(raw_post(client, path, '{"identity": "x",'), 422, "invalid_json")
    assert detail["context"]["line"] == 1
    detail_of(raw_post(client, path, "[" * 50_000 + "]" * 50_000), 422, "json_too_deep")  # the parser's own limit
    nested = "{}"
    for _ in range(40):
        nested = '{"a": ' + nested + "}"
    detail_of(raw_post(client, path, nested), 422, "json_too_deep")
    detail_of(raw_post(client, path, '{"x": ' + "1" * 5000 + "}"), 422, "invalid_json")  # more digits than Python reads
    detail_of(client.post(f"{V1}{path}", content=b'{"a": "\xff"}'), 422, "invalid_json")  # not UTF-8
    detail_of(client.post(f"{V1}{path}", json=[1, 2]), 422, "invalid_request")  # JSON, but not the request's shape


def test_bodies_over_the_limit_get_413_with_the_limit(host_app, monkeypatch):
    client, _ = host_app
    monkeypatch.setattr(api_common, "MAX_BODY_BYTES", 1000)
    body = json.dumps({"image": "A" * 2000})
    detail = detail_of(raw_post(client, "/face/detect", body), 413, "body_too_large")
    assert detail["context"]["limit"] == 1000 and "1000 bytes" in detail["message"]

    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(20):
            yield b" " * 100

    detail = detail_of(client.post(f"{V1}/face/detect", content=chunks()), 413, "body_too_large")
    assert detail["context"]["limit"] == 1000
    assert raw_post(client, "/face/detect", json.dumps({"image": "A" * 10})).status_code == 422  # small: read on


def test_unauthenticated_requests_get_401_before_the_body_is_read(host_app, monkeypatch):
    client, _ = host_app
    anonymous = TestClient(client.app, raise_server_exceptions=False)
    monkeypatch.setattr(api_common, "MAX_BODY_BYTES", 100)
    for text in ('{"a": NaN}', "{not json", "x" * 1000):
        response = raw_post(anonymous, "/face/detect", text)
        detail_of(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Basic"
    malformed = ["Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(), "Bearer abc", "Basic",
                 "Basic " + base64.b64encode(b"ann:\xff").decode(), "Basic " + base64.b64encode(b"ann:wrong").decode()]
    for header in malformed:
        response = anonymous.get(f"{V1}/version", headers={"Authorization": header})
        detail_of(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Basic"
    assert client.get(f"{V1}/version").status_code == 200


def test_unexpected_errors_are_500_internal_error_in_our_shape(host_app, monkeypatch):
    client, _ = host_app
    import facechain_ext.models as models

    def broken(settings):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(models, "model_status", broken)
    detail = detail_of(client.get(f"{V1}/models"), 500, "internal_error")
    assert "RuntimeError: disk on fire" in detail["message"]


def test_one_name_validator_for_every_name(host_app, tmp_path):
    client, ctx = host_app
    lora_dir = ctx.settings.facechain_lora_dir
    for name in ("bob\n", "bob ", "../bob", "b" * 65, ""):
        detail_of(client.post(f"{V1}/identities", json={"name": name, "images": ["eA=="]}), 422, "invalid_name")
        detail_of(client.post(f"{V1}/train", json={"identity": "bob", "lora_name": name}), 422, "invalid_name")
    detail_of(client.get(f"{V1}/identities/bob%0A"), 422, "invalid_name")
    detail_of(client.delete(f"{V1}/identities/bob%0A"), 422, "invalid_name")
    detail_of(client.get(f"{V1}/jobs/0123456789ab%0A"), 422, "invalid_name")
    detail_of(client.post(f"{V1}/jobs/nope/cancel"), 422, "invalid_name")
    detail_of(client.get(f"{V1}/jobs/0123456789ab"), 404, "job_not_found")
    detail_of(client.post(f"{V1}/models/buffalo_l%0A/download"), 422, "invalid_name")
    detail_of(client.post(f"{V1}/txt2img", json={"facechain": {"identity": "bob\n"}}), 422, "invalid_name")
    assert not (lora_dir is not None and lora_dir.exists() and any(lora_dir.iterdir()))
    assert ctx.jobs.list() == []


@pytest.mark.parametrize(("option", "status", "code"), [
    ({"preset": "turbo"}, 422, "invalid_request"),
    ({"alpha": 1e400}, 422, "non_finite_number"),
    ({"alpha": 1e6}, 422, "invalid_request"),
    ({"alpha": 0}, 422, "invalid_request"),
    ({"seed": 2**64}, 422, "invalid_request"),
    ({"seed": -1}, 422, "invalid_request"),
    ({"learning_rate": 5}, 422, "invalid_request"),
    ({"learning_rate": 1e-9}, 422, "invalid_request"),
    ({"steps": 10**6}, 422, "invalid_request"),
    ({"rank": 1000}, 422, "invalid_request"),
    ({"resolution": 100}, 422, "invalid_request"),  # not a multiple of 8: checked by the config at submit
    ({"snapshot_every": -2}, 422, "invalid_request"),
])
def test_training_options_are_checked_at_submit(host_app, option, status, code):
    client, ctx = host_app
    body = {"identity": "nobody", **option}
    text = json.dumps(body) if option.get("alpha") != 1e400 else '{"identity": "nobody", "alpha": 1e400}'
    detail = detail_of(raw_post(client, "/train", text), status, code)
    named = detail["context"].get("token") == "1e400" or any(key in detail["message"] for key in option)
    assert named, detail  # names the option (or the offending token)
    assert ctx.jobs.list() == []  # never queued
    # the same body with sane options fails only on the missing identity
    detail_of(client.post(f"{V1}/train", json={"identity": "nobody"}), 404, "identity_not_found")


def test_training_bounds_are_documented_in_openapi(host_app):
    client, _ = host_app
    schema = client.get("/openapi.json").json()["components"]["schemas"]["TrainRequestModel"]["properties"]
    assert (schema["rank"]["minimum"], schema["rank"]["maximum"]) == (1, 128)
    assert (schema["seed"]["minimum"], schema["seed"]["maximum"]) == (0, 2**32 - 1)
    assert schema["learning_rate"]["maximum"] == 1e-2 and schema["alpha"]["exclusiveMinimum"] == 0
    assert set(schema["preset"]["enum"]) == {"fast", "quality"}
    assert schema["resolution"]["maximum"] == 1024 and "multiple of 8" in schema["resolution"]["description"]


def test_a_models_dir_that_is_a_file_is_a_configuration_error(fake_host, tmp_path, capsys):
    from facechain_ext.cli import main

    not_a_folder = tmp_path / "models.txt"
    not_a_folder.write_text("oops", encoding="utf-8")
    fake_host.reset_host(tmp_path / "webui", ["--api", "--facechain-models-dir", str(not_a_folder)])
    register()
    app = FastAPI()
    fake_host.start_app(app)
    client = TestClient(app, raise_server_exceptions=False)
    for response in (client.get(f"{V1}/identities"), client.get(f"{V1}/identities/bob"),
                     client.post(f"{V1}/train", json={"identity": "bob"})):
        detail = detail_of(response, 503, "invalid_config")
        assert detail["context"]["file"] == str(not_a_folder) and "--facechain-models-dir" in detail["message"]
    assert not_a_folder.read_text(encoding="utf-8") == "oops"

    code = main(["--backend", "dlib", "--models-dir", str(not_a_folder / "sub"), "models"])
    error = json.loads(capsys.readouterr().out)["error"]
    assert code == 1 and error["code"] == "invalid_config" and error["context"]["file"] == str(not_a_folder)
