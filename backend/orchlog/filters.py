"""Event filters and cursor parameters, shared by history, replay and the live fan-out.

One filter object is evaluated two ways: as SQL by the store (history, replay, catch-up) and in
Python by the hub (live). Both must agree exactly, or a subscriber would see different events
live than on replay; hence the ASCII-only case folding below, which is what SQLite's ``lower()``
and ``LIKE`` do without ICU.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import orjson

from .errors import BadParameter
from .models import CATEGORIES, LEVEL_RANK, LEVELS, MAX_INT, canonical_ts, canonical_uuid, normalize_level

KINDS = ("agent_log", "system_log")
KIND_ALIASES = {"agent": "agent_log", "system": "system_log"}  # the CLI's short spellings, accepted everywhere
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_PARAM_CHARS = 4096  # any one filter value (SQLite refuses LIKE patterns over 50,000 bytes)
MAX_PARAM_VALUES = 1000  # values of one list parameter (agent_id=a,b,...)

FILTER_PARAMS = (
    "kind",
    "agent_id",
    "level",
    "min_level",
    "event_category",
    "event_type",
    "task_slug",
    "session_id",
    "adw_id",
    "tool_name",
    "since",
    "until",
    "q",
    "contains",
)


def ascii_lower(text: str) -> str:
    """A-Z to a-z, nothing else (SQLite's lower() and LIKE fold the same letters). For ASCII text
    that is ``str.lower()``, which is C all the way; ``translate`` looks every character up in a
    dict, a microsecond per hundred characters on the fan-out's path."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


Q_FIELDS = {"agent_log": ("content", "summary", "event_type"), "system_log": ("message", "summary")}


def q_texts(kind: str, row: Mapping[str, Any], folded: dict[str, str] | None = None) -> list[str]:
    """The case-folded text fields a stream's ``q`` looks in (a substring of any one of them
    matches). ``folded`` caches them per event, for the many filters that look at one event."""
    out = []
    for name in Q_FIELDS.get(kind, ()):
        text = folded.get(name) if folded is not None else None
        if text is None:
            text = ascii_lower(str(row.get(name) or ""))
            if folded is not None:
                folded[name] = text
        out.append(text)
    return out


def parse_time(name: str, value: str, *, now: datetime | None = None) -> str:
    """An ISO-8601 time, or a duration ago (``90s``, ``10m``, ``2h``, ``1d``, ``1w``)."""
    match = _DURATION.match(value.strip().lower())
    if match:
        try:
            moment: str | datetime = (now or datetime.now(UTC)) - timedelta(
                seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            )
        except OverflowError:
            raise BadParameter(name, f"{value[:40]!r} reaches back before the year 1") from None
    else:
        moment = value
    try:
        result = canonical_ts(moment)
    except ValueError as exc:
        if match or "years" in str(exc):
            raise BadParameter(name, f"{value[:40]!r}: {exc}") from None
        raise BadParameter(name, f"{value[:40]!r} is neither an ISO-8601 time nor a duration like 10m or 2h") from None
    assert isinstance(result, str)
    return result


def parse_int(name: str, value: str | None, *, minimum: int = 0, maximum: int = MAX_INT) -> int | None:
    """An integer within [minimum, maximum]; the default maximum is what SQLite's INTEGER holds."""
    if value is None or value == "":
        return None
    if len(value) > 40:
        raise BadParameter(name, f"{value[:20]!r}... is not an integer between {minimum} and {maximum}")
    try:
        number = int(value)
    except ValueError:
        raise BadParameter(name, f"{value!r} is not an integer") from None
    if number < minimum or number > maximum:
        raise BadParameter(name, f"{number} is out of range (must be between {minimum} and {maximum})")
    return number


def _bounded(name: str, value: str) -> str:
    if len(value) > MAX_PARAM_CHARS:
        raise BadParameter(name, f"is {len(value)} characters long; the limit is {MAX_PARAM_CHARS}")
    return value


def _values(params: Mapping[str, Sequence[str]], name: str) -> tuple[str, ...]:
    """Repeated parameters and comma lists both work: ``a=1&a=2`` == ``a=1,2``."""
    out: list[str] = []
    for raw in params.get(name, ()):
        out.extend(_bounded(name, part.strip()) for part in raw.split(",") if part.strip())
        if len(out) > MAX_PARAM_VALUES:
            raise BadParameter(name, f"more than {MAX_PARAM_VALUES} values")
    return tuple(dict.fromkeys(out))


def _one(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = [v for v in params.get(name, ()) if v != ""]
    return _bounded(name, values[-1]) if values else None


def _choice(name: str, values: tuple[str, ...], allowed: Sequence[str], fix: Callable[[str], str]) -> tuple[str, ...]:
    fixed = tuple(fix(v) for v in values)
    for original, value in zip(values, fixed, strict=True):
        if value not in allowed:
            raise BadParameter(name, f"{original!r} is not one of {', '.join(allowed)}")
    return fixed


def payload_tool_name(row: Mapping[str, Any]) -> str | None:
    """``payload.tool_name`` when it is a string, else ``None``: what the stores' SQL compares
    (SQLite ``json_type(...) = 'text'``, PostgreSQL ``jsonb_typeof(...) = 'string'``), so a number
    or an object under that key never matches its text."""
    payload = row.get("payload")
    if isinstance(payload, orjson.Fragment):  # PostgreSQL rows keep JSON pre-serialised (opaque)
        payload = orjson.dumps(payload)
    if isinstance(payload, (str, bytes)):
        try:
            payload = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
    value = payload.get("tool_name") if isinstance(payload, Mapping) else None
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class EventFilter:
    """Which events a reader wants. Empty tuples and ``None`` mean "no constraint"."""

    kinds: tuple[str, ...] = ()
    agent_ids: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    min_level: str | None = None
    event_categories: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    task_slug: str | None = None
    session_id: str | None = None
    adw_id: str | None = None
    tool_name: str | None = None  # payload.tool_name, exact (a JSON string; agent logs only)
    since: str | None = None
    until: str | None = None
    q: str | None = None
    fts: str | None = None  # full-text query (FTS5 syntax); history only, never live
    _q_folded: str | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_params(cls, params: Mapping[str, Sequence[str]], *, fulltext: bool = False) -> EventFilter:
        """Parse query parameters (name → list of values), naming the bad one on error.

        With ``fulltext`` (the history API), ``q`` is a full-text query (phrases, ``prefix*``,
        AND/OR/NOT) and ``contains`` is the plain substring; on streams ``q`` is the substring,
        because a live event must match exactly as it would on replay."""
        kinds = _choice("kind", _values(params, "kind"), KINDS, lambda v: KIND_ALIASES.get(v.lower(), v.lower()))
        agent_ids = []
        for value in _values(params, "agent_id"):
            try:
                agent_ids.append(canonical_uuid(value))
            except ValueError:
                raise BadParameter("agent_id", f"{value!r} is not a UUID") from None
        levels = _choice("level", _values(params, "level"), LEVELS, lambda v: str(normalize_level(v)))
        min_level_raw = _one(params, "min_level")
        min_level = None
        if min_level_raw is not None:
            min_level = _choice("min_level", (min_level_raw,), LEVELS, lambda v: str(normalize_level(v)))[0]
        categories = _choice("event_category", _values(params, "event_category"), CATEGORIES, lambda v: v)
        since = _one(params, "since")
        until = _one(params, "until")
        q = _one(params, "contains") if fulltext else _one(params, "q")
        fts = _one(params, "q") if fulltext else None
        return cls(
            kinds=kinds,
            agent_ids=tuple(agent_ids),
            levels=levels,
            min_level=min_level,
            event_categories=categories,
            event_types=_values(params, "event_type"),
            task_slug=_one(params, "task_slug"),
            session_id=_one(params, "session_id"),
            adw_id=_one(params, "adw_id"),
            tool_name=_one(params, "tool_name"),
            since=parse_time("since", since) if since else None,
            until=parse_time("until", until) if until else None,
            q=q,
            fts=fts,
            _q_folded=ascii_lower(q) if q else None,
        )

    @property
    def agent_only(self) -> bool:
        """Filters on agent-only fields exclude system logs (they have no such column)."""
        return bool(
            self.agent_ids
            or self.event_categories
            or self.event_types
            or self.task_slug
            or self.session_id
            or self.tool_name
        )

    @cached_property
    def everything(self) -> bool:
        """No constraint at all: matching needs no look inside the row (which stays unparsed)."""
        return self == MATCH_ALL

    def wants(self, kind: str) -> bool:
        if self.kinds and kind not in self.kinds:
            return False
        return not (kind == "system_log" and self.agent_only)

    @property
    def q_folded(self) -> str | None:
        return self._q_folded if self._q_folded is not None or not self.q else ascii_lower(self.q)

    def matches(self, kind: str, row: Mapping[str, Any], folded: dict[str, str] | None = None) -> bool:
        """The Python twin of the store's SQL for this filter (used on the live path).

        ``folded`` is a per-event cache of case-folded text fields, so that many ``q`` filters
        over one event fold its text once (the hub passes one dict per event)."""
        if self.everything:
            return True
        if not self.wants(kind):
            return False
        level = row.get("level")
        if self.levels and level not in self.levels:
            return False
        if self.min_level is not None and LEVEL_RANK.get(str(level), -1) < LEVEL_RANK[self.min_level]:
            return False
        if self.adw_id is not None and row.get("adw_id") != self.adw_id:
            return False
        ts = row.get("timestamp")
        if self.since is not None and (ts is None or ts < self.since):
            return False
        if self.until is not None and (ts is None or ts >= self.until):
            return False
        if kind == "agent_log":
            if self.agent_ids and row.get("agent_id") not in self.agent_ids:
                return False
            if self.event_categories and row.get("event_category") not in self.event_categories:
                return False
            if self.event_types and row.get("event_type") not in self.event_types:
                return False
            if self.task_slug is not None and row.get("task_slug") != self.task_slug:
                return False
            if self.session_id is not None and row.get("session_id") != self.session_id:
                return False
            if self.tool_name is not None and payload_tool_name(row) != self.tool_name:
                return False
        q = self.q_folded
        if q:
            return any(q in text for text in q_texts(kind, row, folded))
        return True

    def describe(self) -> dict[str, Any]:
        """The filter as plain data (for hello frames and logs)."""
        out: dict[str, Any] = {}
        for name in ("kinds", "agent_ids", "levels", "event_categories", "event_types"):
            value = getattr(self, name)
            if value:
                out[name] = list(value)
        for name in ("min_level", "task_slug", "session_id", "adw_id", "tool_name", "since", "until", "q", "fts"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


MATCH_ALL = EventFilter()
