"""The whole user journey across the seams, through public surfaces only, on the stand-in host.

The host loads `scripts/facechain.py` (which registers FaceChain and exposes the Script class), starts an app with
`--api`, and has a tiny ldm-style checkpoint loaded as `shared.sd_model`; its "sampler" (tests/fakehost
FakeSampler) returns real photos per seed. Then, over HTTP (/facechain/v1) and the host's alwayson_scripts path:
photos -> identity -> train-free FACT portraits (synthetic FACT release, SD1.5-shaped checkpoint) -> trained LoRA
(files in the host's Lora folder, UNet restored) -> portraits that carry the LoRA, trigger and style, ranked by face
similarity, over the API, the accordion and the tab's Generate view -> identity deleted. A second journey walks the
errors of every stage. Both run on the A1111 stand-in and on the Forge stand-in (tests/fakeforge: Forge's engine, its
main thread), the differences kept in tests/journey_steps.py.

Seeds of the fake sampler (generation_helpers.sampler_photos): SEED another person, SEED+1 no face, SEED+2 the
identity itself (a photo NOT used to build the identity), SEED+3 another person.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from generation_helpers import SEED, sampler_photos
from journey_steps import (
    generate_from_the_tab,
    generate_with_fact,
    host_unet,
    ran_where_the_host_generates,
    run_like_the_host_txt2img,
)
from PIL import Image
from tiny_models import TinyLatentDiffusion, assert_unet_restored, tiny_forge_sd, unet_fingerprint, unet_values

V1 = "/facechain/v1"
REPO_ROOT = Path(__file__).resolve().parents[1]
NAME = "angelina"
IDENTITY_PHOTOS = ("deepface_tests_img1.jpg", "deepface_tests_img2.jpg", "deepface_tests_img4.jpg",
                   "deepface_tests_img5.jpg", "deepface_tests_img7.jpg")  # img6 is held out: the sampler's SEED+2
ACTIVATION = "fcsks, a person"  # dlib gives no gender/age: the neutral phrase
STYLE = "film_photo"
# 5 photos x 2 steps, snapshots at 5 and 10, one validation portrait per snapshot rendered with seed SEED+2 (the
# identity's held-out photo, so validation sees a face), 64 px training resolution (the schema's minimum).
TRAIN = {"identity": NAME, "steps": 10, "snapshot_every": 5, "resolution": 64, "seed": SEED + 2, "validation_images": 1}
POLL_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    return TinyLatentDiffusion(tmp_path_factory.mktemp("tiny_sd"))


class GatedSampler:
    """The fake checkpoint (a FakeSampler), which can hold the N-th sampling call until the test lets it go:
    a deterministic point in the middle of a job, for observing it from outside."""

    def __init__(self, data_dir: Path, pause_at_call: int | None = None) -> None:
        from modules import processing

        photos = sampler_photos(data_dir)
        self.inner = processing.FakeSampler(list(photos.values()), overrides=photos)
        self.pause_at_call = pause_at_call
        self.reached = threading.Event()
        self.release = threading.Event()
        self.probe = None  # p -> value, recorded with each call (e.g. whether FACT is in the UNet being sampled)

    @property
    def calls(self) -> list[dict]:
        return self.inner.calls

    def sample(self, p, seed, prompt, negative, networks):
        if self.pause_at_call is not None and len(self.inner.calls) + 1 == self.pause_at_call:
            self.reached.set()
            assert self.release.wait(POLL_TIMEOUT_S), "the test never released the sampler"
        image = self.inner.sample(p, seed, prompt, negative, networks)
        self.inner.calls[-1]["thread"] = threading.current_thread().name
        if self.probe is not None:
            self.inner.calls[-1]["probe"] = self.probe(p)
        return image


@pytest.fixture(params=["a1111", "forge"])
def host(request, fake_host, tmp_path, tiny_sd, data_dir):
    """The host started as A1111 (or Forge) does with --api: scripts/facechain.py loaded, settings, app_started, a
    model (A1111: the tiny ldm model; Forge: the tiny Forge engine with the same UNet weights)."""
    variant = request.param
    if variant == "forge":
        request.getfixturevalue("fake_forge")
    fake_host.reset_host(tmp_path / "webui", ["--api", "--no-half"])  # --no-half: as a CPU webui needs
    from modules import processing, script_callbacks, script_loading, sd_models, shared

    entry = script_loading.load_module(str(REPO_ROOT / "scripts" / "facechain.py"))
    script_callbacks.ui_settings_callback()
    app = FastAPI()
    fake_host.start_app(app)
    assert fake_host.reported_errors() == []
    if variant == "a1111":
        tiny_sd.sd_checkpoint_info = sd_models.CheckpointInfo("tiny.safetensors", "tiny.safetensors [0123456789]", "tiny")
        checkpoint = fake_host.load_model(tiny_sd)
    else:
        checkpoint = tiny_forge_sd(tmp_path / "forge_sd")
        checkpoint.sd_checkpoint_info = sd_models.CheckpointInfo("tiny.safetensors", "tiny.safetensors [0123456789]", "tiny")
        shared.sd_model = checkpoint
    sampler = GatedSampler(data_dir)
    processing.fake_sampler = sampler
    fake_host.client = TestClient(app)
    fake_host.entry, fake_host.sampler, fake_host.checkpoint, fake_host.variant = entry, sampler, checkpoint, variant
    try:
        yield fake_host
    finally:
        sampler.release.set()  # never leave the worker holding the host's queue lock
        script_callbacks.script_unloaded_callback()  # the host's Reload UI / shutdown: stops FaceChain's worker
        processing.fake_sampler = None


# ---- helpers ------------------------------------------------------------------------------------------------------
def b64(path: Path | str) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def error_of(response, status: int, code: str) -> dict:
    """Every failure is the given HTTP status with FaceChain's JSON body {"detail": {code, message, context}}."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert detail["code"] == code and detail["message"] and isinstance(detail["context"], dict), detail
    return detail


def poll(client: TestClient, job_id: str, *, until=("done", "failed", "cancelled"), seen: list | None = None) -> dict:
    deadline = time.monotonic() + POLL_TIMEOUT_S
    while True:
        response = client.get(f"{V1}/jobs/{job_id}")
        assert response.status_code == 200, response.text
        record = response.json()
        if seen is not None:
            seen.append(record)
        if record["status"] in until:
            return record
        assert time.monotonic() < deadline, f"job did not finish in {POLL_TIMEOUT_S} s: {record}"
        time.sleep(0.02)


def poll_until_paused(client: TestClient, job_id: str, sampler: GatedSampler, seen: list) -> None:
    deadline = time.monotonic() + POLL_TIMEOUT_S
    while not sampler.reached.wait(0.02):
        record = client.get(f"{V1}/jobs/{job_id}").json()
        seen.append(record)
        assert record["status"] in ("queued", "running"), f"the job ended before its validation renders: {record}"
        assert time.monotonic() < deadline, f"the job never reached its validation renders: {record}"


def lora_folder() -> Path:
    """Where the host's Lora extension looks (its --lora-dir), FaceChain's subfolder."""
    from modules import shared

    return Path(shared.cmd_opts.lora_dir) / "FaceChain"


def parse_infotexts(texts: list[str]) -> list[dict]:
    from modules.infotext_utils import parse_generation_parameters

    return [parse_generation_parameters(text) for text in texts]


def similarity_text(score: float | None) -> str:
    return "none (no face found)" if score is None else f"{score:.3f}".rstrip("0")


def lora_tags(prompt: str) -> list[tuple[str, float]]:
    import re

    return [(name, float(weight)) for name, weight in re.findall(r"<lora:([^:>]+):([^>]+)>", prompt)]


# ---- the journey ----------------------------------------------------------------------------------------------------
def test_photos_to_identity_to_lora_to_ranked_portraits_and_back(host, data_dir, faces_table, edge_table, fact_release):
    client, sampler = host.client, host.sampler
    create_identity(client, data_dir, faces_table, edge_table)
    generate_with_fact(host, fact_release, NAME, SEED + 1)
    lora = train(host)
    # the user sets the LoRA's preferred weight in the host's Lora card (it rewrites the sidecar): listing and
    # generation both follow it
    sidecar = Path(lora["path"]).with_suffix(".json")
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text(encoding="utf-8")), "preferred weight": 0.8}))
    (listed,) = client.get(f"{V1}/loras").json()["loras"]
    assert listed["weight"] == 0.8 and listed["prompt"] == f"<lora:{NAME}:0.8>, {ACTIVATION}"
    styles = {s["id"]: s for s in client.get(f"{V1}/styles").json()["styles"]}
    expected_weight = 0.8 * styles[STYLE]["face_lora_multiplier"]  # the LoRA's preferred weight x the style's multiplier
    style_text = styles[STYLE]["prompt"].replace("{identity}", ACTIVATION)

    api = generate_over_api(client, sampler, style_text, expected_weight, host.variant)
    generate_through_alwayson_scripts(host, style_text, expected_weight, api)
    generate_from_the_tab(host, NAME, STYLE, SEED, api)

    response = client.delete(f"{V1}/identities/{NAME}")
    assert response.status_code == 200 and response.json() == {"deleted": NAME}
    error_of(client.get(f"{V1}/identities/{NAME}"), 404, "identity_not_found")
    error_of(client.delete(f"{V1}/identities/{NAME}"), 404, "identity_not_found")
    assert client.get(f"{V1}/identities").json()["identities"] == []
    error_of(client.post(f"{V1}/txt2img", json={"prompt": "x", "facechain": {"identity": NAME}}), 404, "identity_not_found")


def create_identity(client, data_dir, faces_table, edge_table) -> dict:
    """Step 1: five photos of one person, a stranger and a corrupt file -> 201 with a verdict per photo."""
    folder = data_dir / "faces" / "deepface_angelina"
    stranger = next(row["file"] for row in faces_table if row["identity"] == "obama")
    corrupt = next(row["file"] for row in edge_table if row["path"].endswith("corrupt_truncated_half.jpg"))
    images = [b64(folder / name) for name in IDENTITY_PHOTOS] + [b64(stranger), b64(corrupt)]
    response = client.post(f"{V1}/identities", json={"name": NAME, "images": images})
    assert response.status_code == 201, response.text
    body = response.json()
    verdicts = [(p["path"], p["status"], p["code"]) for p in body["photos"]]
    assert verdicts == [(f"images[{i}]", "accepted", None) for i in range(5)] + [
        ("images[5]", "rejected", "different_person"),
        ("images[6]", "rejected", "unreadable_image"),
    ]
    assert body["counts"] == {"total": 7, "accepted": 5, "rejected": 2, "different_person": 1, "unreadable_image": 1}
    assert body["caption"] == ACTIVATION and body["backend"] == "dlib"
    stored = body["identity"]
    assert stored["name"] == NAME and stored["photo_count"] == 5 and stored["loras"] == []
    assert stored["activation_text"] == ACTIVATION and Path(stored["best_photo_path"]).is_file()
    assert client.get(f"{V1}/identities/{NAME}").json() == stored
    return stored


def train(host) -> dict:
    """Step 2: POST /train -> 202, observed mid-job, polled to done; files, listings and the host model checked."""
    from modules import call_queue, progress, shared

    client, sampler, unet = host.client, host.sampler, host_unet(host.checkpoint)
    before_fingerprint, before_values = unet_fingerprint(unet), unet_values(unet)
    first_call = len(sampler.calls)
    sampler.pause_at_call = first_call + 2  # the validation portrait of the second (last) snapshot
    response = client.post(f"{V1}/train", json=TRAIN)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] in ("queued", "running") and accepted["host_task_id"].startswith("task(")
    job_id, seen = accepted["job_id"], []

    try:
        # bounded: fails at once (with the job's error) if the job ends before its validation renders
        poll_until_paused(client, job_id, sampler, seen)
        middle = poll(client, job_id, until=("running",), seen=seen)
        # in the middle of the job: both snapshots trained, validating the second; the host sees our job
        assert 0.0 < middle["progress"] < 1.0 and middle["textinfo"].startswith("Validating snapshot 2/2"), middle
        assert shared.state.job == "facechain_train" and progress.current_task == accepted["host_task_id"]
        assert call_queue.queue_lock.locked()
        # one training at a time: a second request is refused at once, not queued (409 + JSON)
        error_of(client.post(f"{V1}/train", json={**TRAIN, "lora_name": "second"}), 409, "job_running")
    finally:
        sampler.release.set()
    sampler.pause_at_call = None
    record = poll(client, job_id, seen=seen)
    assert record["status"] == "done" and record["error"] is None and record["progress"] == 1.0, record
    progresses = [r["progress"] for r in seen]
    assert any(0.0 < value < 1.0 for value in progresses) and progresses[-1] == 1.0  # the progress moved

    # the host: state begun and ended, its task finished, lock free, the UNet exactly as before training
    assert "facechain_train" in shared.state.history and shared.state.job == ""
    assert accepted["host_task_id"] in progress.finished_tasks and progress.current_task is None
    assert not call_queue.queue_lock.locked()
    assert_unet_restored(unet, before_fingerprint, before_values)
    renders = sampler.calls[first_call:]
    assert [(c["seed"], c["networks"]) for c in renders] == [(SEED + 2, []), (SEED + 2, [])]  # LoRA in-process
    assert all(ACTIVATION in c["prompt"] for c in renders)

    result = record["result"]
    assert result["identity"] == NAME and result["steps"] == 10 and result["losses"]["count"] == 10
    assert [v["step"] for v in result["validation"]] == [5, 10] and sum(v["chosen"] for v in result["validation"]) == 1
    assert all(v["faces"] == 1 and v["score"] is not None for v in result["validation"])
    return check_published_lora(client, result["lora"])


def check_published_lora(client, lora: dict) -> dict:
    """The kohya file, its sidecar and preview in <lora_dir>/FaceChain, listed with the right identity and sha256."""
    from safetensors import safe_open

    folder = lora_folder()
    path = folder / f"{NAME}.safetensors"
    assert Path(lora["path"]) == path and lora["name"] == NAME
    assert sorted(p.name for p in folder.iterdir()) == [f"{NAME}.json", f"{NAME}.png", f"{NAME}.safetensors"]
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    with safe_open(str(path), framework="pt") as fh:
        keys, metadata = list(fh.keys()), fh.metadata()
    assert keys and all(k.startswith("lora_unet_") and k.endswith((".lora_down.weight", ".lora_up.weight", ".alpha"))
                        for k in keys)
    assert metadata["facechain_identity"] == NAME and metadata["ss_network_dim"] == "4"
    sidecar = json.loads((folder / f"{NAME}.json").read_text(encoding="utf-8"))
    assert sidecar["activation text"] == ACTIVATION and sidecar["preferred weight"] == 0.9
    assert sidecar["sd version"] == "SD1"
    with Image.open(folder / f"{NAME}.png") as preview:
        assert preview.format == "PNG" and min(preview.size) > 0

    listed = client.get(f"{V1}/loras")
    assert listed.status_code == 200
    (entry,) = listed.json()["loras"]
    assert (entry["name"], entry["identity"], entry["path"], entry["sha256"]) == (NAME, NAME, str(path), sha256)
    assert lora["sha256"] == sha256 and entry["prompt"] == lora["prompt"] == f"<lora:{NAME}:0.9>, {ACTIVATION}"
    (record,) = client.get(f"{V1}/identities/{NAME}").json()["loras"]
    assert (record["name"], record["path"], record["sha256"], record["weight"]) == (NAME, str(path), sha256, 0.9)
    return entry


def generate_over_api(client, sampler, style_text: str, expected_weight: float, variant: str) -> dict[int, float | None]:
    """Step 3a: POST /facechain/v1/txt2img; returns the similarity per seed."""
    first_call = len(sampler.calls)
    body = {"prompt": "portrait photo", "seed": SEED, "batch_size": 4, "steps": 12, "width": 512, "height": 512,
            "facechain": {"identity": NAME, "style": STYLE, "fusion": {"enabled": True, "strength": 0.7},
                          "ranking": {"enabled": True}}}
    response = client.post(f"{V1}/txt2img", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    calls = sampler.calls[first_call:]
    check_sampler_prompts(calls, style_text, expected_weight)
    assert ran_where_the_host_generates(variant, calls)

    images, scores, order = data["images"], data["scores"], data["order"]
    assert len(images) == len(scores) == len(order) == 4 and sorted(order) == [0, 1, 2, 3]
    assert order[0] == 2 and order[-1] == 1, data["comments"]  # the identity first, the image without a face last
    assert scores[-1] is None and all(s is not None for s in scores[:-1])
    assert scores[0] > scores[1] >= scores[2]
    assert "no detectable face" in data["comments"]
    info = json.loads(data["info"])
    assert info["all_seeds"] == [SEED + i for i in order]
    params = parse_infotexts(info["infotexts"])
    for k, (image, p) in enumerate(zip(images, params, strict=True)):
        with Image.open(io.BytesIO(base64.b64decode(image))) as decoded:
            assert decoded.size == (512, 512)
        assert int(p["Seed"]) == SEED + order[k] == calls[order[k]]["seed"]
        assert p["FaceChain similarity"] == similarity_text(scores[k])
        assert p["FaceChain identity"] == NAME and p["FaceChain LoRA"] == NAME and p["FaceChain style"] == STYLE
        check_infotext_prompt(p["Prompt"], style_text, expected_weight)
    assert params[-1]["FaceChain fusion"] == "0.7 (not applied - no face found)" and params[0]["FaceChain fusion"] == "0.7"
    return {SEED + order[k]: scores[k] for k in range(4)}


def check_sampler_prompts(calls: list[dict], style_text: str, expected_weight: float) -> None:
    """What reached the sampler: the LoRA exactly once (as the host's extra-network parser hands it over),
    the trigger + phrase exactly once, the style's prompt, its negative prompt."""
    assert [c["seed"] for c in calls] == [SEED + i for i in range(4)]
    for call in calls:
        ((kind, name, weight),) = call["networks"]
        assert (kind, name) == ("lora", NAME) and abs(weight - expected_weight) <= 0.005 + 1e-9
        assert call["prompt"].startswith("portrait photo, ") and style_text in call["prompt"]
        assert call["prompt"].count("fcsks") == 1 and "<lora" not in call["prompt"]
        assert "digital look" in call["negative_prompt"]  # from the style


def check_infotext_prompt(prompt: str, style_text: str, expected_weight: float) -> None:
    """The prompt as the host saw it before its extra-network parser: `<lora:NAME:W>` exactly once."""
    ((name, weight),) = lora_tags(prompt)
    assert name == NAME and abs(weight - expected_weight) <= 0.005 + 1e-9
    assert prompt.count("<lora:") == 1 and style_text in prompt and prompt.count(ACTIVATION) == 1


def generate_through_alwayson_scripts(host, style_text: str, expected_weight: float, api_scores: dict[int, float | None]) -> None:
    """Step 3b: the host's own txt2img with `alwayson_scripts: {"facechain": {"args": [{...}]}}`: the host puts the
    list at the script's args_from and keeps the controls' defaults after it; the Script class is the one the host
    found in scripts/facechain.py, instantiated without arguments as the host does."""
    import gradio as gr
    from modules import processing, scripts

    script = host.entry.FaceChainScript()
    with gr.Blocks():
        defaults = [control.value for control in script.ui(is_img2img=False)]
    runner = scripts.ScriptRunner()
    script.filename, script.args_from, script.args_to = "facechain.py", 1, 1 + len(defaults)
    runner.scripts = runner.alwayson_scripts = [script]
    script_args = [0, *defaults]  # index 0: the selectable-script slot
    request_args = [{"identity": NAME, "style": STYLE, "fusion": {"strength": 0.7}, "ranking": {"enabled": True}}]
    script_args[script.args_from:script.args_from + len(request_args)] = request_args
    p = processing.StableDiffusionProcessingTxt2Img(prompt="portrait photo", seed=SEED, batch_size=4, steps=12,
                                                    width=512, height=512, do_not_save_samples=True, do_not_save_grid=True)
    p.scripts, p.script_args = runner, script_args
    first_call = len(host.sampler.calls)
    processed = run_like_the_host_txt2img(host.variant, processing.process_images, p)
    assert host.reported_errors() == []

    check_sampler_prompts(host.sampler.calls[first_call:], style_text, expected_weight)
    assert ran_where_the_host_generates(host.variant, host.sampler.calls[first_call:])
    params = parse_infotexts(processed.infotexts)
    assert len(processed.images) == len(params) == 4
    assert processed.all_seeds[0] == SEED + 2 and processed.all_seeds[-1] == SEED + 1
    for image, p_info, seed, prompt in zip(processed.images, params, processed.all_seeds, processed.all_prompts,
                                           strict=True):
        assert int(p_info["Seed"]) == seed and p_info["Prompt"] == prompt
        assert image.info["parameters"].startswith(prompt)
        check_infotext_prompt(prompt, style_text, expected_weight)
        # the same job through the other surface gives the same similarity for the same seed
        assert p_info["FaceChain similarity"] == similarity_text(api_scores[seed])


# ---- the errors of every stage ------------------------------------------------------------------------------------
def test_every_stage_answers_errors_with_http_status_and_json(host, data_dir, faces_table, edge_table):
    client = host.client
    photo = b64(data_dir / "faces" / "deepface_angelina" / IDENTITY_PHOTOS[0])
    corrupt = [b64(row["file"]) for row in edge_table if row["path"].startswith("edge/corrupt_")]

    # identities
    error_of(client.post(f"{V1}/identities", json={"name": "../x", "images": [photo]}), 422, "invalid_name")
    error_of(client.post(f"{V1}/identities", json={"name": NAME}), 422, "invalid_request")
    detail = error_of(client.post(f"{V1}/identities", json={"name": NAME, "images": corrupt}), 422, "no_usable_photos")
    assert [p["code"] for p in detail["context"]["photos"]] == ["unreadable_image"] * len(corrupt)
    assert client.post(f"{V1}/identities", json={"name": NAME, "images": [photo]}).status_code == 201
    error_of(client.post(f"{V1}/identities", json={"name": NAME, "images": [photo]}), 409, "name_taken")

    # training
    error_of(client.post(f"{V1}/train", json={**TRAIN, "identity": "nobody"}), 404, "identity_not_found")
    error_of(client.post(f"{V1}/train", json={**TRAIN, "resolution": 32}), 422, "invalid_request")
    error_of(client.post(f"{V1}/train", json={**TRAIN, "stepz": 3}), 422, "invalid_request")
    error_of(client.post(f"{V1}/train", json={**TRAIN, "lora_name": "bad name"}), 422, "invalid_name")
    error_of(client.get(f"{V1}/jobs/0123456789ab"), 404, "job_not_found")
    error_of(client.get(f"{V1}/jobs/nope"), 422, "invalid_name")
    lora = lora_folder() / f"{NAME}.safetensors"
    lora.parent.mkdir(parents=True)
    lora.write_bytes(b"a user's own file")
    error_of(client.post(f"{V1}/train", json=TRAIN), 409, "name_taken")
    from modules import shared

    shared.sd_model = None  # no checkpoint loaded: accepted, then the job fails with a JSON error record
    job = client.post(f"{V1}/train", json={**TRAIN, "lora_name": "other"})
    assert job.status_code == 202, job.text
    record = poll(client, job.json()["job_id"])
    assert record["status"] == "failed" and record["error"]["code"] == "host_unavailable" and record["result"] is None
    assert lora.read_bytes() == b"a user's own file" and not (lora.parent / "other.safetensors").exists()

    # generation
    body = {"prompt": "x", "seed": SEED, "batch_size": 1, "facechain": {"identity": NAME}}
    error_of(client.post(f"{V1}/txt2img", json={**body, "facechain": {"identity": "nobody"}}), 404, "identity_not_found")
    error_of(client.post(f"{V1}/txt2img", json={**body, "facechain": {"identity": NAME, "style": "nope"}}), 404,
             "style_not_found")
    error_of(client.post(f"{V1}/txt2img", json={**body, "width": 500}), 422, "invalid_request")
    assert "facechain_txt2img" not in shared.state.history  # nothing was queued for requests that cannot run

    # deletion
    assert client.delete(f"{V1}/identities/{NAME}").status_code == 200
    error_of(client.delete(f"{V1}/identities/{NAME}"), 404, "identity_not_found")
    error_of(client.post(f"{V1}/train", json=TRAIN), 404, "identity_not_found")
