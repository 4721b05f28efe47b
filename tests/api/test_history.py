"""History: GET /api/v1/events — keyset paging by seq and the filters of the wire contract (§4).

One shared server holds a seeded mix of agent and system logs. Expected results are computed in
Python from the unfiltered history, so every filter is checked against an independent definition.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from helpers import AppServer, agent_event, assert_error, history, make_agents, make_agents_sync, start_app

LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
RANK = {lv: i for i, lv in enumerate(LEVELS)}
OLD_TIMES = [
    "2020-06-01T10:00:00+02:00",
    "2020-06-02T23:30:00-05:00",
    "2020-06-03T12:00:00.250Z",
    "2020-12-31T23:59:59.999999Z",
]
Row = dict[str, Any]
Pred = Callable[[str, Row], bool]


class Seeded:
    def __init__(self, server: AppServer, agents: list[str], events: list[Row]) -> None:
        self.server = server
        self.agents = agents
        self.events = events  # the full history: [{"kind", "seq", "data"}]

    def expect(self, pred: Pred) -> list[int]:
        return [e["seq"] for e in self.events if pred(e["kind"], e["data"])]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """An app with 3 agents and 300 events of every shape (both kinds, all levels and categories,
    old client timestamps with offsets and fresh server ones, searchable words), posted in batches."""
    srv = start_app(tmp_path_factory.mktemp("history"))
    rng = random.Random(7)
    words = [
        "alpha",
        "Needle in content",
        "progress 100% done",
        "progress 1000 done",
        "plain",
        "under_score",
        "underXscore",
    ]
    try:
        with srv.sync_client() as c:
            _orch, agents = make_agents_sync(c, 3)
            batch: list[Row] = []
            for i in range(300):
                ts = rng.choice(OLD_TIMES) if rng.random() < 0.3 else None
                if rng.random() < 0.7:
                    item: Row = agent_event(
                        rng.choice(agents),
                        f"{rng.choice(words)} #{i}",
                        kind="agent_log",
                        event_category=rng.choice(["hook", "response", "adw_step"]),
                        event_type=rng.choice(["PreToolUse", "PostToolUse", "text", "thinking", "StepStart"]),
                        level=rng.choice(LEVELS),
                        task_slug=rng.choice([None, "alpha", "beta"]),
                        session_id=rng.choice([None, "s-1", "s-2"]),
                        adw_id=rng.choice([None, "adw-1", "adw-2"]),
                        summary=rng.choice([None, "has NEEDLE here", "quiet"]),
                    )
                else:
                    item = {
                        "kind": "system_log",
                        "level": rng.choice(LEVELS),
                        "message": f"{rng.choice(words)} sys #{i}",
                        "adw_id": rng.choice([None, "adw-1", "adw-2"]),
                        "summary": rng.choice([None, "a needle summary", "quiet"]),
                    }
                if ts is not None:
                    item["timestamp"] = ts
                batch.append(item)
                if len(batch) == rng.randint(1, 25) or i == 299:
                    r = c.post("/api/v1/events", json=batch)
                    assert r.status_code == 201, r.text
                    batch = []
            events = []
            after = 0
            while True:
                body = c.get("/api/v1/events", params={"after": after, "limit": 1000}).json()
                events.extend(body["items"])
                if not body["has_more"]:
                    break
                after = body["next_after"]
            assert [e["seq"] for e in events] == list(range(1, 301))
        yield Seeded(srv, agents, events)
    finally:
        srv.stop()


@pytest.fixture
async def hc(seeded: Seeded) -> Any:
    async with seeded.server.client() as c:
        yield c


async def page(client: httpx.AsyncClient, **params: Any) -> Row:
    r = await client.get("/api/v1/events", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"items", "has_more", "next_after", "head_seq"} <= set(body), body.keys()
    seqs = [e["seq"] for e in body["items"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "a page is not ascending by seq"
    for e in body["items"]:
        assert set(e) == {"kind", "seq", "data"} and e["data"]["seq"] == e["seq"]
    return body


async def walk(client: httpx.AsyncClient, limit: int, **params: Any) -> list[Row]:
    """Follow next_after from 0 with small pages, checking the paging invariants on the way."""
    out: list[Row] = []
    after = 0
    while True:
        body = await page(client, after=after, limit=limit, **params)
        assert len(body["items"]) <= limit
        out.extend(body["items"])
        if body["items"]:
            assert body["next_after"] == body["items"][-1]["seq"]
        if not body["has_more"]:
            return out
        assert len(body["items"]) == limit, "has_more with a short page"
        after = body["next_after"]


# ---------------------------------------------------------------- paging


async def test_default_limit_is_100_from_the_start(hc: httpx.AsyncClient, seeded: Seeded) -> None:
    """No parameters: the oldest 100 events ascending, has_more, next_after = last seq, head_seq = newest."""
    body = await page(hc)
    assert [e["seq"] for e in body["items"]] == list(range(1, 101))
    assert body["has_more"] is True
    assert body["next_after"] == 100
    assert body["head_seq"] == 300


async def test_limit_up_to_1000(hc: httpx.AsyncClient) -> None:
    """limit=1000 is allowed (returns everything here, has_more false); limit=1 returns one."""
    body = await page(hc, limit=1000)
    assert len(body["items"]) == 300 and body["has_more"] is False
    body = await page(hc, limit=1, after=41)
    assert [e["seq"] for e in body["items"]] == [42] and body["has_more"] is True


async def test_after_pages_cover_everything_once(hc: httpx.AsyncClient, seeded: Seeded) -> None:
    """Following next_after with limit=37 yields every event exactly once, in seq order."""
    got = await walk(hc, 37)
    assert [e["seq"] for e in got] == [e["seq"] for e in seeded.events]
    assert got == seeded.events


async def test_has_more_is_exact_at_the_boundary(hc: httpx.AsyncClient) -> None:
    """Exactly `limit` events left → full page and has_more false; one more → has_more true."""
    body = await page(hc, after=290, limit=10)
    assert [e["seq"] for e in body["items"]] == list(range(291, 301)) and body["has_more"] is False
    body = await page(hc, after=289, limit=10)
    assert [e["seq"] for e in body["items"]] == list(range(290, 300)) and body["has_more"] is True


async def test_after_head_is_an_empty_page(hc: httpx.AsyncClient) -> None:
    """after=head → no items, has_more false, next_after stays at head (poll again from there)."""
    body = await page(hc, after=300)
    assert body["items"] == [] and body["has_more"] is False and body["next_after"] == 300
    body = await page(hc, after=10_000)
    assert body["items"] == [] and body["has_more"] is False


async def test_before_gives_the_page_just_below(hc: httpx.AsyncClient) -> None:
    """before=X&limit=N → the N events just below X, ascending; has_more says older ones exist."""
    body = await page(hc, before=150, limit=20)
    assert [e["seq"] for e in body["items"]] == list(range(130, 150))
    assert body["has_more"] is True
    body = await page(hc, before=10, limit=20)
    assert [e["seq"] for e in body["items"]] == list(range(1, 10))
    assert body["has_more"] is False
    body = await page(hc, before=301)
    assert [e["seq"] for e in body["items"]] == list(range(201, 301)), "default limit applies to before too"


async def test_walking_backwards_with_before(hc: httpx.AsyncClient, seeded: Seeded) -> None:
    """Paging from the newest down with before=<first seq of the page> covers everything once."""
    pages: list[list[int]] = []
    before = 301
    while True:
        body = await page(hc, before=before, limit=33)
        pages.append([e["seq"] for e in body["items"]])
        if not body["has_more"]:
            break
        before = body["items"][0]["seq"]
    seqs = [s for p in reversed(pages) for s in p]
    assert seqs == list(range(1, 301))


async def test_after_and_before_bound_a_window(hc: httpx.AsyncClient) -> None:
    """after=A&before=B → events strictly between, ascending from A; has_more if the window holds more."""
    body = await page(hc, after=50, before=60)
    assert [e["seq"] for e in body["items"]] == list(range(51, 60)) and body["has_more"] is False
    body = await page(hc, after=50, before=60, limit=4)
    assert [e["seq"] for e in body["items"]] == [51, 52, 53, 54] and body["has_more"] is True
    body = await page(hc, after=50, before=51)
    assert body["items"] == [] and body["has_more"] is False


async def test_before_with_a_filter(hc: httpx.AsyncClient, seeded: Seeded) -> None:
    """before + kind=system_log → the newest system logs below X (not just any rows below X)."""
    want = [s for s in seeded.expect(lambda k, d: k == "system_log") if s < 250][-7:]
    body = await page(hc, before=250, limit=7, kind="system_log")
    assert [e["seq"] for e in body["items"]] == want
    assert all(e["kind"] == "system_log" for e in body["items"])


# ---------------------------------------------------------------- filters


def agent_only(field: str, values: set[str]) -> Pred:
    return lambda k, d: k == "agent_log" and d[field] in values


def text_has(needle: str) -> Pred:
    def pred(kind: str, d: Row) -> bool:
        fields = ("content", "summary") if kind == "agent_log" else ("message", "summary")
        return any(needle.lower() in (d[f] or "").lower() for f in fields)

    return pred


def ts_at_least(moment: str) -> Pred:
    return lambda k, d: d["timestamp"] >= moment


def ts_below(moment: str) -> Pred:
    return lambda k, d: d["timestamp"] < moment


FILTER_CASES: list[tuple[str, Callable[[Seeded], tuple[dict[str, Any], Pred]]]] = [
    ("kind=agent_log", lambda s: ({"kind": "agent_log"}, lambda k, d: k == "agent_log")),
    ("kind=system_log", lambda s: ({"kind": "system_log"}, lambda k, d: k == "system_log")),
    ("kind both (comma)", lambda s: ({"kind": "agent_log,system_log"}, lambda k, d: True)),
    ("kind both (repeat)", lambda s: ({"kind": ["system_log", "agent_log"]}, lambda k, d: True)),
    ("agent_id one", lambda s: ({"agent_id": s.agents[0]}, agent_only("agent_id", {s.agents[0]}))),
    (
        "agent_id upper-case",
        lambda s: ({"agent_id": s.agents[1].upper()}, agent_only("agent_id", {s.agents[1]})),
    ),
    (
        "agent_id repeated",
        lambda s: (
            {"agent_id": [s.agents[0], s.agents[2]]},
            agent_only("agent_id", {s.agents[0], s.agents[2]}),
        ),
    ),
    (
        "agent_id comma list",
        lambda s: (
            {"agent_id": f"{s.agents[1]},{s.agents[2]}"},
            agent_only("agent_id", {s.agents[1], s.agents[2]}),
        ),
    ),
    ("level exact", lambda s: ({"level": "ERROR"}, lambda k, d: d["level"] == "ERROR")),
    ("level any case", lambda s: ({"level": "warning"}, lambda k, d: d["level"] == "WARNING")),
    ("min_level", lambda s: ({"min_level": "WARNING"}, lambda k, d: RANK[d["level"]] >= RANK["WARNING"])),
    (
        "min_level lower-case",
        lambda s: ({"min_level": "error"}, lambda k, d: RANK[d["level"]] >= RANK["ERROR"]),
    ),
    ("min_level DEBUG is all", lambda s: ({"min_level": "DEBUG"}, lambda k, d: True)),
    (
        "event_category",
        lambda s: ({"event_category": "response"}, agent_only("event_category", {"response"})),
    ),
    (
        "event_category list",
        lambda s: ({"event_category": "hook,adw_step"}, agent_only("event_category", {"hook", "adw_step"})),
    ),
    ("event_type", lambda s: ({"event_type": "text"}, agent_only("event_type", {"text"}))),
    (
        "event_type repeated",
        lambda s: (
            {"event_type": ["PreToolUse", "PostToolUse"]},
            agent_only("event_type", {"PreToolUse", "PostToolUse"}),
        ),
    ),
    ("task_slug", lambda s: ({"task_slug": "alpha"}, agent_only("task_slug", {"alpha"}))),
    ("session_id", lambda s: ({"session_id": "s-1"}, agent_only("session_id", {"s-1"}))),
    ("adw_id (both kinds)", lambda s: ({"adw_id": "adw-1"}, lambda k, d: d["adw_id"] == "adw-1")),
    (
        "since ISO Z",
        lambda s: ({"since": "2020-06-02T00:00:00Z"}, ts_at_least("2020-06-02T00:00:00.000000Z")),
    ),
    (
        "since ISO with offset",
        lambda s: ({"since": "2020-06-03T06:00:00-06:00"}, ts_at_least("2020-06-03T12:00:00.000000Z")),
    ),
    ("until ISO", lambda s: ({"until": "2020-06-03T00:00:00Z"}, ts_below("2020-06-03T00:00:00.000000Z"))),
    (
        "since+until window",
        lambda s: (
            {"since": "2020-06-01T09:00:00Z", "until": "2021-01-01T00:00:00Z"},
            lambda k, d: "2020-06-01T09:00:00.000000Z" <= d["timestamp"] < "2021-01-01T00:00:00.000000Z",
        ),
    ),
    ("since relative 10m", lambda s: ({"since": "10m"}, lambda k, d: d["timestamp"] > "2021")),
    ("until relative 1h", lambda s: ({"until": "1h"}, lambda k, d: d["timestamp"] < "2021")),
    # history's q is full-text (tests/test_fulltext.py); contains= is the plain substring
    ("contains case-insensitive", lambda s: ({"contains": "nEeDlE"}, text_has("needle"))),
    ("contains percent is literal", lambda s: ({"contains": "100%"}, text_has("100%"))),
    ("contains underscore is literal", lambda s: ({"contains": "under_score"}, text_has("under_score"))),
    ("contains no match", lambda s: ({"contains": "zzz-not-there"}, lambda k, d: False)),
    (
        "agent_id + min_level",
        lambda s: (
            {"agent_id": s.agents[0], "min_level": "ERROR"},
            lambda k, d: k == "agent_log" and d["agent_id"] == s.agents[0] and RANK[d["level"]] >= 3,
        ),
    ),
    (
        "kind=system_log + adw_id + q",
        lambda s: (
            {"kind": "system_log", "adw_id": "adw-2", "contains": "needle"},
            lambda k, d: k == "system_log" and d["adw_id"] == "adw-2" and text_has("needle")(k, d),
        ),
    ),
    (
        "agent-only filter with kind=system_log is empty",
        lambda s: ({"kind": "system_log", "task_slug": "beta"}, lambda k, d: False),
    ),
]


@pytest.mark.parametrize(("name", "case"), FILTER_CASES, ids=[c[0] for c in FILTER_CASES])
async def test_filter(hc: httpx.AsyncClient, seeded: Seeded, name: str, case: Any) -> None:
    """Each filter returns exactly the events its definition selects, in seq order, across pages."""
    params, pred = case(seeded)
    want = seeded.expect(pred)
    got = await walk(hc, 13, **params)
    assert [e["seq"] for e in got] == want, name
    if name not in ("contains no match", "agent-only filter with kind=system_log is empty"):
        assert want, f"the seed data has nothing for {name}; the case proves nothing"


@pytest.mark.parametrize("param", ["agent_id", "event_category", "event_type", "task_slug"])
async def test_agent_only_filters_exclude_system_logs(hc: httpx.AsyncClient, seeded: Seeded, param: str) -> None:
    """Filters on agent-only fields never return system logs."""
    value = {
        "agent_id": seeded.agents[0],
        "event_category": "hook",
        "event_type": "text",
        "task_slug": "alpha",
    }
    got = await walk(hc, 1000, **{param: value[param]})
    assert got and all(e["kind"] == "agent_log" for e in got)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"after": "abc"}, "after"),
        ({"after": "-1"}, "after"),
        ({"before": "1.5"}, "before"),
        ({"limit": "5000"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"min_level": "LOUD"}, "min_level"),
        ({"level": "LOUD"}, "level"),
        ({"kind": "metric"}, "kind"),
        ({"agent_id": "not-a-uuid"}, "agent_id"),
        ({"event_category": "chatter"}, "event_category"),
        ({"since": "last tuesday"}, "since"),
        ({"until": "2024-13-45"}, "until"),
    ],
)
async def test_bad_parameter_is_400_naming_it(hc: httpx.AsyncClient, params: dict[str, str], name: str) -> None:
    """A parameter that does not parse → 400 bad_parameter whose message and details name it."""
    error = assert_error(await hc.get("/api/v1/events", params=params), 400, "bad_parameter")
    assert name in error["message"], error
    assert error["details"][0]["field"] == name, error


async def test_before_not_above_after_is_400(hc: httpx.AsyncClient) -> None:
    """after=10&before=5 is an empty contradiction → 400 naming before/after."""
    error = assert_error(await hc.get("/api/v1/events", params={"after": 10, "before": 5}), 400, "bad_parameter")
    assert error["details"][0]["field"] in ("before", "after")


# ---------------------------------------------------------------- paging under concurrent writes


async def test_paging_is_stable_while_another_task_posts(server: AppServer) -> None:
    """Readers paging with next_after while a writer posts see every event exactly once, in seq
    order, ending with exactly the final history (unfiltered and filtered by kind)."""
    async with server.client() as client:
        _orch, agents = await make_agents(client, 2)
        r = await client.post("/api/v1/agent-logs", json=[agent_event(agents[0], f"pre {i}") for i in range(100)])
        assert r.status_code == 201
        done = asyncio.Event()
        rng = random.Random(3)

        async def writer() -> None:
            try:
                for n in range(80):
                    items = []
                    for i in range(rng.randint(1, 10)):
                        if rng.random() < 0.5:
                            items.append({"kind": "agent_log", **agent_event(rng.choice(agents), f"w{n}.{i}")})
                        else:
                            items.append({"kind": "system_log", "message": f"w{n}.{i}", "id": str(uuid.uuid4())})
                    r = await client.post("/api/v1/events", json=items)
                    assert r.status_code == 201, r.text
            finally:
                done.set()

        async def reader(params: dict[str, Any]) -> list[Row]:
            seen: list[Row] = []
            after = 0
            while True:
                finished = done.is_set()
                body = await page(client, after=after, limit=25, **params)
                seen.extend(body["items"])
                after = body["next_after"]
                if finished and not body["has_more"]:
                    return seen

        _, everything, agent_only_seen = await asyncio.gather(writer(), reader({}), reader({"kind": "agent_log"}))
        final = await history(client)
        assert [e["seq"] for e in everything] == [e["seq"] for e in final]
        assert everything == final
        assert agent_only_seen == [e for e in final if e["kind"] == "agent_log"]
        assert len(final) > 300


def test_seed_spans_both_kinds_and_old_and_new_times(seeded: Seeded) -> None:
    """Sanity of the fixture the filter tests rely on."""
    kinds = {e["kind"] for e in seeded.events}
    assert kinds == {"agent_log", "system_log"}
    now = datetime.now(UTC)
    recent = (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert any(e["data"]["timestamp"] < "2021" for e in seeded.events)
    assert any(e["data"]["timestamp"] > recent for e in seeded.events)
