"""The only models: rows as stored and returned, and what clients may send.

Ingest models are strict (unknown fields rejected) and normalise on the way in, so the store only
ever sees canonical values: lower-case UUIDs, upper-case levels, UTC times as
``YYYY-MM-DDTHH:MM:SS.ffffffZ``. Size limits come from ``Limits`` through the validation context
(``model_validate(data, context={"limits": limits})``), so tests and servers can set their own.
"""

from __future__ import annotations

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
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

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


def canonical_uuid(value: Any) -> Any:
    """Accept a UUID object or a string in any case/format; return the canonical lower-case form."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value.strip()))
        except ValueError:
            raise ValueError("not a valid UUID") from None
    return value


def format_ts(moment: datetime) -> str:
    """The one time format: UTC, microseconds, ``Z`` (text order is time order)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_ts() -> str:
    return format_ts(datetime.now(UTC))


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


def _check_json_object(value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
    if value is None:
        return None
    if json_depth_over(value, MAX_JSON_DEPTH):
        raise ValueError(f"nests objects and arrays deeper than {MAX_JSON_DEPTH} levels")
    limit = _limits(info).max_payload_bytes
    size = len(orjson.dumps(value))
    if size > limit:
        raise ValueError(f"is {size} bytes of JSON; the limit is {limit}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @model_validator(mode="after")
    def _bounded_strings(self, info: ValidationInfo) -> Any:
        """Every string field within its limit: one pass per item (a per-field validator would
        call Python once per field, which dominated validation time)."""
        limits = _limits(info)
        for name, value in self.__dict__.items():
            if isinstance(value, str):
                limit = limits.max_content_chars if name in _LONG_FIELDS else limits.max_field_chars
                if len(value) > limit:
                    raise PydanticCustomError(
                        "string_too_long",
                        "{field} is {size} characters long; the limit is {limit}",
                        {"field": name, "size": len(value), "limit": limit},
                    )
        return self


_LONG_FIELDS = frozenset({"content", "message", "summary", "system_prompt", "prompt_text"})


# ---------------------------------------------------------------- ingest


class AgentLogIn(_Strict):
    """One agent event as an agent posts it; ``id`` and ``timestamp`` are filled when absent."""

    id: UUIDStr | None = None
    agent_id: UUIDStr
    session_id: str | None = None
    task_slug: str | None = None
    adw_id: str | None = None
    adw_step: str | None = None
    entry_index: int | None = Field(default=None, ge=MIN_INT, le=MAX_INT)
    event_category: Category
    event_type: str = Field(min_length=1)
    level: Level = "INFO"
    content: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    summary: str | None = None
    timestamp: Timestamp | None = None

    _payload_size = field_validator("payload")(_check_json_object)

    @model_validator(mode="after")
    def _fill(self) -> AgentLogIn:
        if self.id is None:
            self.id = new_id()
        if self.timestamp is None:
            self.timestamp = now_ts()
        return self


class SystemLogIn(_Strict):
    id: UUIDStr | None = None
    level: Level = "INFO"
    message: str
    file_path: str | None = None
    adw_id: str | None = None
    adw_step: str | None = None
    summary: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    timestamp: Timestamp | None = None

    _metadata_size = field_validator("metadata")(_check_json_object)

    @model_validator(mode="after")
    def _fill(self) -> SystemLogIn:
        if self.id is None:
            self.id = new_id()
        if self.timestamp is None:
            self.timestamp = now_ts()
        return self


class AgentLogEvent(AgentLogIn):
    kind: Literal["agent_log"]


class SystemLogEvent(SystemLogIn):
    kind: Literal["system_log"]


EventIn = Annotated[AgentLogEvent | SystemLogEvent, Field(discriminator="kind")]
LogIn = AgentLogIn | SystemLogIn


class Ack(BaseModel):
    id: str
    seq: int
    duplicate: bool


# ---------------------------------------------------------------- entities


class OrchestratorAgentCreate(_Strict):
    id: UUIDStr | None = None
    session_id: str | None = None
    system_prompt: str | None = None
    status: Status | None = None
    working_dir: str | None = None
    input_tokens: Count = 0
    output_tokens: Count = 0
    total_cost: Money = Decimal(0)
    archived: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)

    _metadata_size = field_validator("metadata")(_check_json_object)


class AgentCreate(_Strict):
    id: UUIDStr | None = None
    orchestrator_agent_id: UUIDStr
    name: str = Field(min_length=1)
    model: str = Field(min_length=1)
    system_prompt: str | None = None
    working_dir: str | None = None
    git_worktree: str | None = None
    status: Status | None = None
    session_id: str | None = None
    adw_id: str | None = None
    adw_step: str | None = None
    input_tokens: Count = 0
    output_tokens: Count = 0
    total_cost: Money = Decimal(0)
    archived: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)

    _metadata_size = field_validator("metadata")(_check_json_object)


class EntityPatch(_Strict):
    """A partial update of an agent or orchestrator. ``add_*`` fields are increments, applied in
    the write transaction with exact decimal arithmetic (no lost updates, no rounding)."""

    status: Status | None = None
    name: str | None = None
    model: str | None = None
    session_id: str | None = None
    system_prompt: str | None = None
    working_dir: str | None = None
    git_worktree: str | None = None
    adw_id: str | None = None
    adw_step: str | None = None
    archived: bool | None = None
    metadata: dict[str, Any] | None = None
    input_tokens: Count | None = None
    output_tokens: Count | None = None
    total_cost: Money | None = None
    add_input_tokens: Count | None = None
    add_output_tokens: Count | None = None
    add_cost: Money | None = None

    _metadata_size = field_validator("metadata")(_check_json_object)


class PromptCreate(_Strict):
    id: UUIDStr | None = None
    agent_id: UUIDStr | None = None
    task_slug: str | None = None
    author: Literal["engineer", "orchestrator_agent"]
    prompt_text: str
    summary: str | None = None
    timestamp: Timestamp | None = None
    session_id: str | None = None


# ---------------------------------------------------------------- rows (what reads return)


class OrchestratorAgent(BaseModel):
    id: str
    session_id: str | None
    system_prompt: str | None
    status: Status | None
    working_dir: str | None
    input_tokens: int
    output_tokens: int
    total_cost: float
    archived: bool
    metadata: dict[str, Any]
    created_at: str
    updated_at: str


class Agent(BaseModel):
    id: str
    orchestrator_agent_id: str
    name: str
    model: str
    system_prompt: str | None
    working_dir: str | None
    git_worktree: str | None
    status: Status | None
    session_id: str | None
    adw_id: str | None
    adw_step: str | None
    input_tokens: int
    output_tokens: int
    total_cost: float
    archived: bool
    metadata: dict[str, Any]
    created_at: str
    updated_at: str


class Prompt(BaseModel):
    id: str
    agent_id: str | None
    task_slug: str | None
    author: Literal["engineer", "orchestrator_agent"]
    prompt_text: str
    summary: str | None
    timestamp: str
    session_id: str | None


class AgentLog(BaseModel):
    seq: int
    id: str
    agent_id: str
    session_id: str | None
    task_slug: str | None
    adw_id: str | None
    adw_step: str | None
    entry_index: int | None
    event_category: Category
    event_type: str
    level: str
    content: str | None
    payload: dict[str, Any]
    summary: str | None
    timestamp: str


class SystemLog(BaseModel):
    seq: int
    id: str
    level: str
    message: str
    file_path: str | None
    adw_id: str | None
    adw_step: str | None
    summary: str | None
    metadata: dict[str, Any]
    timestamp: str
