"""Turning posted JSON into models, with 422 details that name the item index and the field.

Client input is validated only here, by the models ``bounded`` to the server's ``Limits``, and a
request's items by one list validator: pydantic-core walks every item (not just up to the first
failure, so one 422 lists the problems) with no Python loop or ``try`` per item.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, TypeVar

from pydantic import Field, TypeAdapter, ValidationError

from .config import Limits
from .errors import ValidationFailed
from .model_fields import Strict, bounded
from .models import AgentLogEvent, AgentLogIn, LogIn, SystemLogEvent, SystemLogIn

M = TypeVar("M", bound=Strict)
MAX_REPORTED = 50

_UNION_TAGS = ("agent_log", "system_log")


class _Validators:
    """The validators of one ``Limits``: per kind, one for an item and one for a list of them."""

    def __init__(self, limits: Limits) -> None:
        agent, system = bounded(AgentLogIn, limits), bounded(SystemLogIn, limits)
        tagged = bounded(AgentLogEvent, limits) | bounded(SystemLogEvent, limits)
        event: Any = Annotated[tagged, Field(discriminator="kind")]
        self.one: dict[str, TypeAdapter[Any]] = {
            "agent_log": TypeAdapter(agent),
            "system_log": TypeAdapter(system),
            "event": TypeAdapter(event),
        }
        self.many: dict[str, TypeAdapter[list[Any]]] = {
            "agent_log": TypeAdapter(list[agent]),  # type: ignore[valid-type]
            "system_log": TypeAdapter(list[system]),  # type: ignore[valid-type]
            "event": TypeAdapter(list[event]),
        }


@functools.lru_cache(maxsize=16)
def _validators(limits: Limits) -> _Validators:
    return _Validators(limits)


def _message(err: Any, field: str) -> str:
    if err["type"] == "extra_forbidden":
        return f"unknown field {field!r}; remove it (see the API docs for the accepted fields)"
    if err["type"] == "string_too_long" and isinstance(err.get("input"), str):
        return f"{field} is {len(err['input'])} characters long; the limit is {err['ctx']['max_length']}"
    return str(err["msg"])


def error_details(exc: ValidationError, index: int | None = None, *, indexed: bool = False) -> list[dict[str, Any]]:
    """One detail per error: ``field`` (dotted), ``message``, ``type``, and ``index`` (``index``,
    or with ``indexed`` the list position that starts each error's location)."""
    out = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        where = index
        if indexed and loc and isinstance(loc[0], int):
            where, loc = loc[0], loc[1:]
        # a discriminated union puts the tag first: ("agent_log", "content") → "content"
        if loc and loc[0] in _UNION_TAGS:
            loc = loc[1:]
        field = ".".join(str(p) for p in loc)
        if err["type"] in ("union_tag_not_found", "union_tag_invalid"):
            field = "kind"
        detail: dict[str, Any] = {"field": field or "(item)", "message": _message(err, field), "type": err["type"]}
        if where is not None:
            detail = {"index": where, **detail}
        out.append(detail)
    return out


def _summary(details: list[dict[str, Any]]) -> str:
    first = details[0]
    where = f"item {first['index']}: " if "index" in first else ""
    more = f" (and {len(details) - 1} more problems)" if len(details) > 1 else ""
    return f"{where}{first['field']}: {first['message']}{more}"


def validate_logs(kind: str, items: list[Any], limits: Limits, *, single: bool = False) -> list[LogIn]:
    """Every item valid, or one 422 listing up to ``MAX_REPORTED`` problems, each naming its
    item's index (not for a ``single`` bare object) and field."""
    try:
        valid: list[LogIn] = _validators(limits).many[kind].validate_python(items)
    except ValidationError as exc:
        details = error_details(exc, indexed=True)
        if single:
            for detail in details:
                del detail["index"]
        raise ValidationFailed(_summary(details), details=details[:MAX_REPORTED]) from None
    return valid


def validate_one(model: type[M], raw: Any, limits: Limits) -> M:
    try:
        checked: type[M] = bounded(model, limits)
        return checked.model_validate(raw)
    except ValidationError as exc:
        details = error_details(exc)
        raise ValidationFailed(_summary(details), details=details) from None


def validate_partial(kind: str, items: list[Any], limits: Limits) -> tuple[list[LogIn], list[dict[str, Any]]]:
    """The valid items, and the problems of the others (OTLP's partial success)."""
    adapter = _validators(limits).one[kind]
    valid: list[LogIn] = []
    details: list[dict[str, Any]] = []
    for index, raw in enumerate(items):
        try:
            valid.append(adapter.validate_python(raw))
        except ValidationError as exc:
            details.extend(error_details(exc, index)[:1])
    return valid, details
