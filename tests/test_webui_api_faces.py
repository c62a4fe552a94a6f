"""The /facechain/v1 face, model and identity routes, through the fake host, on real photos (dlib backend)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import facechain_ext
from facechain_ext.webui import register

AUTH = ("alice", "s3cr=et")  # the host cannot start with a ":" in a password (modules/api/api.py splits on ":")
V1 = "/facechain/v1"


def b64(path: str | Path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def start(fake_host, tmp_path: Path, argv: list[str]) -> tuple[TestClient, object]:
    """Restart the fake host with `argv`, register FaceChain and start an app as the host does."""
    fake_host.reset_host(tmp_path / "webui", argv)
    from modules import script_callbacks

    extension = register()
    script_callbacks.ui_settings_callback()
    app = FastAPI()
    fake_host.start_app(app)
    assert fake_host.reported_errors() == []
    return TestClient(app), extension


@pytest.fixture
def client(fake_host, tmp_path):
    test_client, _ = start(fake_host, tmp_path, ["--api", "--api-auth", f"{AUTH[0]}:{AUTH[1]}"])
    test_client.auth = AUTH
    return test_client


@pytest.fixture(scope="module")
def photos(faces_table, edge_table) -> dict[str, list[str]]:
    by_identity: dict[str, list[str]] = {}
    for row in faces_table:
        by_identity.setdefault(row["identity"], []).append(row["file"])
    edge = {Path(row["path"]).name: row["file"] for row in edge_table}
    return {**by_identity, "noface": [edge["noface_blank_gray.jpg"], edge["noface_noise.png"]],
            "corrupt": [edge["corrupt_text_named_jpg.jpg"]], "group": [edge["group_two_people.jpg"]]}


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert detail["code"] == code and detail["message"] and isinstance(detail["context"], dict)
    return detail


def test_auth_is_enforced_like_the_host(client):
    for creds in (None, ("alice", "wrong"), ("bob", AUTH[1])):
        response = client.get(f"{V1}/version", auth=creds) if creds else TestClient(client.app).get(f"{V1}/version")
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Basic"
    response = client.get(f"{V1}/version")
    assert response.status_code == 200
    assert response.json()["version"] == facechain_ext.__version__
    assert response.json()["backends"]["dlib"]["available"] is True


def test_a_malformed_authorization_header_gets_the_documented_401(client):
    """Bad base64, no colon, a non-ASCII password: 401 `unauthorized` in FaceChain's error format, never FastAPI's."""
    anonymous = TestClient(client.app)
    for header in ("Basic !!!", "Basic " + base64.b64encode(b"alice").decode(),
                   "Basic " + base64.b64encode("alice:p\u00e9".encode()).decode(), "Basic", "Bearer abc"):
        response = anonymous.get(f"{V1}/version", headers={"Authorization": header})
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Basic"


def test_without_api_auth_the_routes_are_open(fake_host, tmp_path):
    test_client, _ = start(fake_host, tmp_path, ["--api"])
    assert test_client.get(f"{V1}/version").status_code == 200


def test_routes_exist_only_with_api_or_nowebui(fake_host, tmp_path):
    test_client, _ = start(fake_host, tmp_path, [])
    assert test_client.get(f"{V1}/version").status_code == 404
    test_client, _ = start(fake_host, tmp_path, ["--nowebui"])
    assert test_client.get(f"{V1}/version").status_code == 200


def test_models_report_presence_path_size_and_licence(client, tmp_path):
    models = {m["name"]: m for m in client.get(f"{V1}/models").json()["models"]}
    assert set(models) >= {"buffalo_l", "fact_adapter_maj", "fact_adapter_film", "transface_s", "inswapper_128"}
    buffalo = models["buffalo_l"]
    assert buffalo["present"] is False and "non-commercial" in buffalo["licence"] and "det_10g.onnx" in buffalo["hint"]
    folder = Path(buffalo["path"])
    assert folder == tmp_path / "webui" / "models" / "insightface" / "models" / "buffalo_l"
    folder.mkdir(parents=True)
    for i, f in enumerate(buffalo["files"]):
        (folder / f["name"]).write_bytes(b"x" * (10 + i))
    buffalo = {m["name"]: m for m in client.get(f"{V1}/models").json()["models"]}["buffalo_l"]
    assert buffalo["present"] is True and buffalo["size"] == sum(10 + i for i in range(len(buffalo["files"])))
    assert buffalo["hint"] is None


def test_detect_finds_the_faces_of_real_photos(client, photos):
    from PIL import Image

    path = photos["obama"][0]
    response = client.post(f"{V1}/face/detect", json={"image": b64(path), "backend": "dlib"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["backend"] == "dlib" and len(body["faces"]) == 1
    face = body["faces"][0]
    width, height = Image.open(path).size
    x1, y1, x2, y2 = face["bbox"]
    assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height and len(face["kps"]) == 5
    group = client.post(f"{V1}/face/detect", json={"image": "data:image/jpeg;base64," + b64(photos["group"][0])}).json()
    assert len(group["faces"]) == 2
    assert client.post(f"{V1}/face/detect", json={"image": b64(photos["noface"][0])}).json()["faces"] == []


def test_detect_errors_are_json_with_the_right_status(client, photos):
    assert_error(client.post(f"{V1}/face/detect", json={"image": b64(photos["corrupt"][0])}), 422, "unreadable_image")
    detail = assert_error(client.post(f"{V1}/face/detect", json={}), 422, "invalid_request")
    assert "image" in detail["message"]
    assert_error(client.post(f"{V1}/face/detect", json={"image": b64(photos["obama"][0]), "backend": "nope"}), 503,
                 "backend_unavailable")
    assert_error(client.post(f"{V1}/face/detect", json={"image": b64(photos["obama"][0]), "backend": "insightface"}),
                 503, "backend_unavailable")


def test_similarity_ranks_the_same_person_first(client, photos):
    angelina = photos["deepface_angelina"]
    request = {
        "reference": {"images": [b64(p) for p in angelina[:2]]},
        "candidates": [b64(photos["obama"][1]), b64(angelina[2]), b64(photos["noface"][0]), b64(photos["deepface_p02"][0])],
        "backend": "dlib",
    }
    body = client.post(f"{V1}/face/similarity", json=request).json()
    scores, threshold = body["scores"], body["threshold"]
    assert body["backend"] == "dlib" and scores[2] is None
    assert scores[1] >= threshold > max(scores[0], scores[3])
    assert body["order"][0] == 1 and sorted(body["order"]) == [0, 1, 3]
    assert client.post(f"{V1}/face/similarity", json={**request, "top_k": 1}).json()["order"] == [1]
    assert_error(client.post(f"{V1}/face/similarity", json={**request, "top_k": 0}), 422, "invalid_request")


def test_similarity_reference_without_a_face_is_an_error(client, photos):
    request = {"reference": {"images": [b64(photos["noface"][0])]}, "candidates": [b64(photos["obama"][0])]}
    detail = assert_error(client.post(f"{V1}/face/similarity", json=request), 422, "no_face")
    assert detail["context"]["path"] == "reference.images[0]"
    assert_error(client.post(f"{V1}/face/similarity", json={**request, "candidates": []}), 422, "invalid_request")


def test_identities_lifecycle(client, photos):
    images = [b64(p) for p in photos["deepface_angelina"][:3]] + [b64(photos["corrupt"][0])]
    response = client.post(f"{V1}/identities", json={"name": "angelina", "images": images})
    assert response.status_code == 201, response.text
    body = response.json()
    statuses = [(p["path"], p["status"], p["code"]) for p in body["photos"]]
    assert statuses[3] == ("images[3]", "rejected", "unreadable_image")
    assert sum(s == "accepted" for _, s, _ in statuses[:3]) >= 2
    assert body["name"] == "angelina" and body["identity"]["photo_count"] == body["counts"]["accepted"]

    assert [i["name"] for i in client.get(f"{V1}/identities").json()["identities"]] == ["angelina"]
    assert client.get(f"{V1}/identities/angelina").json()["photo_count"] == body["counts"]["accepted"]

    assert_error(client.post(f"{V1}/identities", json={"name": "angelina", "images": images[:1]}), 409, "name_taken")
    replaced = client.post(f"{V1}/identities", json={"name": "angelina", "images": images[:2], "overwrite": True})
    assert replaced.status_code == 201 and replaced.json()["counts"]["total"] == 2

    assert client.delete(f"{V1}/identities/angelina").json() == {"deleted": "angelina"}
    assert_error(client.get(f"{V1}/identities/angelina"), 404, "identity_not_found")
    assert_error(client.delete(f"{V1}/identities/angelina"), 404, "identity_not_found")


def test_identity_without_usable_photos_lists_every_reason(client, photos):
    images = [b64(photos["noface"][0]), b64(photos["corrupt"][0])]
    detail = assert_error(client.post(f"{V1}/identities", json={"name": "nobody", "images": images}), 422,
                          "no_usable_photos")
    reasons = [(p["path"], p["code"]) for p in detail["context"]["photos"]]
    assert reasons == [("images[0]", "no_face"), ("images[1]", "unreadable_image")]
    assert client.get(f"{V1}/identities").json()["identities"] == []


def test_identity_name_is_checked_before_any_photo_work(client, photos):
    detail = assert_error(client.post(f"{V1}/identities", json={"name": "../etc", "images": ["x"]}), 422, "invalid_name")
    assert "../etc" in detail["message"]
    assert_error(client.post(f"{V1}/identities", json={"name": "a", "images": []}), 422, "invalid_request")


def test_unexpected_failures_are_json_500_without_traceback(fake_host, tmp_path, photos):
    test_client, extension = start(fake_host, tmp_path, ["--api"])

    def broken(backend=None):
        raise RuntimeError("disk on fire")

    extension.ctx.analyzer = broken
    detail = assert_error(test_client.post(f"{V1}/face/detect", json={"image": b64(photos["obama"][0])}), 500,
                          "internal_error")
    assert "disk on fire" in detail["message"] and "Traceback" not in detail["message"]
