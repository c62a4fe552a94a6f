"""Stand-in for modules/progress.py: the host's task registry behind /internal/progress."""

from __future__ import annotations

import random
import string
import time
from typing import Any

current_task: str | None = None
pending_tasks: dict[str, float] = {}
finished_tasks: list[str] = []
recorded_results: list[tuple[str | None, Any]] = []
recorded_results_limit = 2


def create_task_id(task_type: str) -> str:
    res = "".join(random.choices(string.ascii_uppercase + string.digits, k=7))
    return f"task({task_type}-{res})"


def start_task(id_task: str | None) -> None:
    global current_task
    current_task = id_task
    pending_tasks.pop(id_task, None)


def finish_task(id_task: str | None) -> None:
    global current_task
    if current_task == id_task:
        current_task = None
    finished_tasks.append(id_task)
    if len(finished_tasks) > 16:
        finished_tasks.pop(0)


def record_results(id_task: str | None, res: Any) -> None:
    recorded_results.append((id_task, res))
    if len(recorded_results) > recorded_results_limit:
        recorded_results.pop(0)


def add_task_to_queue(id_job: str) -> None:
    pending_tasks[id_job] = time.time()


class ProgressRequest:
    """The body of POST /internal/progress (host: a pydantic model with these fields)."""

    def __init__(self, id_task: str | None = None, id_live_preview: int = -1, live_preview: bool = True) -> None:
        self.id_task, self.id_live_preview, self.live_preview = id_task, id_live_preview, live_preview


def progressapi(req: ProgressRequest) -> dict[str, Any]:
    """What the page's progress bar polls (host: `progressapi`, answered as ProgressResponse): a task that is not the
    current one is queued ("In queue: i/n") or unknown ("Waiting..."); the current one reports
    job_no/job_count + sampling_step/sampling_steps/job_count, an ETA from state.time_start, and state.textinfo.
    No live preview here."""
    from modules import shared

    active = req.id_task == current_task
    queued = req.id_task in pending_tasks
    completed = req.id_task in finished_tasks
    answer: dict[str, Any] = {"active": active, "queued": queued, "completed": completed, "progress": None,
                              "eta": None, "live_preview": None, "id_live_preview": -1, "textinfo": None}
    if not active:
        answer["textinfo"] = "Waiting..."
        if queued:
            order = sorted(pending_tasks, key=lambda task: pending_tasks[task])
            answer["textinfo"] = f"In queue: {order.index(req.id_task) + 1}/{len(order)}"
        return answer
    state = shared.state
    progress = 0.0
    if state.job_count > 0:
        progress += state.job_no / state.job_count
    if state.sampling_steps > 0 and state.job_count > 0:
        progress += 1 / state.job_count * state.sampling_step / state.sampling_steps
    progress = min(progress, 1)
    elapsed = time.time() - (state.time_start or time.time())
    predicted = elapsed / progress if progress > 0 else None
    answer.update(progress=progress, eta=predicted - elapsed if predicted is not None else None,
                  id_live_preview=req.id_live_preview, textinfo=state.textinfo)
    return answer
