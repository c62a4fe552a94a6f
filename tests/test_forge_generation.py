"""Generation on Forge (tests/fakeforge on the stand-in host): FaceChain's txt2img runs on Forge's main thread, as
Forge's modules/txt2img.py runs its own, and keeps the host's error, progress and Interrupt behaviour.

Forge's `main_thread.run_and_wait_result` prints a task's exception and returns None; FaceChain must re-raise the
real error in the caller's thread (API: the error, not `'NoneType' object has no attribute ...`; tab: the message in
the status) and Forge's main thread must go on serving later generations.
"""

from __future__ import annotations

import threading

import pytest
from generation_helpers import IDENTITY, SEED, install_sampler, make_context
from modules import processing, progress, shared

from facechain_ext.schemas import parse_args
from facechain_ext.webui import tab_generate
from facechain_ext.webui.host_processing import make_txt2img, on_forge_main_thread, run_processing

FIELDS = {"prompt": "portrait", "seed": SEED, "batch_size": 2, "steps": 10, "width": 512, "height": 512,
          "do_not_save_samples": True, "do_not_save_grid": True}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, data_dir):
    return make_context(tmp_path_factory.mktemp("facechain_forge_generation"), data_dir)


@pytest.fixture
def sampler(fake_forge, data_dir):
    """The fake checkpoint, recording the thread of every sampling; `fail` makes the next sampling raise."""
    inner = install_sampler(data_dir)
    original = inner.sample
    inner.threads, inner.fail, inner.on_sample = [], None, None

    def sample(p, seed, prompt, negative, networks):
        inner.threads.append(threading.current_thread().name)
        if inner.fail is not None:
            raise inner.fail
        if inner.on_sample is not None:
            inner.on_sample()
        return original(p, seed, prompt, negative, networks)

    inner.sample = sample
    yield inner
    processing.fake_sampler = None


def generate(ctx):
    args = parse_args({"identity": IDENTITY, "fusion": {"enabled": False}})
    return run_processing(make_txt2img(FIELDS, args, ctx))


def test_runs_on_forges_main_thread_and_reraises_the_samplers_error(ctx, sampler, fake_forge):
    outcome = generate(ctx)
    assert len(outcome.images) == 2 and sampler.threads == ["forge-main-thread"] * 2
    sampler.fail = RuntimeError("CUDA error: device-side assert triggered")
    with pytest.raises(RuntimeError, match="device-side assert triggered"):
        generate(ctx)
    assert fake_forge.last_exception is None  # our task caught it: Forge's wrapper shows ours, not a stale one
    sampler.fail = None
    assert len(generate(ctx).images) == 2  # the main thread still serves generations
    assert sampler.threads[-1] == "forge-main-thread"


def test_base_exceptions_come_back_too_and_the_loop_survives(fake_forge):
    """Forge's Task.work catches only Exception: a BaseException escaping it would end Forge's main loop."""
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        on_forge_main_thread(interrupted)
    assert on_forge_main_thread(lambda a, b: a + b, 2, 3) == 5


def test_the_generate_view_shows_the_error_of_the_main_thread_task(ctx, sampler):
    sampler.fail = ValueError("sampler broke")
    handler = tab_generate._wrapped_handler(ctx)
    gallery, infotexts, _, status = handler("task(forge-fail)", IDENTITY, ["film_photo"], 1, 512, 512, 10, 7.0,
                                            "Euler a", SEED, False, False, 0.7, False, 0, 0.0, False, "", "")
    assert (gallery, infotexts) == ([], []) and "ValueError: sampler broke" in status
    assert "task(forge-fail)" in progress.finished_tasks and not shared.state.interrupted


def test_interrupt_stops_the_generate_view_between_styles(ctx, sampler):
    """The host's Interrupt button sets `shared.state.interrupted` from another thread: the running style ends
    its batch, the next style does not start, and the wrapper clears the flag for the next job."""
    sampler.on_sample = shared.state.interrupt
    handler = tab_generate._wrapped_handler(ctx)
    gallery, _, _, status = handler("task(forge-stop)", IDENTITY, ["film_photo", "studio_headshot"], 2, 512, 512, 10,
                                    7.0, "Euler a", SEED, False, False, 0.7, False, 0, 0.0, False, "", "")
    assert len(gallery) == 2 and sampler.threads == ["forge-main-thread"] * 2  # one style, its one batch
    assert "error" not in status and not shared.state.interrupted


def test_template_passes_may_use_fact_on_forge(fake_forge, tmp_path, fact_release):
    """Before a template job is queued: on Forge with an SD1 engine, only missing files stop FACT (no Forge refusal)."""
    from journey_steps import install_fact_release
    from tiny_models import tiny_forge_sd

    from facechain_ext.config import Settings
    from facechain_ext.context import FaceChainContext
    from facechain_ext.webui.template_fact import fact_unavailable_reason

    ctx = FaceChainContext(Settings(models_dir=tmp_path / "models", lora_dir=tmp_path / "Lora"))
    engine = tiny_forge_sd(tmp_path / "engine")
    missing = fact_unavailable_reason(ctx, engine)
    assert missing is not None and "ms1mv2_model_TransFace_S.pt" in missing and "Forge" not in missing
    install_fact_release(ctx.settings.models_dir, fact_release)
    assert fact_unavailable_reason(ctx, engine) is None
    engine.is_sd1 = False  # Forge's Flux/SD3 engines keep every legacy flag False
    assert "Stable Diffusion 1.x checkpoints only" in fact_unavailable_reason(ctx, engine)
