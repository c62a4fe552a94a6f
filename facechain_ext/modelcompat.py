"""Pydantic v1/v2 compatibility for our request and file models.

A1111 ships fastapi 0.94 with pydantic 1, Forge ships pydantic 2 (HOST_CONTRACT.md §7). Our models only use features
both versions share (plain fields, `Field(ge=, le=)`, nested models, `class Config: extra = "forbid"`); these helpers
hide the few method names that differ, and turn a `ValidationError` into a `FaceChainError` that names each bad field.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic

from . import strict_json
from .errors import FaceChainError

PYDANTIC_V2 = int(pydantic.VERSION.split(".")[0]) >= 2

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)


def validation_problems(exc: pydantic.ValidationError) -> list[str]:
    """`field.path: reason` for every problem pydantic found (same shape on v1 and v2): for the `problems` context of
    the API's error, where programs want the exact path."""
    problems = []
    for item in exc.errors():
        where = ".".join(str(part) for part in item.get("loc", ())) or "(root)"
        problems.append(f"{where}: {item.get('msg', 'invalid value')}")
    return problems


# pydantic error type (v1 name, v2 name) -> the reason in words, with the limit from the error's context
_LIMITS = {
    ("value_error.number.not_ge", "greater_than_equal"): ("must be at least", ("limit_value", "ge")),
    ("value_error.number.not_gt", "greater_than"): ("must be more than", ("limit_value", "gt")),
    ("value_error.number.not_le", "less_than_equal"): ("must be at most", ("limit_value", "le")),
    ("value_error.number.not_lt", "less_than"): ("must be less than", ("limit_value", "lt")),
}
_REASONS = {
    "value_error.missing": "is required", "missing": "is required",
    "value_error.extra": "is not a known field", "extra_forbidden": "is not a known field",
    "type_error.integer": "must be a whole number", "int_parsing": "must be a whole number",
    "int_type": "must be a whole number", "int_from_float": "must be a whole number",
    "type_error.float": "must be a number", "float_parsing": "must be a number", "float_type": "must be a number",
    "type_error.bool": "must be true or false", "bool_parsing": "must be true or false", "bool_type": "must be true or false",
    "type_error.str": "must be text", "string_type": "must be text",
    "type_error.none.not_allowed": "must not be empty", "type_error.list": "must be a list", "list_type": "must be a list",
    "type_error.dict": "must be an object", "dict_type": "must be an object", "model_type": "must be an object",
}


def human_problem(item: dict[str, Any]) -> str:
    """One pydantic error as words: the field (its parents in brackets, never a dotted path) and the reason; a
    validator's own message is kept as written."""
    loc = [str(part) for part in item.get("loc", ()) if not str(part).isdigit() and str(part) != "__root__"]
    field = loc[-1] if loc else ""
    if len(loc) > 1:
        field += f" (in {' > '.join(loc[:-1])})"
    kind, ctx = str(item.get("type", "")), item.get("ctx") or {}
    for names, (words, keys) in _LIMITS.items():
        if kind in names:
            limit = next((ctx[key] for key in keys if key in ctx), None)
            return f"{field or 'the value'} {words} {limit}"
    if kind in _REASONS:
        return f"{field or 'the value'} {_REASONS[kind]}"
    message = str(item.get("msg", "is not valid"))
    message = message.removeprefix("Value error, ")  # pydantic 2 prefixes a validator's own ValueError text
    return f"{field}: {message}" if field else message


def parse_model(model: type[ModelT], data: Any, *, what: str, code: str = "invalid_request") -> ModelT:
    """Validate `data` (a dict or a JSON string) into `model`, or raise FaceChainError(code) naming `what` and the
    fields in words (the exact paths are in the error's `problems` context)."""
    if isinstance(data, model):
        return data
    if isinstance(data, (str, bytes)):
        try:
            data = strict_json.loads(data, what=what)
        except FaceChainError as err:  # a caller's own code (e.g. invalid_style) wins over the JSON codes
            if code == "invalid_request":
                raise
            raise FaceChainError(code, err.message, **err.context) from None
    if not isinstance(data, dict):
        raise FaceChainError(code, f"{what}: expected an object, got {type(data).__name__}.", input=what)
    try:
        return model.model_validate(data) if PYDANTIC_V2 else model.parse_obj(data)  # type: ignore[attr-defined]
    except pydantic.ValidationError as exc:
        problems = validation_problems(exc)
        words = "; ".join(human_problem(item) for item in exc.errors())
        raise FaceChainError(code, f"{what}: {words}.", input=what, problems=problems) from exc


def dump_model(instance: pydantic.BaseModel, *, exclude_none: bool = False) -> dict[str, Any]:
    if PYDANTIC_V2:
        return instance.model_dump(exclude_none=exclude_none)  # type: ignore[attr-defined]
    return instance.dict(exclude_none=exclude_none)


def json_schema(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    return model.model_json_schema() if PYDANTIC_V2 else model.schema()  # type: ignore[attr-defined]


def copy_model(instance: ModelT, **changes: Any) -> ModelT:
    if PYDANTIC_V2:
        return instance.model_copy(update=changes)  # type: ignore[attr-defined]
    return instance.copy(update=changes)


def field_bounds(model: type[pydantic.BaseModel], name: str) -> tuple[float | None, float | None]:
    """(lowest, highest) value a numeric field accepts (`Field(ge=/gt=, le=/lt=)`), None where unbounded: the one source
    of the limits the UI's number inputs and sliders carry. An exclusive bound is returned as is (the UI then also
    accepts the bound itself, and validation through `parse_model` refuses it with the field's message)."""
    if PYDANTIC_V2:
        metadata = model.model_fields[name].metadata  # type: ignore[attr-defined]
        limits = {key: getattr(item, key) for item in metadata for key in ("ge", "gt", "le", "lt") if hasattr(item, key)}
    else:
        info = model.__fields__[name].field_info  # type: ignore[attr-defined]
        limits = {key: getattr(info, key) for key in ("ge", "gt", "le", "lt") if getattr(info, key, None) is not None}
    low = limits.get("ge", limits.get("gt"))
    high = limits.get("le", limits.get("lt"))
    return low, high
