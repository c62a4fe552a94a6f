"""A small in-process job queue: one worker thread runs long FaceChain jobs (training) one after another.

Why not threads per request: training uses the host's only model and GPU, so jobs must run strictly in order.
Why not the host's own queue: the host has no job records; clients (tab, API) need to poll a job after a page
reload, cancel it while it waits, and read its result or error. Records live in memory on the queue object,
which the host glue owns through `FaceChainContext.jobs` (no module globals).

A job function receives a `JobHandle`: it reports progress with `handle.progress(done, total, text)` and must
check `handle.cancelled` regularly (the trainer checks it every step) and raise `FaceChainError("cancelled")`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .errors import FaceChainError
from .names import JOB_ID, JOB_ID_RULE, check_name

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)

JobFn = Callable[["JobHandle"], dict | None]


@dataclass
class Job:
    """One job's record. Fields are written by the queue and the worker under the queue's lock."""

    id: str
    kind: str
    fn: JobFn = field(repr=False)
    exclusive_key: str | None = None
    subjects: frozenset[str] = frozenset()  # what the job reads/writes, e.g. "identity:alice" (see `active_for`)
    status: str = QUEUED
    done: int = 0
    total: int = 0
    textinfo: str = ""
    result: dict | None = None
    error: dict | None = None
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    # (time, done) of the first progress report: the rate excludes set-up time (model moves, latent caching).
    rate_origin: tuple[float, int] | None = None
    last_report: tuple[float, int] | None = None
    extra: dict = field(default_factory=dict)  # caller's own references (e.g. the host task id); not in to_dict()
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    finished_event: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def progress(self) -> float:
        if self.status == DONE:
            return 1.0
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left, from the average rate since the first progress report; None until it can be estimated."""
        if self.status != RUNNING or self.rate_origin is None or self.last_report is None or self.total <= 0:
            return None
        (t0, d0), (t1, d1) = self.rate_origin, self.last_report
        if d1 <= d0 or t1 <= t0:
            return None
        seconds_per_unit = (t1 - t0) / (d1 - d0)
        return round(max(0.0, self.total - d1) * seconds_per_unit, 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "progress": round(self.progress, 4),
            "eta_s": self.eta_s,
            "textinfo": self.textinfo,
            "result": self.result,
            "error": self.error,
        }


class JobHandle:
    """What a running job sees of its own record: progress reporting and the cancel flag."""

    def __init__(self, job: Job, lock: threading.Lock, clock: Callable[[], float]) -> None:
        self.job = job
        self._lock = lock
        self._clock = clock

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def cancelled(self) -> bool:
        return self.job.cancel_event.is_set()

    def cancel(self) -> None:
        """Let the job cancel itself (e.g. the host's Interrupt button was pressed)."""
        self.job.cancel_event.set()

    def progress(self, done: int, total: int, text: str = "") -> None:
        now = self._clock()
        with self._lock:
            job = self.job
            job.done, job.total = int(done), int(total)
            if text:
                job.textinfo = text
            if job.rate_origin is None or done < job.rate_origin[1]:
                job.rate_origin = (now, int(done))  # first report, or a new phase restarted the count
            job.last_report = (now, int(done))


class JobQueue:
    """FIFO queue with one lazily started worker thread and in-memory job records."""

    def __init__(self, *, max_records: int = 200, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._pending: deque[Job] = deque()
        self._jobs: dict[str, Job] = {}
        self._worker: threading.Thread | None = None
        self._stopping = False
        self._max_records = max_records
        self._clock = clock

    # ---- client side -------------------------------------------------------------------------------------
    def submit(self, kind: str, fn: JobFn, *, exclusive_key: str | None = None, subjects: Iterable[str] = ()) -> Job:
        """Queue `fn`; with `exclusive_key`, refuse (`job_running`) while a job with that key waits or runs.
        `subjects` name what the job uses, so other code can refuse to change it meanwhile (`require_idle`)."""
        with self._lock:
            if self._stopping:
                raise FaceChainError("host_unavailable", "FaceChain is shutting down; the job was not queued.", kind=kind)
            if exclusive_key is not None:
                busy = [j for j in self._jobs.values() if j.exclusive_key == exclusive_key and j.status in (QUEUED, RUNNING)]
                if busy:
                    raise FaceChainError(
                        "job_running",
                        f"A {busy[0].kind} job is already {busy[0].status} (id {busy[0].id}); wait for it or cancel it.",
                        job_id=busy[0].id,
                    )
            job = Job(id=uuid.uuid4().hex[:12], kind=kind, fn=fn, exclusive_key=exclusive_key,
                      subjects=frozenset(subjects), created=self._clock())
            self._jobs[job.id] = job
            self._pending.append(job)
            self._forget_old_records()
            self._ensure_worker()
            self._wakeup.notify()
            return job

    def get(self, job_id: str) -> Job:
        check_name(job_id, "job id", pattern=JOB_ID, rule=JOB_ID_RULE)
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise FaceChainError("job_not_found", f"No FaceChain job with id {job_id!r} (jobs are kept until restart).", job_id=job_id)
        return job

    def snapshot(self, job_id: str) -> dict[str, Any]:
        """`get(id).to_dict()` read under the lock, so the fields are consistent with each other."""
        job = self.get(job_id)
        with self._lock:
            return job.to_dict()

    def active_for(self, subject: str) -> Job | None:
        """The oldest queued or running job that uses `subject`, or None."""
        with self._lock:
            busy = [j for j in self._jobs.values() if subject in j.subjects and j.status in (QUEUED, RUNNING)]
        return min(busy, key=lambda j: j.created) if busy else None

    def require_idle(self, subject: str, action: str) -> None:
        """FaceChainError `job_running` (HTTP 409) naming the job when a queued/running job uses `subject`."""
        job = self.active_for(subject)
        if job is not None:
            raise FaceChainError(
                "job_running",
                f"Cannot {action}: {job.kind} job {job.id} is {job.status} for {subject.split(':', 1)[-1]!r}; "
                "wait for it to finish or cancel it first.",
                job_id=job.id, kind=job.kind, status=job.status, subject=subject,
            )

    def list(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created)

    def cancel(self, job_id: str) -> Job:
        """A queued job is cancelled at once; a running one is asked to stop (it ends `cancelled` at its next check)."""
        job = self.get(job_id)
        with self._lock:
            if job.status == QUEUED:
                self._pending.remove(job)
                self._finish(job, CANCELLED, error={"code": "cancelled", "message": "Cancelled before it started."})
            elif job.status == RUNNING:
                job.cancel_event.set()
                job.textinfo = "Cancelling…"
        return job

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job finished (CLI, tests); returns the job either way."""
        job = self.get(job_id)
        job.finished_event.wait(timeout)
        return job

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel everything and stop the worker (host `on_script_unloaded`). Safe to call more than once."""
        with self._lock:
            self._stopping = True
            while self._pending:
                self._finish(self._pending.popleft(), CANCELLED, error={"code": "cancelled", "message": "FaceChain was unloaded."})
            for job in self._jobs.values():
                if job.status == RUNNING:
                    job.cancel_event.set()
            worker = self._worker
            self._wakeup.notify_all()
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)

    # ---- worker side -------------------------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._run_forever, name="facechain-jobs", daemon=True)
            self._worker.start()

    def _run_forever(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._stopping:
                    self._wakeup.wait()
                if self._stopping and not self._pending:
                    return
                job = self._pending.popleft()
                job.status, job.started = RUNNING, self._clock()
            self._run_one(job)

    def _run_one(self, job: Job) -> None:
        handle = JobHandle(job, self._lock, self._clock)
        try:
            result = job.fn(handle)
        except FaceChainError as err:
            status = CANCELLED if err.code == "cancelled" else FAILED
            with self._lock:
                self._finish(job, status, error={"code": err.code, "message": err.message})
            return
        except Exception as exc:  # noqa: BLE001 - a job must never kill the worker; the record carries the error
            log.exception("FaceChain job %s (%s) failed", job.id, job.kind)
            with self._lock:
                self._finish(job, FAILED, error={"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"})
            return
        with self._lock:
            self._finish(job, DONE, result=result or {})

    def _finish(self, job: Job, status: str, *, result: dict | None = None, error: dict | None = None) -> None:
        """Record the outcome (caller holds the lock)."""
        job.status, job.result, job.error, job.finished = status, result, error, self._clock()
        if status == DONE:
            job.textinfo = job.textinfo or "Done"
        elif error is not None:
            job.textinfo = error["message"]
        job.finished_event.set()

    def _forget_old_records(self) -> None:
        """Keep memory bounded: drop the oldest finished records beyond `max_records` (caller holds the lock)."""
        finished = sorted((j for j in self._jobs.values() if j.status in FINISHED), key=lambda j: j.created)
        for job in finished[: max(0, len(self._jobs) - self._max_records)]:
            del self._jobs[job.id]
