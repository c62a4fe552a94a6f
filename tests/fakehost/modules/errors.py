"""Stand-in for modules/errors.py: the host reports callback/preload failures instead of raising them."""

from __future__ import annotations

import sys
import traceback

exception_records: list[dict] = []  # the host keeps the recent exceptions; tests assert on this list


def record_exception() -> None:
    _, exc, tb = sys.exc_info()
    if exc is None:
        return
    exception_records.append({"exception": repr(exc), "traceback": traceback.format_exception(type(exc), exc, tb)})


def report(message: str, *, exc_info: bool = False) -> None:
    if exc_info:
        record_exception()
    print(message, file=sys.stderr)


def display(e: Exception, task: str, *, full_traceback: bool = False) -> None:
    exception_records.append({"exception": repr(e), "task": task})
    print(f"{task or 'error'}: {type(e).__name__}: {e}", file=sys.stderr)


def print_error(message: str, *, exc_info: bool = False) -> None:
    report(message, exc_info=exc_info)
