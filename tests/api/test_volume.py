"""GET /api/v1/stats/volume: events per level over time, counted by the store over everything stored.

Expected counts are computed in Python from the full history (an independent definition: the
epoch-aligned bucket of each event's timestamp), and the sum of a reply's counts must equal the
number of events history returns for the same filter, for every filter the API has."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from helpers import AppServer, agent_event, assert_error, bearer, history, make_agents_sync, start_app
from orchlog.auth import TokenRecord, new_token, token_hash

BASE = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
TOOLS = [None, "Bash", "Read"]


def at(seconds: float) -> str:
    return datetime.fromtimestamp(BASE.timestamp() + seconds, UTC).isoformat().replace("+00:00", "Z")


def epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


@dataclass
class Seeded:
    server: AppServer
    agents: list[str]
    events: list[dict[str, Any]]  # full history: {"kind", "seq", "data"}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """Two agents and 120 events spread over ~2 hours at awkward offsets (on bucket edges, a
    microsecond before them, fractional seconds), both kinds, every level, with and without a tool."""
    srv = start_app(tmp_path_factory.mktemp("volume"))
    try:
        with srv.sync_client() as c:
            _orch, agents = make_agents_sync(c, 2)
            items: list[dict[str, Any]] = []
            for i in range(120):
                offset = [0, 59.999999, 60, 61.5, 3599.999999, 3600, 7199][i % 7] + (i // 7) * 37
                level = LEVELS[i % 5]
                if i % 4 == 3:
                    items.append({"kind": "system_log", "level": level, "message": f"sys {i}", "timestamp": at(offset)})
                else:
                    tool = TOOLS[i % 3]
                    item = agent_event(agents[i % 2], f"word{i % 3} event {i}", kind="agent_log", level=level)
                    item |= {"timestamp": at(offset), "payload": {"tool_name": tool} if tool else {}}
                    items.append(item)
            r = c.post("/api/v1/events", json=items)
            assert r.status_code == 201, r.text
            everything = c.get("/api/v1/events", params={"limit": 1000}).json()["items"]
            assert len(everything) == 120
        yield Seeded(srv, agents, everything)
    finally:
        srv.stop()


@pytest.fixture
async def vc(seeded: Seeded) -> Any:
    async with seeded.server.client() as c:
        yield c


async def volume(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    r = await client.get("/api/v1/stats/volume", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"buckets", "bucket_s", "since", "until"}, body.keys()
    starts = [epoch(b["start"]) for b in body["buckets"]]
    assert all(s % body["bucket_s"] == 0 for s in starts), "buckets are aligned to the epoch"
    assert all(b - a == body["bucket_s"] for a, b in itertools.pairwise(starts)), "dense, ascending"
    assert len(body["buckets"]) <= 500
    return body


def expected(events: list[dict[str, Any]], bucket_s: int) -> dict[float, Counter[str]]:
    out: dict[float, Counter[str]] = {}
    for e in events:
        start = (epoch(e["data"]["timestamp"]) // bucket_s) * bucket_s
        out.setdefault(start, Counter())[e["data"]["level"]] += 1
    return out


def got(body: dict[str, Any]) -> dict[float, Counter[str]]:
    return {epoch(b["start"]): Counter(b["counts"]) for b in body["buckets"] if b["counts"]}


async def test_counts_every_event_in_its_epoch_aligned_bucket(vc: httpx.AsyncClient, seeded: Seeded) -> None:
    """bucket=60 over the whole seeded range: each event is counted once, in the bucket of its
    timestamp (59.999999 s stays in the first minute, 60 s opens the next), per level."""
    body = await volume(vc, since=at(0), until=at(3 * 3600), bucket=60)
    assert body["bucket_s"] == 60 and len(body["buckets"]) == 180
    assert body["buckets"][0]["start"] == "2024-03-01T12:00:00.000000Z"
    assert got(body) == expected(seeded.events, 60)
    assert all(list(b["counts"]) == [lv for lv in LEVELS if lv in b["counts"]] for b in body["buckets"])


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"level": "ERROR,CRITICAL"},
        {"min_level": "warning"},
        {"kind": "system_log"},
        {"kind": "agent"},
        {"tool_name": "Bash"},
        {"tool_name": "Bash", "level": "INFO"},
        {"contains": "WORD1"},
        {"q": "word2"},
        {"since": at(61.5), "until": at(3600)},
        {"event_type": "PreToolUse", "min_level": "error"},
    ],
)
async def test_the_counts_add_up_to_what_history_returns(
    vc: httpx.AsyncClient, seeded: Seeded, params: dict[str, str]
) -> None:
    """For every filter: the histogram counts exactly the events history selects, bucket by bucket."""
    chosen = await history(vc, params)
    body = await volume(vc, **{"since": at(0), "until": at(3 * 3600), **params}, bucket=300)
    assert got(body) == expected(chosen, 300), params
    assert sum(sum(b["counts"].values()) for b in body["buckets"]) == len(chosen)


async def test_agent_id_is_a_filter_too(vc: httpx.AsyncClient, seeded: Seeded) -> None:
    agent = seeded.agents[1]
    body = await volume(vc, agent_id=agent, bucket=3600, since=at(0), until=at(3 * 3600))
    mine = [e for e in seeded.events if e["data"].get("agent_id") == agent]
    assert got(body) == expected(mine, 3600) and mine


async def test_without_a_bucket_a_round_size_gives_at_most_120(vc: httpx.AsyncClient, seeded: Seeded) -> None:
    """No bucket: a round size, ≤ 120 buckets. No since: from the earliest matching event; no
    until: up to now (the seeded events are in the past)."""
    body = await volume(vc, since=at(0), until=at(7200))
    assert body["bucket_s"] == 60 and len(body["buckets"]) == 120
    body = await volume(vc)
    assert body["since"] == "2024-03-01T12:00:00.000000Z", "starts at the earliest event"
    assert (
        epoch(body["buckets"][0]["start"])
        <= epoch(body["since"])
        < epoch(body["buckets"][0]["start"]) + body["bucket_s"]
    )
    assert len(body["buckets"]) <= 120 and got(body) == expected(seeded.events, body["bucket_s"])
    assert epoch(body["until"]) >= datetime.now(UTC).timestamp() - 60
    late = await volume(vc, kind="system_log", until=at(7200))
    first_sys = min(e["data"]["timestamp"] for e in seeded.events if e["kind"] == "system_log")
    assert late["since"] == first_sys


async def test_an_empty_range_has_no_buckets(vc: httpx.AsyncClient) -> None:
    body = await volume(vc, since=at(100), until=at(100))
    assert body["buckets"] == []
    body = await volume(vc, tool_name="NoSuchTool", since=at(0), until=at(600), bucket=60)
    assert len(body["buckets"]) == 10 and all(b["counts"] == {} for b in body["buckets"])


async def test_too_many_buckets_is_a_400_naming_bucket(vc: httpx.AsyncClient) -> None:
    r = await vc.get("/api/v1/stats/volume", params={"since": at(0), "until": at(86400), "bucket": 60})
    error = assert_error(r, 400, "bad_parameter")
    assert "bucket" in error["message"] and "500" in error["message"]
    ok = await volume(vc, since=at(0), until=at(86400), bucket=int(86400 / 499) + 1)
    assert len(ok["buckets"]) <= 500
    for params in ({"bucket": "0"}, {"bucket": "x"}, {"since": "yesterday"}, {"level": "LOUD"}):
        r = await vc.get("/api/v1/stats/volume", params=params)
        assert_error(r, 400, "bad_parameter")
        assert next(iter(params)) in r.json()["error"]["message"], r.text


async def test_times_before_1970_are_floored_not_truncated(client: httpx.AsyncClient) -> None:
    """Negative epoch seconds: 23:59:59.5 on 1969-12-31 is in the minute starting 23:59:00."""
    r = await client.post("/api/v1/system-logs", json=[{"message": "old", "timestamp": "1969-12-31T23:59:59.5Z"}])
    assert r.status_code == 201, r.text
    body = await volume(client, since="1969-12-31T23:58:00Z", until="1970-01-01T00:01:00Z", bucket=60)
    assert [(b["start"], b["counts"]) for b in body["buckets"] if b["counts"]] == [
        ("1969-12-31T23:59:00.000000Z", {"INFO": 1})
    ]


async def test_an_agent_bound_token_counts_only_its_agents(seeded: Seeded) -> None:
    """The binding narrows the counts as it narrows history; naming another agent is a 403."""
    srv = seeded.server
    mine, other = seeded.agents
    secret = new_token()
    record = TokenRecord(str(uuid.uuid4()), "bound", token_hash(secret), ("read",), (mine,), "2026-01-01T00:00:00Z")
    admin = new_token()
    boss = TokenRecord(str(uuid.uuid4()), "boss", token_hash(admin), ("admin",), (), "2026-01-01T00:00:00Z")
    assert srv.portal is not None
    srv.portal.call(srv.runtime.store.create_token, record)
    srv.portal.call(srv.runtime.store.create_token, boss)
    srv.portal.call(srv.runtime.refresh_tokens)
    try:
        async with srv.client(headers=bearer(secret)) as c:
            body = await volume(c, bucket=3600, since=at(0), until=at(3 * 3600))
            theirs = [e for e in seeded.events if e["data"].get("agent_id") == mine]
            assert got(body) == expected(theirs, 3600)
            r = await c.get("/api/v1/stats/volume", params={"agent_id": other})
            assert_error(r, 403, "forbidden")
        async with srv.client() as c:
            assert_error(await c.get("/api/v1/stats/volume"), 401, "unauthorized")
    finally:
        for rec in (record, boss):
            srv.portal.call(srv.runtime.store.delete_token, rec.id)
        srv.portal.call(srv.runtime.refresh_tokens)
