"""The host task wrapper: how every long FaceChain job (training, generation, future FACT work) runs inside the host.

A "host task" is the host's own unit of GPU work: it holds `modules.call_queue.queue_lock` (the host's FIFO,
non re-entrant lock, so txt2img requests queue behind it), keeps `shared.state` begun/ended (progress bar,
`/sdapi/v1/progress`, the Interrupt button) and is registered in the task registry of `modules/progress.py`
(`add_task_to_queue` → `start_task` → `finish_task`), exactly as the host's own txt2img API does
(modules/api/api.py `text2imgapi`). FaceChain's background queue (`facechain_ext/jobs.py`) is a different thing: a
job there may run a host task.

Callers already inside the host's GPU wrapper (a tab button wrapped by `call_queue.wrap_gradio_gpu_call`) pass
`take_lock=False`: the lock is not re-entrant and that wrapper already began `shared.state`.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Iterator, Optional


def new_host_task_id(kind: str) -> str:
    """A task id in the host's format `task(...)` (modules/progress.py `create_task_id`, A1111 >= 1.8)."""
    from modules import progress

    create = getattr(progress, "create_task_id", None)
    return create(kind) if create is not None else f"task({kind}-{uuid.uuid4().hex[:7]})"


def is_host_task_id(value: Optional[str]) -> bool:
    return isinstance(value, str) and value.startswith("task(") and value.endswith(")")


def queue_host_task(task_id: str) -> None:
    """Show the task as queued in the host's progress API until `host_task` starts it."""
    from modules import progress

    progress.add_task_to_queue(task_id)


def drop_queued_host_task(task_id: str, *, finish: bool = False) -> None:
    """Forget a queued task that will never start (refused or cancelled); `finish` also marks it finished."""
    from modules import progress

    getattr(progress, "pending_tasks", {}).pop(task_id, None)
    if finish:
        progress.finish_task(task_id)


def interrupt_host_task(task_id: Optional[str], *, skip: bool = False) -> bool:
    """The host's Interrupt (or Skip) for one task: `shared.state.interrupt()` / `skip()`, as the host's buttons call
    (modules/ui_toprow.py), but only while `task_id` is the host's current task (modules/progress.py
    `current_task`), so a FaceChain button never stops someone else's generation. True when it was sent."""
    from modules import progress, shared

    if not is_host_task_id(task_id) or getattr(progress, "current_task", None) != task_id:
        return False
    if skip:
        shared.state.skip()
    else:
        shared.state.interrupt()
    return True


@contextlib.contextmanager
def host_task(name: str, task_id: Optional[str], *, take_lock: bool = True, queued: bool = False) -> Iterator[None]:
    """Queue lock + `shared.state` + task registry around the body.

    `name` becomes `shared.state.job` (what the host shows). `task_id` None leaves the registry alone: the caller's
    wrapper already started its own task, and `start_task(None)` would make it look inactive to /internal/progress.
    `queued=True` means `queue_host_task(task_id)` was called earlier (when the job was submitted).
    """
    from modules import call_queue, progress, shared

    if task_id and not queued:
        progress.add_task_to_queue(task_id)
    lock = call_queue.queue_lock if take_lock else contextlib.nullcontext()
    with lock:
        if take_lock:
            shared.state.begin(job=name)
        if task_id:
            progress.start_task(task_id)
        try:
            yield
        finally:
            if task_id:
                progress.finish_task(task_id)
            if take_lock:
                shared.state.end()
