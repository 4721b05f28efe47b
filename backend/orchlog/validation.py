"""Turning posted JSON into models, with 422 details that name the item index and the field."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from .config import Limits
from .errors import ValidationFailed
from .models import AgentLogIn, EventIn, LogIn, SystemLogIn

M = TypeVar("M", bound=BaseModel)
MAX_REPORTED = 50

_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "agent_log": TypeAdapter(AgentLogIn),
    "system_log": TypeAdapter(SystemLogIn),
    "event": TypeAdapter(EventIn),
}


def error_details(exc: ValidationError, index: int | None = None) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        # a discriminated union puts the tag first: ("agent_log", "content") → "content"
        if loc and loc[0] in ("agent_log", "system_log"):
            loc = loc[1:]
        field = ".".join(loc)
        ctx = err.get("ctx") or {}
        if not field and isinstance(ctx.get("field"), str):  # model-level checks name their field
            field = ctx["field"]
        if err["type"] in ("union_tag_not_found", "union_tag_invalid"):
            field = "kind"
        message = str(err["msg"])
        if err["type"] == "extra_forbidden":
            message = f"unknown field {field!r}; remove it (see the API docs for the accepted fields)"
        detail: dict[str, Any] = {"field": field or "(item)", "message": message, "type": err["type"]}
        if index is not None:
            detail = {"index": index, **detail}
        out.append(detail)
    return out


def _summary(details: list[dict[str, Any]]) -> str:
    first = details[0]
    where = f"item {first['index']}: " if "index" in first else ""
    more = f" (and {len(details) - 1} more problems)" if len(details) > 1 else ""
    return f"{where}{first['field']}: {first['message']}{more}"


def validate_logs(kind: str, items: list[Any], limits: Limits, *, single: bool = False) -> list[LogIn]:
    """Validate every item (not just up to the first failure) so one 422 lists the problems."""
    adapter = _ADAPTERS[kind]
    context = {"limits": limits}
    valid: list[LogIn] = []
    details: list[dict[str, Any]] = []
    for index, raw in enumerate(items):
        try:
            model = adapter.validate_python(raw, context=context)
        except ValidationError as exc:
            details.extend(error_details(exc, None if single else index))
            if len(details) >= MAX_REPORTED:
                break
            continue
        valid.append(model)
    if details:
        raise ValidationFailed(_summary(details), details=details[:MAX_REPORTED])
    return valid


def validate_one(model: type[M], raw: Any, limits: Limits) -> M:
    try:
        return model.model_validate(raw, context={"limits": limits})
    except ValidationError as exc:
        details = error_details(exc)
        raise ValidationFailed(_summary(details), details=details) from None


def validate_partial(kind: str, items: list[Any], limits: Limits) -> tuple[list[LogIn], list[dict[str, Any]]]:
    """The valid items, and the problems of the others (OTLP's partial success)."""
    adapter = _ADAPTERS[kind]
    context = {"limits": limits}
    valid: list[LogIn] = []
    details: list[dict[str, Any]] = []
    for index, raw in enumerate(items):
        try:
            valid.append(adapter.validate_python(raw, context=context))
        except ValidationError as exc:
            details.extend(error_details(exc, index)[:1])
    return valid, details
