"""What every model shares: the level/status/category vocabulary, the bounds every number and time
has, the canonical forms (UUIDs, times, levels), the annotated field types built from them, and the
strict base class with its size checks.

Apart from ``models`` so the models themselves (what clients send, what reads return) fit in one
short module, and so modules that only need a canonical form or a bound import no model.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .config import Limits

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


_second: tuple[int, str] = (0, "")  # the last whole second formatted, and its text


def now_ts() -> str:
    """``format_ts`` of now, formatting the date and time once per second: every event posted
    without a timestamp takes one, and a datetime round trip was 1.6 µs of the ~5 µs an event's
    validation costs."""
    global _second
    whole, fraction = divmod(time.time_ns() // 1000, 1_000_000)
    cached = _second  # read once: the writer thread calls this too, and may replace it meanwhile
    if cached[0] != whole:
        cached = _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{cached[1]}.{fraction:06d}Z"


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


UUIDStr = Annotated[str, BeforeValidator(canonical_uuid)]
Count = Annotated[int, Field(ge=0, le=MAX_INT)]
Money = Annotated[
    Decimal,
    Field(ge=0, le=MAX_MONEY, max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES),
    AfterValidator(lambda value: value if value else Decimal(0)),  # -0 is 0
]
Timestamp = Annotated[str, BeforeValidator(canonical_ts)]
Level = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(normalize_level)]


def _limits(info: ValidationInfo) -> Limits:
    ctx = info.context
    if isinstance(ctx, dict):
        limits = ctx.get("limits")
        if isinstance(limits, Limits):
            return limits
    return DEFAULT_LIMITS


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


def check_json_object(value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        text = orjson.dumps(value)
    except orjson.JSONEncodeError as exc:  # orjson stops at 255 levels of nesting, far past ours
        if json_depth_over(value, MAX_JSON_DEPTH):
            raise ValueError(f"nests objects and arrays deeper than {MAX_JSON_DEPTH} levels") from None
        raise ValueError(f"cannot be stored as JSON ({exc})") from None
    limit = _limits(info).max_payload_bytes
    if len(text) > limit:
        raise ValueError(f"is {len(text)} bytes of JSON; the limit is {limit}")
    # each level of nesting opens a bracket, so fewer brackets than the limit (counted in C, the
    # common case) cannot nest deeper: only then is the tree walked
    if text.count(b"{") + text.count(b"[") > MAX_JSON_DEPTH and json_depth_over(value, MAX_JSON_DEPTH):
        raise ValueError(f"nests objects and arrays deeper than {MAX_JSON_DEPTH} levels")
    return value


class Strict(BaseModel):
    """The base of every model a client sends: unknown fields refused, every string bounded."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @model_validator(mode="after")
    def _bounded_strings(self, info: ValidationInfo) -> Any:
        """Every string field within its limit: one pass per item (a per-field validator would
        call Python once per field, which dominated validation time)."""
        limits = _limits(info)
        short, long = limits.max_field_chars, limits.max_content_chars
        for name, value in self.__dict__.items():
            if value.__class__ is str and len(value) > (long if name in _LONG_FIELDS else short):
                raise PydanticCustomError(
                    "string_too_long",
                    "{field} is {size} characters long; the limit is {limit}",
                    {"field": name, "size": len(value), "limit": long if name in _LONG_FIELDS else short},
                )
        return self


_LONG_FIELDS = frozenset({"content", "message", "summary", "system_prompt", "prompt_text"})
