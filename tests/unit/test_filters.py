"""Event filters (orchlog.filters): parsing of query parameters, and the one property every reader
relies on: ``EventFilter.matches`` (the live path, in Python) selects exactly the events the store's
SQL selects (history, replay, catch-up) for the same filter, so a subscriber sees the same events
live as on replay.

The property runs against the real stores (SQLite over a file in tmp; PostgreSQL on a throwaway
database when ORCHLOG_TEST_PG_URL is set), driven through their public API from a portal thread:
the SQL is the thing compared. Everything else here is pure.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.pg import needs_pg, throwaway_database
from orchlog.config import Settings
from orchlog.errors import BadParameter
from orchlog.filters import KINDS, MATCH_ALL, EventFilter, ascii_lower, parse_int, parse_time
from orchlog.models import CATEGORIES, LEVELS, AgentCreate, AgentLogIn, OrchestratorAgentCreate, SystemLogIn
from orchlog.store import open_store
from orchlog.store.base import CreateAgent, CreateOrchestrator, InsertLogs, Store

# small value sets so random events and filters collide often; the text alphabet mixes ASCII case,
# LIKE's wildcards and non-ASCII letters whose case SQLite does not fold
ALPHABET = "aAéÉİ%_\\ "
TEXT = st.text(alphabet=ALPHABET, max_size=5)
TYPES = ("PreToolUse", "PostToolUse", "text", "thinking")
TAGS = (None, "x", "X", "y")
# payloads whose tool_name is a string in either case, a number, an object or null, or absent: only
# the strings may match (a filter value "5" or '{"x":1}' must not match the number or the object)
PAYLOADS = (
    {},
    {"tool_name": "Bash"},
    {"tool_name": "bash"},
    {"tool_name": "5"},
    {"tool_name": 5},
    {"tool_name": {"x": 1}},
    {"tool_name": None},
    {"tool": {"tool_name": "Bash"}},
)
TOOL_NAMES = ("Bash", "bash", "5", '{"x":1}', "null")
TIMES = ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00.5+01:00", "2024-06-01T12:00:00Z", "2024-06-01T12:00:00.000001Z")


class Db:
    """A real store (SQLite, or PostgreSQL when the test server is there) kept open across
    hypothesis examples on its own event loop."""

    def __init__(self, portal: BlockingPortal, store: Store, agents: list[str]) -> None:
        self.portal = portal
        self.store = store
        self.agents = agents

    def insert(self, items: list[AgentLogIn | SystemLogIn]) -> int:
        """Commit the items through the store's write path; returns the head seq before them."""
        head = self.portal.call(self.store.head_seq)
        result = self.portal.call(self.store.write_batch, [InsertLogs(items)])
        assert not isinstance(result.results[0], BaseException), result.results[0]
        return head

    def read(self, flt: EventFilter, after: int) -> list[Any]:
        events, has_more = self.portal.call(lambda: self.store.read_events(flt, after=after, limit=100_000))
        assert not has_more
        return events


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=needs_pg)])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Db]:
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            url = stack.enter_context(throwaway_database())
        else:
            url = str(tmp_path_factory.mktemp("filters") / "filters.db")
        portal = stack.enter_context(start_blocking_portal())
        store = open_store(Settings(db=url, read_connections=1))
        portal.call(store.open)
        try:
            orch = portal.call(store.write_batch, [CreateOrchestrator(OrchestratorAgentCreate())]).results[0]
            ops = [CreateAgent(AgentCreate(orchestrator_agent_id=orch["id"], name=n, model="m")) for n in "abc"]
            agents = [str(a["id"]) for a in portal.call(store.write_batch, ops).results]
            yield Db(portal, store, agents)
        finally:
            portal.call(store.close)


def agent_item(draw: st.DrawFn, agents: list[str]) -> AgentLogIn:
    return AgentLogIn.model_validate(
        {
            "agent_id": draw(st.sampled_from(agents)),
            "event_category": draw(st.sampled_from(CATEGORIES)),
            "event_type": draw(st.sampled_from(TYPES)),
            "level": draw(st.sampled_from(LEVELS)),
            "content": draw(st.none() | TEXT),
            "summary": draw(st.none() | TEXT),
            "task_slug": draw(st.sampled_from(TAGS)),
            "session_id": draw(st.sampled_from(TAGS)),
            "adw_id": draw(st.sampled_from(TAGS)),
            "payload": draw(st.sampled_from(PAYLOADS)),
            "timestamp": draw(st.none() | st.sampled_from(TIMES)),
        }
    )


def system_item(draw: st.DrawFn) -> SystemLogIn:
    return SystemLogIn.model_validate(
        {
            "level": draw(st.sampled_from(LEVELS)),
            "message": draw(TEXT),
            "summary": draw(st.none() | TEXT),
            "adw_id": draw(st.sampled_from(TAGS)),
            "timestamp": draw(st.none() | st.sampled_from(TIMES)),
        }
    )


@st.composite
def events(draw: st.DrawFn, agents: list[str]) -> list[AgentLogIn | SystemLogIn]:
    n = draw(st.integers(min_value=1, max_value=25))
    return [agent_item(draw, agents) if draw(st.booleans()) else system_item(draw) for _ in range(n)]


@st.composite
def filter_params(draw: st.DrawFn, agents: list[str], texts: list[str]) -> dict[str, list[str]]:
    """Query parameters as a client sends them (repeats, comma lists, any case where allowed); ``q``
    is often a piece of one of the events' texts in another case, where the two folds could differ."""
    subset = st.lists
    piece = st.sampled_from([t for t in texts if t.strip()] or ["a"]).flatmap(
        lambda t: st.integers(0, len(t) - 1).map(lambda i: t[i : i + 2])
    )
    recased = piece.flatmap(lambda t: st.sampled_from([t, t.upper(), t.lower(), t.swapcase()]))
    choices: dict[str, st.SearchStrategy[list[str]]] = {
        "kind": subset(st.sampled_from(KINDS), min_size=1, max_size=2),
        "agent_id": subset(st.sampled_from([*agents, str(uuid.uuid4())]).map(str.upper), min_size=1, max_size=3),
        "level": subset(st.sampled_from([*LEVELS, "warning", "Error"]), min_size=1, max_size=3),
        "min_level": st.sampled_from([*LEVELS, "info"]).map(lambda v: [v]),
        "event_category": subset(st.sampled_from(CATEGORIES), min_size=1, max_size=2).map(lambda v: [",".join(v)]),
        "event_type": subset(st.sampled_from(TYPES), min_size=1, max_size=2),
        "task_slug": st.sampled_from(["x", "X", "y"]).map(lambda v: [v]),
        "session_id": st.sampled_from(["x", "y"]).map(lambda v: [v]),
        "adw_id": st.sampled_from(["x", "X"]).map(lambda v: [v]),
        "tool_name": st.sampled_from(TOOL_NAMES).map(lambda v: [v]),
        "since": st.sampled_from(TIMES).map(lambda v: [v]),
        "until": st.sampled_from(TIMES).map(lambda v: [v]),
        "q": (recased | st.text(alphabet=ALPHABET.strip(), min_size=1, max_size=2)).map(lambda v: [v]),
    }
    names = draw(st.lists(st.sampled_from(sorted(set(choices) - {"q"})), unique=True, max_size=2))
    if draw(st.booleans()):  # text search is where the two implementations differ most easily
        names.append("q")
    return {name: draw(choices[name]) for name in names}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_matches_agrees_with_the_sql_filter(db: Db, data: st.DataObject) -> None:
    """For random events and random filters: the events the SQL selects are exactly those that
    EventFilter.matches accepts (compared on the rows as the store returns them to the hub)."""
    items = data.draw(events(db.agents), label="events")
    texts = [t for i in items for t in (getattr(i, "content", None), getattr(i, "message", None), i.summary) if t]
    params = data.draw(filter_params(db.agents, texts), label="params")
    flt = EventFilter.from_params(params)
    head = db.insert(items)
    everything = db.read(MATCH_ALL, head)
    assert len(everything) == len(items)
    expected = [e.seq for e in everything if flt.matches(e.kind, e.data)]
    got = [e.seq for e in db.read(flt, head)]
    assert got == expected, (flt, [(e.kind, dict(e.data)) for e in everything])


def test_tool_name_agrees_with_the_sql_on_every_payload_shape(db: Db) -> None:
    """Exhaustively (the random property rarely draws the one odd pair): each tool_name value
    against each payload shape, plus a system log that no tool_name filter may select."""
    items: list[AgentLogIn | SystemLogIn] = [
        AgentLogIn.model_validate(
            {"agent_id": db.agents[0], "event_category": "hook", "event_type": "PreToolUse", "payload": p}
        )
        for p in PAYLOADS
    ]
    items.append(SystemLogIn.model_validate({"message": "Bash"}))
    head = db.insert(items)
    everything = db.read(MATCH_ALL, head)
    for value in TOOL_NAMES:
        flt = EventFilter.from_params({"tool_name": [value]})
        expected = [e.seq for e in everything if flt.matches(e.kind, e.data)]
        assert [e.seq for e in db.read(flt, head)] == expected, value
    bash = EventFilter.from_params({"tool_name": ["Bash"]})
    assert len([e for e in everything if bash.matches(e.kind, e.data)]) == 1


# ---------------------------------------------------------------- parsing (pure)


def test_repeated_and_comma_list_parameters_are_the_same() -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    assert EventFilter.from_params({"agent_id": [a, b]}) == EventFilter.from_params({"agent_id": [f"{a},{b}"]})
    assert EventFilter.from_params({"agent_id": [a.upper()]}).agent_ids == (a,), "UUIDs are canonical lower-case"


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"kind": ["agents"]}, "kind"),
        ({"agent_id": ["nope"]}, "agent_id"),
        ({"level": ["LOUD"]}, "level"),
        ({"min_level": ["LOUD"]}, "min_level"),
        ({"event_category": ["hooks"]}, "event_category"),
        ({"since": ["yesterday"]}, "since"),
        ({"until": ["10 parsecs"]}, "until"),
    ],
)
def test_bad_parameter_names_the_field(params: dict[str, list[str]], name: str) -> None:
    with pytest.raises(BadParameter) as info:
        EventFilter.from_params(params)
    assert name in str(info.value)


def test_agent_only_filters_exclude_system_logs() -> None:
    for params in (
        {"agent_id": [str(uuid.uuid4())]},
        {"event_category": ["hook"]},
        {"event_type": ["t"]},
        {"tool_name": ["Bash"]},
    ):
        flt = EventFilter.from_params(params)
        assert flt.wants("agent_log") and not flt.wants("system_log"), params
    assert EventFilter.from_params({"adw_id": ["x"]}).wants("system_log"), "adw_id is on both tables"


def test_q_is_full_text_on_history_and_substring_on_streams() -> None:
    history = EventFilter.from_params({"q": ["needle*"], "contains": ["pla"]}, fulltext=True)
    assert (history.fts, history.q) == ("needle*", "pla")
    live = EventFilter.from_params({"q": ["needle*"], "contains": ["pla"]})
    assert (live.fts, live.q) == (None, "needle*")


def test_durations_are_times_ago() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_time("since", "90s", now=now) == "2024-05-01T11:58:30.000000Z"
    assert parse_time("since", "2h", now=now) == "2024-05-01T10:00:00.000000Z"
    assert parse_time("since", "1w", now=now) == "2024-04-24T12:00:00.000000Z"
    assert parse_time("since", "2024-05-01T14:00:00+02:00") == "2024-05-01T12:00:00.000000Z"


def test_parse_int_bounds_name_the_parameter() -> None:
    assert parse_int("limit", None) is None and parse_int("limit", "") is None
    assert parse_int("limit", "7", maximum=10) == 7
    for bad in ("x", "-1", "11"):
        with pytest.raises(BadParameter, match="limit"):
            parse_int("limit", bad, maximum=10)


def test_ascii_lower_folds_ascii_only_like_sqlite() -> None:
    assert ascii_lower("AbC-ÉİẞΣ") == "abc-ÉİẞΣ"
    assert ascii_lower("ABC-XYZ_09") == "abc-xyz_09"  # the ASCII fast path (str.lower)


@given(st.text())
def test_ascii_lower_changes_exactly_the_letters_a_to_z(text: str) -> None:
    """Whichever path a text takes (ASCII or not), only A-Z change, each to its a-z."""
    expected = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)
    assert ascii_lower(text) == expected


def test_min_level_ranks_and_unknown_levels_never_match() -> None:
    flt = EventFilter.from_params({"min_level": ["warning"]})
    assert [lv for lv in LEVELS if flt.matches("system_log", {"level": lv})] == ["WARNING", "ERROR", "CRITICAL"]
    assert not flt.matches("system_log", {"level": "NOTICE"})


def test_since_is_inclusive_until_exclusive_and_missing_times_never_match() -> None:
    flt = EventFilter.from_params({"since": [TIMES[0]], "until": [TIMES[2]]})
    assert flt.matches("system_log", {"timestamp": "2024-01-01T00:00:00.000000Z"})
    assert not flt.matches("system_log", {"timestamp": "2024-06-01T12:00:00.000000Z"})
    assert not flt.matches("system_log", {"timestamp": None})


def test_describe_lists_only_what_is_set() -> None:
    flt = EventFilter.from_params({"kind": ["agent_log"], "q": ["x"]})
    assert flt.describe() == {"kinds": ["agent_log"], "q": "x"}
    assert MATCH_ALL.describe() == {}


def test_tool_name_matches_the_payload_string_exactly() -> None:
    flt = EventFilter.from_params({"tool_name": ["Bash"]})
    assert flt.tool_name == "Bash" and flt.describe() == {"tool_name": "Bash"}
    assert flt.matches("agent_log", {"payload": {"tool_name": "Bash"}})
    for payload in ({"tool_name": "bash"}, {}, {"tool_name": ["Bash"]}, None):
        assert not flt.matches("agent_log", {"payload": payload}), payload
    assert not EventFilter.from_params({"tool_name": ["5"]}).matches("agent_log", {"payload": {"tool_name": 5}})
    # rows as the PostgreSQL driver hands them to the hub: JSON kept pre-serialised
    assert flt.matches("agent_log", {"payload": orjson.Fragment(b'{"tool_name": "Bash"}')})
