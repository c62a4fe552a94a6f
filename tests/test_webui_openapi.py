"""The host serves /docs and /openapi.json for the whole app: our routes' request/response models must produce a
schema under pydantic 1 + fastapi 0.94 (A1111) and pydantic 2 + fastapi 0.104 (Forge), or the host's API docs break."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from facechain_ext.webui import register


def test_openapi_schema_covers_every_facechain_route(fake_host, tmp_path):
    fake_host.reset_host(tmp_path / "webui", ["--api"])

    register()
    app = FastAPI()
    fake_host.start_app(app)
    assert fake_host.reported_errors() == []
    ours = {(route.path, method.lower()) for route in app.routes if route.path.startswith("/facechain/")
            for method in getattr(route, "methods", ())}
    assert len(ours) >= 8, ours

    response = TestClient(app).get("/openapi.json")
    assert response.status_code == 200, response.text
    spec = response.json()
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert ours <= documented
    schemas = spec.get("components", {}).get("schemas", {})
    for path, method in ours:
        operation = spec["paths"][path][method]
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        ref = body.get("$ref", "")
        if ref:  # a typed request: its model is in the schema with its fields
            model = schemas[ref.rsplit("/", 1)[-1]]
            assert model.get("properties"), (path, model)
    assert {"FaceChainArgs", "DetectRequest", "TrainRequestModel", "ErrorResponse"} <= set(schemas), sorted(schemas)
