"""Host-glue details checked against the real host's behaviour (A1111 1.10 modules/api/api.py, modules/progress.py,
modules/processing.py), where the rest of the suite would not notice a difference."""

from __future__ import annotations

import pytest
from generation_helpers import IDENTITY, SEED, install_sampler, make_context
from modules import call_queue, processing, progress
from modules.infotext_utils import parse_generation_parameters

from facechain_ext.schemas import parse_args
from facechain_ext.webui.api_common import parse_api_auth
from facechain_ext.webui.host_processing import make_txt2img, run_processing
from facechain_ext.webui.host_task import host_task


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, data_dir):
    return make_context(tmp_path_factory.mktemp("facechain_glue"), data_dir)


def test_api_auth_is_parsed_like_the_host():
    auth = parse_api_auth("alice:one,bob:two")
    assert auth.enabled and auth.credentials == {"alice": "one", "bob": "two"}
    # the host splits on "," and ":" without stripping: " bob" is the user name there, so it is here
    assert parse_api_auth("alice:one, bob:two").credentials == {"alice": "one", " bob": "two"}
    for broken in ("nocolon", "alice:a:b", "alice:one,bob"):  # values the host cannot start with (ValueError)
        auth = parse_api_auth(broken)
        assert auth.enabled and "bob" not in auth.credentials and "alice:a" not in str(auth.credentials)
    assert parse_api_auth("alice:one,bob").credentials == {"alice": "one"}  # set but unusable entries open nothing
    assert not parse_api_auth(None).enabled and not parse_api_auth("").enabled


def test_host_task_without_a_task_id_leaves_the_callers_task_active(fake_host):
    """Inside wrap_gradio_gpu_call the host already started the UI's task; start_task(None) would hide it."""
    seen = {}

    def handler(task_id):
        with host_task("facechain_txt2img", None, take_lock=False):
            seen["inside"] = progress.current_task
        seen["after"] = progress.current_task
        return "ok"

    call_queue.wrap_gradio_gpu_call(handler, extra_outputs=[""])("task(ui-1)")
    assert seen == {"inside": "task(ui-1)", "after": "task(ui-1)"}
    assert None not in progress.finished_tasks and "task(ui-1)" in progress.finished_tasks


def test_host_task_with_a_task_id_registers_it(fake_host):
    with host_task("facechain_txt2img", "task(api-1)", take_lock=True):
        assert progress.current_task == "task(api-1)" and "task(api-1)" not in progress.pending_tasks
        assert not call_queue.queue_lock.acquire(blocking=False)  # held for the whole job
    assert progress.current_task is None and progress.finished_tasks[-1] == "task(api-1)"
    assert call_queue.queue_lock.acquire(blocking=False)
    call_queue.queue_lock.release()


def test_outcome_seeds_are_in_generation_order_after_ranking(fake_host, ctx, data_dir):
    install_sampler(data_dir)
    try:
        args = parse_args({"identity": IDENTITY, "fusion": {"enabled": False}, "ranking": {"top_k": 3}})
        fields = {"prompt": "portrait", "seed": SEED, "batch_size": 4, "steps": 10, "width": 512, "height": 512,
                  "do_not_save_samples": True, "do_not_save_grid": True}
        outcome = run_processing(make_txt2img(fields, args, ctx))
    finally:
        processing.fake_sampler = None
    assert outcome.order[0] == 2 and len(outcome.order) == 3  # ranking reordered and dropped one image
    assert outcome.seeds == [SEED, SEED + 1, SEED + 2, SEED + 3]
    for k, text in enumerate(outcome.infotexts):  # seeds[order[k]] is the seed of returned image k
        assert int(parse_generation_parameters(text)["Seed"]) == outcome.seeds[outcome.order[k]]


@pytest.mark.parametrize("value", ["alice:s3cr:et", "nocolon", "alice:one,bob"])
def test_the_stand_in_host_refuses_to_start_with_an_api_auth_it_cannot_parse(fake_host, tmp_path, value):
    """modules/api/api.py `Api.__init__`: `user, password = auth.split(":")` raises, so webui never reaches the
    app_started callbacks (and our routes) with such a value; the stand-in does the same."""
    from fastapi import FastAPI

    fake_host.reset_host(tmp_path / "webui", ["--api", "--api-auth", value])
    with pytest.raises(ValueError):
        fake_host.start_app(FastAPI())
