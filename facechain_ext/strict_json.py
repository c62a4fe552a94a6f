"""Strict JSON for everything a client sends: standard JSON only, finite numbers, bounded nesting.

Python's `json` accepts the non-standard tokens `NaN`, `Infinity` and `-Infinity`, and turns `1e400` into `inf`;
such a number in a float field (`eta`, a value in `override_settings`) would reach the sampler. Deep nesting makes the
parser (and later pydantic) recurse until `RecursionError`. `loads` refuses all of these with a FaceChainError
(`invalid_json`, `non_finite_number`, `json_too_deep`, all 422) naming the position or the token.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import FaceChainError

MAX_DEPTH = 32  # our deepest request (txt2img -> facechain -> ranking) is 3 levels; override_settings adds a few


class _NonFinite(ValueError):
    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.token = token


def _reject_constant(token: str) -> Any:
    raise _NonFinite(token)  # NaN, Infinity, -Infinity


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise _NonFinite(token)  # e.g. 1e400 overflows to inf
    return value


def depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, `[]` is 1), computed without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            break
        stack.extend((child, level + 1) for child in children)
    return deepest


def loads(data: str | bytes, *, what: str = "body", max_depth: int = MAX_DEPTH) -> Any:
    """Parse `data` as strict JSON (see the module docstring); `what` names the input in error messages."""
    try:
        value = json.loads(data, parse_constant=_reject_constant, parse_float=_finite_float)
    except _NonFinite as exc:
        raise FaceChainError("non_finite_number", f"{what}: {exc.token} is not a finite number; JSON numbers must be "
                             "finite (NaN and Infinity are not JSON).", input=what, token=exc.token) from None
    except RecursionError:
        raise FaceChainError("json_too_deep", f"{what}: the JSON is nested too deeply (at most {max_depth} levels).",
                             input=what, max_depth=max_depth) from None
    except json.JSONDecodeError as exc:
        raise FaceChainError("invalid_json", f"{what}: not valid JSON ({exc.msg} at line {exc.lineno}, column "
                             f"{exc.colno}).", input=what, line=exc.lineno, column=exc.colno) from None
    except ValueError as exc:  # bytes that are not UTF-8/16/32, an integer with more digits than Python converts
        raise FaceChainError("invalid_json", f"{what}: not valid JSON ({exc}).", input=what) from None
    if depth(value) > max_depth:
        raise FaceChainError("json_too_deep", f"{what}: the JSON is nested too deeply (at most {max_depth} levels).",
                             input=what, max_depth=max_depth)
    return value
