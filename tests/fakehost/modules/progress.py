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
