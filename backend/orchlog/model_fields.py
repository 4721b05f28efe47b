"""What every model shares: the level/status/category vocabulary, the bounds every number and time
has, the canonical forms (UUIDs, times, levels), the annotated field types built from them, and the
strict base class with its size checks.

Apart from ``models`` so the models themselves (what clients send, what reads return) fit in one
short module, and so modules that only need a canonical form or a bound import no model.
"""

from __future__ import annotations

import copy
import functools
import re
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import annotated_types
import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetPydanticSchema,
    WithJsonSchema,
    create_model,
)
from pydantic_core import CoreSchema, core_schema

from .config import Limits
from .ids import new_id

LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LEVEL_RANK = {name: rank for rank, name in enumerate(LEVELS)}
STATUSES = ("idle", "executing", "waiting", "blocked", "complete")
CATEGORIES = ("hook", "response", "adw_step")
DEFAULT_LIMITS = Limits()

# Bounds every number and time has, so that no input can reach the database as something it
# cannot hold (SQLite's INTEGER is 64-bit; the time format has four-digit years) or make the
# server build a huge value (a decimal like 1e999999999 expands to a billion digits as text).
MAX_INT = 2**63 - 1
MIN_INT = -(2**63)
MAX_MONEY = Decimal(10**15)
MONEY_DIGITS = 34  # significant digits, including MONEY_PLACES
MONEY_PLACES = 18
MIN_YEAR, MAX_YEAR = 1000, 9999
MAX_JSON_DEPTH = 64  # nesting of payload / metadata objects (orjson itself stops near 255)

Kind = Literal["agent_log", "system_log"]
Status = Literal["idle", "executing", "waiting", "blocked", "complete"]
Category = Literal["hook", "response", "adw_step"]


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical_uuid(value: Any) -> Any:
    """Accept a UUID object or a string in any case/format; return the canonical lower-case form."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        if _CANONICAL_UUID.fullmatch(value):  # already canonical (what clients send): no parse
            return value
        try:
            return str(uuid.UUID(value.strip()))
        except ValueError:
            raise ValueError("not a valid UUID") from None
    return value


def format_ts(moment: datetime) -> str:
    """The one time format: UTC, microseconds, ``Z`` (text order is time order)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # isoformat: a quarter of strftime's cost, and the year always has four digits (an aligned
    # volume bucket may start before the year 1000)
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


_second: tuple[int, str] = (0, "")  # the last whole second (in µs) and its text up to the "."
_time_ns = time.time_ns


def now_ts() -> str:
    """``format_ts`` of now, formatting the date and time once per second: every event posted
    without a timestamp takes one (a datetime round trip was 1.6 µs, a third of an event's
    validation; this is 0.25)."""
    global _second
    micros = _time_ns() // 1000
    cached = _second  # read once: the writer thread calls this too, and may replace it meanwhile
    if not 0 <= micros - cached[0] < 1_000_000:
        whole = micros // 1_000_000
        cached = _second = (whole * 1_000_000, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(whole)))
    return cached[1] + str(micros - cached[0] + 1_000_000)[1:] + "Z"  # six digits, zero-padded


def canonical_ts(value: Any) -> Any:
    """Any ISO-8601 time (any offset; naive means UTC) or datetime → the canonical UTC text.

    The UTC year must be 1000..9999: the stored text is ordered as time only with four digits, and
    an offset can push 0001-01-01 or 9999-12-31 out of what a datetime holds."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("not an ISO-8601 time (e.g. 2024-01-02T03:04:05.123456Z)") from None
    if isinstance(value, datetime):
        try:
            utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:
            utc = None
        if utc is None or not MIN_YEAR <= utc.year <= MAX_YEAR:
            raise ValueError(f"the time must fall in the years {MIN_YEAR} to {MAX_YEAR} (UTC)")
        return format_ts(utc)
    return value


def normalize_level(value: Any) -> Any:
    if isinstance(value, str):
        upper = value.strip().upper()
        if upper == "WARN":
            upper = "WARNING"
        return upper
    return value


def _canonical(pattern: str, parse: Any, error: tuple[str, str]) -> GetPydanticSchema:
    """A value already in its canonical form (what our clients send) is matched by ``pattern``
    in pydantic-core, with no Python call; anything else goes to ``parse``, the Python function
    that makes the canonical form (or refuses). One error either way, on the field."""
    return GetPydanticSchema(
        lambda _source, _handler: core_schema.union_schema(
            [
                core_schema.str_schema(pattern=pattern),
                core_schema.no_info_before_validator_function(parse, core_schema.str_schema()),
            ],
            mode="left_to_right",
            custom_error_type=error[0],
            custom_error_message=error[1],
        )
    )


# canonical_uuid's fast path, in pydantic-core
_UUID_PATTERN = f"^{_CANONICAL_UUID.pattern}$"
# format_ts's output, for days 01-28 only: those are valid in every month, so matching the pattern
# is the whole check (the 29th-31st go through canonical_ts, which knows the calendar)
# [0-9], never \d: pydantic-core's regex engine takes \d as any Unicode digit (a fullwidth two,
# U+FF12, would pass as canonical, skip canonical_ts, and reach the database)
_TS_PATTERN = (
    r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}Z$"
)
_BAD_UUID = ("uuid_invalid", "not a valid UUID")
_BAD_TIME = (
    "time_invalid",
    f"not an ISO-8601 time in the years {MIN_YEAR} to {MAX_YEAR} UTC (e.g. 2024-01-02T03:04:05.123456Z)",
)


def _new_id_if_null(value: Any) -> Any:
    return new_id() if value is None else canonical_uuid(value)


def _now_if_null(value: Any) -> Any:
    return now_ts() if value is None else canonical_ts(value)


_NULLABLE_STRING = WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "null"}]})
_STRING = WithJsonSchema({"type": "string"})
UUIDStr = Annotated[str, _canonical(_UUID_PATTERN, canonical_uuid, _BAD_UUID), _STRING]
Timestamp = Annotated[str, _canonical(_TS_PATTERN, canonical_ts, _BAD_TIME), _STRING]

# An event's id and time: the client's (canonical), else made at validation (a UUIDv7, now) by
# the field's default factory (``Field(default_factory=new_id)``), not by a validator: nothing
# runs in Python for an event that sends neither but the factory, and the field stays out of
# ``model_fields_set`` (``id_was_sent``). An explicit ``null`` is made the same way.
EventId = Annotated[str, _canonical(_UUID_PATTERN, _new_id_if_null, _BAD_UUID), _NULLABLE_STRING]
EventTime = Annotated[str, _canonical(_TS_PATTERN, _now_if_null, _BAD_TIME), _NULLABLE_STRING]


def _json_object_schema(_source: Any, _handler: GetCoreSchemaHandler) -> CoreSchema:
    """A dict, taken as it is from Python (what ``orjson.loads`` made): no copy of its top level
    (``dict[str, Any]`` copied it, 0.27 µs an event). Its keys and values are checked where it
    is encoded (``check_json_object``, the models' after-validator of the field)."""
    return core_schema.json_or_python_schema(
        json_schema=core_schema.dict_schema(core_schema.str_schema(), core_schema.any_schema()),
        python_schema=core_schema.custom_error_schema(core_schema.is_instance_schema(dict), "dict_type"),
    )


JsonObject = Annotated[
    dict[str, Any],
    GetPydanticSchema(_json_object_schema),
    WithJsonSchema({"type": "object", "additionalProperties": True}),
]
Count = Annotated[int, Field(ge=0, le=MAX_INT)]
Money = Annotated[
    Decimal,
    Field(ge=0, le=MAX_MONEY, max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES),
    AfterValidator(lambda value: value if value else Decimal(0)),  # -0 is 0
]
Level = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(normalize_level)]


def json_depth_over(value: Any, limit: int) -> bool:
    """True if containers nest deeper than ``limit`` (iterative: no recursion limit to hit)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def check_json_object(value: dict[str, Any] | None, max_bytes: int) -> dict[str, Any] | None:
    """A JSON object the database can store: encodable, within ``max_bytes``, nested at most
    ``MAX_JSON_DEPTH`` levels."""
    if value is None:
        return None
    try:
        text = orjson.dumps(value)
    except orjson.JSONEncodeError as exc:  # orjson stops at 255 levels of nesting, far past ours
        if json_depth_over(value, MAX_JSON_DEPTH):
            raise ValueError(f"nests objects and arrays deeper than {MAX_JSON_DEPTH} levels") from None
        raise ValueError(f"cannot be stored as JSON ({exc})") from None
    if len(text) > max_bytes:
        raise ValueError(f"is {len(text)} bytes of JSON; the limit is {max_bytes}")
    # each level of nesting opens a bracket, so fewer brackets than the limit (counted in C, the
    # common case) cannot nest deeper: only then is the tree walked
    if (
        len(text) > 2 * MAX_JSON_DEPTH  # deeper nesting needs that many brackets, opening and closing
        and text.count(b"{") + text.count(b"[") > MAX_JSON_DEPTH
        and json_depth_over(value, MAX_JSON_DEPTH)
    ):
        raise ValueError(f"nests objects and arrays deeper than {MAX_JSON_DEPTH} levels")
    return value


class Strict(BaseModel):
    """The base of every model a client sends: unknown fields refused.

    Its size limits are those of ``limits``: the JSON objects' checks read it here, and
    ``bounded(model, limits)`` is the model with every free-text field held to them as well
    (natively, by pydantic-core). Client input is validated only through ``bounded`` models
    (``orchlog.validation``); the models themselves, built by the server's own code, bound only
    their JSON objects (at the default limits)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    limits: ClassVar[Limits] = DEFAULT_LIMITS


def json_object_field(cls: type[Strict], value: dict[str, Any] | None) -> dict[str, Any] | None:
    """The after-validator of a model's JSON object fields (``payload``, ``metadata``), at its
    class's limits: ``_size = field_validator("payload")(json_object_field)`` (a class method,
    called without a ``ValidationInfo``)."""
    return check_json_object(value, cls.limits.max_payload_bytes)


_LONG_FIELDS = frozenset({"content", "message", "summary", "system_prompt", "prompt_text"})
_TEXT_TYPES: tuple[Any, ...] = (str, str | None)

M = TypeVar("M", bound=Strict)


def _is_text(info: Any) -> bool:
    """A free-text field: ``str`` or ``str | None`` with no validator of its own (UUIDs, times and
    levels are bounded by their canonical forms, literals by their values)."""
    return info.annotation in _TEXT_TYPES and all(
        isinstance(m, (annotated_types.MinLen, annotated_types.MaxLen)) for m in info.metadata
    )


@functools.lru_cache(maxsize=64)
def bounded(model: type[M], limits: Limits) -> type[M]:
    """``model`` held to ``limits``: every free-text field at most ``max_field_chars`` characters
    (``content``, ``message``, ``summary``, ``system_prompt``, ``prompt_text``: at most
    ``max_content_chars``), every JSON object at most ``max_payload_bytes``.

    A subclass (``isinstance`` still holds) whose string bounds pydantic-core checks itself: a
    Python check of every string of every item was a quarter of an event's validation."""
    overrides: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if _is_text(info):
            limit = limits.max_content_chars if name in _LONG_FIELDS else limits.max_field_chars
            overrides[name] = (Annotated[info.annotation, annotated_types.MaxLen(limit)], copy.copy(info))
    sub: type[M] = create_model(model.__name__, __base__=model, __module__=model.__module__, **overrides)
    sub.limits = limits
    return sub
