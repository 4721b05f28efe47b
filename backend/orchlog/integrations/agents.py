"""What the coding-agent mappers (Claude Code and Codex OpenTelemetry events) hand to the ingest
pipeline: plain data, no I/O, so the mapping is unit-tested apart from any web framework.

For each OTLP log record a mapper recognises it returns a :class:`Mapped`: the agent the event
belongs to (registered on first sight under a stable id, so every process finds the same agent
without a lookup), the agent log item, and the usage it reports (tokens, cost, model). The
pipeline ensures the agents, inserts the items, and adds the usage of the items that were stored
as new (never of an acknowledged duplicate, so an exporter's retry does not count twice).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from ..models import MAX_INT, MAX_MONEY, MONEY_PLACES
from .claude_code import NAMESPACE, truncate


class RecordError(ValueError):
    """A recognised record whose data cannot be mapped (rejected alone: OTLP partial success)."""


@dataclass(frozen=True)
class AgentSpec:
    """An agent to get-or-create (``EnsureAgent``), with its orchestrator."""

    orchestrator_id: str
    agent_id: str
    name: str
    model: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Usage:
    """What one event adds to its agent row; ``model``/``session_id`` are set, not added."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal = Decimal(0)
    model: str | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class Mapped:
    agent: AgentSpec
    item: dict[str, Any]  # an event item (kind agent_log) for the ingest pipeline
    usage: Usage


@dataclass(frozen=True)
class Record:
    """One OTLP log record with its context, attributes already decoded to plain JSON."""

    resource: dict[str, Any]
    scope: dict[str, Any]
    record: dict[str, Any]
    attrs: dict[str, Any]
    body: Any
    where: str  # resourceLogs[i].scopeLogs[j].logRecords[k], for error messages


def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, ":".join(parts)))


def orchestrator_id(service: str, host: str) -> str:
    """One orchestrator per exporting service and host."""
    return stable_id("otel", "orchestrator", service, host)


def record_id(rec: Record) -> str:
    """The same record sent twice (an exporter retry) gets the same id, so it is stored once."""
    canonical = orjson.dumps([rec.resource, rec.scope.get("name"), rec.record], option=orjson.OPT_SORT_KEYS)
    return str(uuid.uuid5(NAMESPACE, canonical.decode()))


REDACTED = frozenset({"", "<redacted>", "[redacted]", "redacted"})


def sent_text(value: Any) -> str | None:
    """A text attribute the exporter really sent (not a redaction placeholder)."""
    if not isinstance(value, str) or value.strip().lower() in REDACTED:
        return None
    return value


def count(attrs: Mapping[str, Any], key: str, where: str) -> int:
    """A non-negative whole number attribute (0 when absent)."""
    value = attrs.get(key)
    if value is None or value == "":
        return 0
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif (isinstance(value, float) and value.is_integer()) or (isinstance(value, str) and value.strip().isdigit()):
        number = int(value)
    if number is None or number < 0 or number > MAX_INT:
        raise RecordError(f"{where}: attribute {key} must be a non-negative whole number, not {value!r}")
    return number


def money(value: Any, key: str, where: str) -> Decimal:
    """An exact decimal from a cost attribute: a double is read by its shortest repr (0.0123 is
    0.0123, not 0.01229999...), so sums of exported costs come out exactly as users add them."""
    if value is None or value == "":
        return Decimal(0)
    if isinstance(value, bool):
        raise RecordError(f"{where}: attribute {key} must be a number, not {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise RecordError(f"{where}: attribute {key} must be a finite number, not {value!r}")
    try:
        amount = Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation:
        raise RecordError(f"{where}: attribute {key} must be a number, not {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise RecordError(f"{where}: attribute {key} must be a non-negative number, not {value!r}")
    exponent = amount.as_tuple().exponent
    if amount > MAX_MONEY or (isinstance(exponent, int) and exponent < -MONEY_PLACES):
        raise RecordError(f"{where}: attribute {key} must be at most {MAX_MONEY} with {MONEY_PLACES} decimal places")
    return amount


def flag(value: Any) -> bool | None:
    """``"true"``/``"false"`` (how both tools send success) or a real boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def millis(value: Any) -> str:
    try:
        return f" ({float(value):.0f} ms)"
    except (TypeError, ValueError):
        return ""


def json_attr(value: Any) -> Any:
    """Attributes such as ``tool_parameters`` arrive as JSON text; decoded when they are."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


@dataclass(frozen=True)
class Source:
    """What differs between the exporters a mapper reads."""

    name: str  # payload "source", agent metadata "source"
    prefix: str  # of event names: "claude_code."
    service: str  # service.name when the resource has none; the model before one is known
    correlation: str  # the attribute that joins events of one tool call: tool_use_id, call_id


Described = tuple[str, str, str, str, Usage]  # event_category, event_type, level, content, usage
MAX_FIELD_CHARS = 8192  # like hook payloads: longer strings are cut (and the cut is recorded)


def build(rec: Record, source: Source, event: str, session: str, agent: tuple[str, str], got: Described) -> Mapped:
    """The agent, agent log item and usage for a recognised record; ``agent`` is (id, name)."""
    category, event_type, level, content, usage = got
    attrs = dict(rec.attrs)
    if "prompt" in attrs and sent_text(attrs["prompt"]) is None:
        del attrs["prompt"]  # a redaction placeholder is not the prompt
    service = str(rec.resource.get("service.name") or source.service)
    host = str(rec.resource.get("host.name") or "")
    spec = AgentSpec(
        orchestrator_id=orchestrator_id(service, host),
        agent_id=agent[0],
        name=agent[1],
        model=usage.model or source.service,
        metadata={"source": source.name, "service.name": service, **({"host.name": host} if host else {})},
    )
    cut: list[str] = []
    payload: dict[str, Any] = {
        "source": source.name,
        "event": source.prefix + event,
        "attributes": truncate(attrs, MAX_FIELD_CHARS, "attributes", cut),  # tool output can be long
        "resource": rec.resource,
    }
    if cut:
        payload["_truncated"] = cut
    if attrs.get(source.correlation):
        payload[source.correlation] = attrs[source.correlation]  # joins the events of one tool call
    item: dict[str, Any] = {
        "kind": "agent_log",
        "id": record_id(rec),
        "agent_id": spec.agent_id,
        "session_id": session[:200],
        "event_category": category,
        "event_type": event_type,
        "level": level,
        "content": content,
        "payload": payload,
    }
    usage = Usage(usage.input_tokens, usage.output_tokens, usage.cost, usage.model, session[:200])
    return Mapped(spec, item, usage)


def agent_patches(mapped: Sequence[Mapped | None], stored: Sequence[bool]) -> dict[str, dict[str, Any]]:
    """Per agent id, the ``EntityPatch`` fields for the events stored as new: token and cost
    increments (``add_*``, exact decimals) and the latest model and session. ``mapped`` and
    ``stored`` run parallel to the items inserted (``None``: an item no mapper produced)."""
    patches: dict[str, dict[str, Any]] = {}
    for one, new in zip(mapped, stored, strict=True):
        if one is None or not new:
            continue
        patch = patches.setdefault(one.agent.agent_id, {})
        usage = one.usage
        if usage.input_tokens:
            patch["add_input_tokens"] = patch.get("add_input_tokens", 0) + usage.input_tokens
        if usage.output_tokens:
            patch["add_output_tokens"] = patch.get("add_output_tokens", 0) + usage.output_tokens
        if usage.cost:
            patch["add_cost"] = patch.get("add_cost", Decimal(0)) + usage.cost
        if usage.model:
            patch["model"] = usage.model
        if usage.session_id:
            patch["session_id"] = usage.session_id
    return {agent: patch for agent, patch in patches.items() if patch}
