"""JobQueue: FIFO order on one worker thread, cancel of queued and running jobs, ETA, failure records, exclusivity."""

from __future__ import annotations

import threading

import pytest

from facechain_ext.errors import FaceChainError
from facechain_ext.jobs import JobHandle, JobQueue


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def queue():
    q = JobQueue()
    yield q
    q.shutdown(timeout=5)


def _blocker(gate: threading.Event, started: threading.Event | None = None):
    def fn(handle: JobHandle) -> dict:
        if started is not None:
            started.set()
        assert gate.wait(5), "test gate never opened"
        return {"ok": True}

    return fn


def test_jobs_run_in_submission_order_on_one_thread(queue):
    order: list[tuple[int, str]] = []

    def make(i: int):
        def fn(handle: JobHandle) -> dict:
            order.append((i, threading.current_thread().name))
            return {"i": i}

        return fn

    gate = threading.Event()
    first = queue.submit("test", _blocker(gate))
    jobs = [queue.submit("test", make(i)) for i in range(5)]
    assert [queue.get(j.id).status for j in jobs] == ["queued"] * 5  # the worker is busy with `first`
    gate.set()
    for job in jobs:
        queue.wait(job.id, timeout=5)
    assert queue.get(first.id).status == "done"
    assert [i for i, _ in order] == [0, 1, 2, 3, 4]
    assert {name for _, name in order} == {"facechain-jobs"}
    assert [queue.get(j.id).result for j in jobs] == [{"i": i} for i in range(5)]
    assert queue.get(jobs[-1].id).to_dict()["progress"] == 1.0


def test_worker_starts_lazily():
    q = JobQueue()
    assert q._worker is None  # creating the queue (at host start-up) starts no thread
    job = q.submit("test", lambda h: {"x": 1})
    assert q.wait(job.id, 5).status == "done"
    q.shutdown(timeout=5)
    assert not q._worker.is_alive()


def test_cancel_queued_job_never_runs(queue):
    gate, ran = threading.Event(), []
    running = queue.submit("test", _blocker(gate))
    waiting = queue.submit("test", lambda h: ran.append(1) or {})
    queue.cancel(waiting.id)
    assert queue.get(waiting.id).status == "cancelled"
    gate.set()
    queue.wait(running.id, 5)
    after = queue.submit("test", lambda h: {})
    queue.wait(after.id, 5)
    assert ran == []
    record = queue.get(waiting.id).to_dict()
    assert record["status"] == "cancelled" and record["error"]["code"] == "cancelled" and record["result"] is None


def test_cancel_running_job_stops_it_at_its_next_check(queue):
    started, steps = threading.Event(), []

    def train(handle: JobHandle) -> dict:
        for step in range(10_000):
            started.set()
            if handle.cancelled:
                raise FaceChainError("cancelled", f"Stopped at step {step}.")
            steps.append(step)
            handle.progress(step + 1, 10_000, f"step {step + 1}")
            threading.Event().wait(0.001)
        return {"finished": True}

    job = queue.submit("train", train)
    assert started.wait(5)
    queue.cancel(job.id)
    queue.wait(job.id, 5)
    record = queue.get(job.id).to_dict()
    assert record["status"] == "cancelled"
    assert record["error"]["code"] == "cancelled" and record["error"]["message"].startswith("Stopped at step")
    assert record["result"] is None and len(steps) < 10_000


def test_failures_are_recorded_and_the_worker_survives(queue):
    def bad_input(handle):
        raise FaceChainError("identity_not_found", "No identity 'x'.", name="x")

    def crash(handle):
        raise RuntimeError("boom")

    j1, j2 = queue.submit("train", bad_input), queue.submit("train", crash)
    j3 = queue.submit("train", lambda h: {"fine": 1})
    queue.wait(j3.id, 5)
    assert queue.get(j1.id).to_dict()["error"] == {"code": "identity_not_found", "message": "No identity 'x'."}
    assert queue.get(j1.id).status == "failed"
    assert queue.get(j2.id).to_dict()["error"] == {"code": "internal_error", "message": "RuntimeError: boom"}
    assert queue.get(j3.id).to_dict()["status"] == "done" and queue.get(j3.id).result == {"fine": 1}


def test_eta_follows_the_progress_rate_after_setup():
    clock = FakeClock()
    q = JobQueue(clock=clock)
    gate, reported = threading.Event(), threading.Event()
    holder: dict = {}

    def fn(handle: JobHandle) -> dict:
        holder["h"] = handle
        reported.set()
        gate.wait(5)
        return {}

    job = q.submit("train", fn)
    assert reported.wait(5)
    handle = holder["h"]
    assert q.snapshot(job.id)["eta_s"] is None  # nothing reported yet
    clock.now += 30.0  # 30 s of set-up must not count in the rate
    handle.progress(0, 100, "caching")
    assert q.snapshot(job.id)["eta_s"] is None  # one report gives no rate
    clock.now += 20.0
    handle.progress(10, 100, "step 10/100")  # 2 s per step, 90 steps left
    snap = q.snapshot(job.id)
    assert snap["eta_s"] == pytest.approx(180.0)
    assert snap["progress"] == pytest.approx(0.10) and snap["textinfo"] == "step 10/100" and snap["status"] == "running"
    clock.now += 10.0
    handle.progress(30, 100)  # 30 steps in 30 s → 1 s per step, 70 left; empty text keeps the old text
    snap = q.snapshot(job.id)
    assert snap["eta_s"] == pytest.approx(70.0) and snap["textinfo"] == "step 10/100"
    handle.progress(0, 4, "validating")  # a new phase restarts the rate
    assert q.snapshot(job.id)["eta_s"] is None
    gate.set()
    q.wait(job.id, 5)
    assert q.snapshot(job.id)["eta_s"] is None and q.snapshot(job.id)["progress"] == 1.0
    q.shutdown(timeout=5)


def test_exclusive_key_refuses_a_second_training_until_the_first_ends(queue):
    gate = threading.Event()
    first = queue.submit("train", _blocker(gate), exclusive_key="train")
    with pytest.raises(FaceChainError) as err:
        queue.submit("train", lambda h: {}, exclusive_key="train")
    assert err.value.code == "job_running" and err.value.context["job_id"] == first.id
    assert err.value.http_status == 409
    other = queue.submit("generate", lambda h: {}, exclusive_key="other")  # other keys are not blocked
    gate.set()
    queue.wait(other.id, 5)
    second = queue.submit("train", lambda h: {"second": True}, exclusive_key="train")
    assert queue.wait(second.id, 5).result == {"second": True}


def test_unknown_job_and_shutdown(queue):
    with pytest.raises(FaceChainError) as err:
        queue.get("0123456789ab")
    assert err.value.code == "job_not_found" and err.value.http_status == 404
    with pytest.raises(FaceChainError):
        queue.cancel("0123456789ab")

    gate, started = threading.Event(), threading.Event()

    def slow(handle):
        started.set()
        while not handle.cancelled:
            gate.wait(0.01)
        raise FaceChainError("cancelled", "Stopped.")

    running = queue.submit("train", slow)
    waiting = queue.submit("train", lambda h: {})
    assert started.wait(5)
    queue.shutdown(timeout=5)
    assert queue.get(running.id).status == "cancelled" and queue.get(waiting.id).status == "cancelled"
    with pytest.raises(FaceChainError) as err:
        queue.submit("train", lambda h: {})
    assert err.value.code == "host_unavailable"
    queue.shutdown(timeout=1)  # idempotent


def test_old_finished_records_are_dropped_beyond_the_limit():
    q = JobQueue(max_records=3)
    ids = [q.submit("t", lambda h: {}).id for _ in range(3)]
    q.wait(ids[-1], 5)
    newest = q.submit("t", lambda h: {})
    q.wait(newest.id, 5)
    kept = [j.id for j in q.list()]
    assert ids[0] not in kept and newest.id in kept and len(kept) == 3
    q.shutdown(timeout=5)
