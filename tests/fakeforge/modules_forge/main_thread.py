"""Forge `modules_forge/main_thread.py`: the one thread that runs Forge's txt2img/img2img work.

Followed from Forge: `async_run` queues a Task; `loop()` (Forge's main thread, started by webui.py) runs tasks in
order; `run_and_wait_result(func, *args, **kwargs)` queues and polls every 10 ms; an exception inside the task is
printed and stored in `last_exception`, and the caller gets `None` (the exception is **not** re-raised).
Fake-only: `stop()` ends `loop()` so a test can join the thread.
"""

from __future__ import annotations

import threading
import time
import traceback

lock = threading.Lock()
last_id = 0
waiting_list: list = []
finished_list: list = []
last_exception = None
_stop = threading.Event()


class Task:
    def __init__(self, task_id, func, args, kwargs) -> None:
        self.task_id, self.func, self.args, self.kwargs = task_id, func, args, kwargs
        self.result = None
        self.exception = None

    def work(self) -> None:
        global last_exception
        try:
            self.result = self.func(*self.args, **self.kwargs)
            self.exception = last_exception = None
        except Exception as e:  # noqa: BLE001 - Forge prints and keeps it
            traceback.print_exc()
            self.exception = last_exception = e


def loop() -> None:
    while not _stop.is_set():
        time.sleep(0.01)
        if waiting_list:
            with lock:
                task = waiting_list.pop(0)
            task.work()
            with lock:
                finished_list.append(task)


def stop() -> None:
    _stop.set()


def async_run(func, *args, **kwargs) -> int:
    global last_id
    with lock:
        last_id += 1
        waiting_list.append(Task(last_id, func, args, kwargs))
        return last_id


def run_and_wait_result(func, *args, **kwargs):
    current_id = async_run(func, *args, **kwargs)
    while True:
        time.sleep(0.01)
        for task in finished_list.copy():
            if task.task_id == current_id:
                with lock:
                    finished_list.remove(task)
                return task.result
