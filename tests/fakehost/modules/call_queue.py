"""Stand-in for modules/call_queue.py: one FIFO, non-re-entrant lock shared by UI and API, and the UI wrappers."""

from __future__ import annotations

import html
import sys
import threading

from modules import progress, shared
from modules.errors import print_error

queue_lock = threading.Lock()  # not an RLock: taking it twice in one thread deadlocks, exactly like the host


def wrap_queued_call(func):
    def f(*args, **kwargs):
        with queue_lock:
            return func(*args, **kwargs)

    return f


def wrap_gradio_gpu_call(func, extra_outputs=None):
    """A first argument 'task(...)' is the task id from JS; the call runs under queue_lock with shared.state begun."""

    def f(*args, **kwargs):
        if args and isinstance(args[0], str) and args[0][0:5] == "task(" and args[0][-1] == ")":
            id_task = args[0]
            progress.add_task_to_queue(id_task)
        else:
            id_task = None
        with queue_lock:
            shared.state.begin()
            progress.start_task(id_task)
            try:
                res = func(*args, **kwargs)
                progress.record_results(id_task, res)
            finally:
                progress.finish_task(id_task)
            shared.state.end()
        return res

    return wrap_gradio_call(f, extra_outputs=extra_outputs, add_stats=True)


def wrap_gradio_call(func, extra_outputs=None, add_stats=False):
    """Exceptions become an HTML error in the last output (the host's behaviour); the job state is reset."""

    def f(*args, extra_outputs_array=extra_outputs, **kwargs):
        try:
            res = list(func(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 - the host turns any error into an HTML message
            print_error("Error completing request", exc_info=True)
            e = _forge_last_exception() or e
            shared.state.job = ""
            shared.state.job_count = 0
            if extra_outputs_array is None:
                extra_outputs_array = [None, ""]
            res = list(extra_outputs_array) + [f"<div class='error'>{html.escape(f'{type(e).__name__}: {e}')}</div>"]
        shared.state.skipped = False
        shared.state.interrupted = False
        shared.state.job_count = 0
        if not add_stats:
            return tuple(res)
        res[-1] = f"{res[-1] or ''}<div class='performance'><p class='time'>Time taken: 0.00s</p></div>"
        return tuple(res)

    return f


def _forge_last_exception():
    """Forge's wrap_gradio_call_no_job (Forge modules/call_queue.py) shows `main_thread.last_exception`, the error of
    the last task its main thread ran, instead of the caller's when there is one. A1111 has no main thread: None."""
    main_thread = sys.modules.get("modules_forge.main_thread")
    return getattr(main_thread, "last_exception", None)
