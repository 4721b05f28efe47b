"""Ingest: POST /api/v1/agent-logs, /api/v1/system-logs and /api/v1/events (wire contract §4).

Every test talks HTTP to the real app in-process over a real SQLite file (tests/api/conftest.py).
Most share one app per module; the tests that need an untouched database (no-holes over the whole
log) or other limits start their own. What needs a real socket (413 while the body is still being
sent) is in tests/e2e/test_ingest_sockets.py.
"""

from __future__ import annotations

import asyncio
import random
import re
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from helpers import (
    AppServer,
    agent_event,
    assert_error,
    head_seq,
    history,
    make_agents,
    make_agents_sync,
    start_app,
    wait_until,
)

TS_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
LIMITED_ENV = {
    "ORCHLOG_MAX_BODY_BYTES": str(1024 * 1024),
    "ORCHLOG_MAX_ITEMS": "50",
    "ORCHLOG_MAX_CONTENT_CHARS": "1000",
}


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def agents(module_server: AppServer) -> list[str]:
    """Three agents on the shared app."""
    with module_server.sync_client() as c:
        return make_agents_sync(c, 3)[1]


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """An app with small limits: 1 MiB bodies, 50 items per request, 1000-char content."""
    srv = start_app(tmp_path_factory.mktemp("limited"), env=LIMITED_ENV)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def lclient(limited_server: AppServer) -> Any:
    async with limited_server.client() as c:
        yield c


def ndjson(items: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(item) + b"\n" for item in items)


async def post_raw(client: httpx.AsyncClient, path: str, body: bytes, content_type: str) -> httpx.Response:
    return await client.post(path, content=body, headers={"content-type": content_type})


async def rows_by_seq(client: httpx.AsyncClient, seqs: list[int]) -> dict[int, dict[str, Any]]:
    """The stored events at these seqs (kind and data), read back through history."""
    lo, hi = min(seqs), max(seqs)
    found = await history(client, after=lo - 1)
    return {e["seq"]: e for e in found if lo <= e["seq"] <= hi and e["seq"] in set(seqs)}


def check_acks(body: dict[str, Any], sent: list[dict[str, Any]]) -> list[int]:
    """The ack shape of the contract: count, one {id, seq, duplicate} per item in request order."""
    assert body["count"] == len(sent) == len(body["items"]), body
    seqs = []
    for ack, item in zip(body["items"], sent, strict=True):
        assert set(ack) == {"id", "seq", "duplicate"}, ack
        assert isinstance(ack["seq"], int) and ack["seq"] > 0
        assert ack["id"] == str(uuid.UUID(ack["id"])), "ack ids are canonical lower-case UUIDs"
        if "id" in item:
            assert ack["id"] == str(uuid.UUID(str(item["id"]))), (ack, item)
        seqs.append(ack["seq"])
    return seqs


# ---------------------------------------------------------------- the three body forms


async def test_single_object_gets_one_ack_and_is_stored(mclient: httpx.AsyncClient) -> None:
    """One JSON object → 201 {count: 1, items: [{id, seq, duplicate: false}]}; history has it at that seq."""
    r = await mclient.post("/api/v1/system-logs", json={"level": "INFO", "message": "single object"})
    assert r.status_code == 201, r.text
    (seq,) = check_acks(r.json(), [{}])
    assert r.json()["items"][0]["duplicate"] is False
    stored = await rows_by_seq(mclient, [seq])
    assert stored[seq]["kind"] == "system_log"
    assert stored[seq]["data"]["message"] == "single object"
    assert stored[seq]["data"]["id"] == r.json()["items"][0]["id"]


async def test_json_array_acks_in_request_order(mclient: httpx.AsyncClient, agents: list[str]) -> None:
    """A JSON array → one ack per item, in request order, with strictly increasing seqs."""
    sent = [agent_event(agents[i % 3], f"array item {i}", id=str(uuid.uuid4())) for i in range(7)]
    r = await mclient.post("/api/v1/agent-logs", json=sent)
    assert r.status_code == 201, r.text
    seqs = check_acks(r.json(), sent)
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    stored = await rows_by_seq(mclient, seqs)
    for seq, item in zip(seqs, sent, strict=True):
        assert stored[seq]["kind"] == "agent_log"
        assert stored[seq]["data"]["id"] == item["id"]
        assert stored[seq]["data"]["content"] == item["content"]
        assert stored[seq]["data"]["agent_id"] == item["agent_id"]


async def test_ndjson_body_one_item_per_line(mclient: httpx.AsyncClient) -> None:
    """application/x-ndjson: one object per line (blank lines ignored), acks in line order."""
    sent = [{"id": str(uuid.uuid4()), "level": "INFO", "message": f"ndjson {i}"} for i in range(4)]
    body = orjson.dumps(sent[0]) + b"\n\n" + ndjson(sent[1:])
    r = await post_raw(mclient, "/api/v1/system-logs", body, "application/x-ndjson")
    assert r.status_code == 201, r.text
    seqs = check_acks(r.json(), sent)
    stored = await rows_by_seq(mclient, seqs)
    assert [stored[s]["data"]["message"] for s in seqs] == [f"ndjson {i}" for i in range(4)]


async def test_ndjson_single_line_without_trailing_newline(mclient: httpx.AsyncClient) -> None:
    """An NDJSON body of one line with no final newline is one item."""
    r = await post_raw(
        mclient, "/api/v1/system-logs", b'{"level": "DEBUG", "message": "one line"}', "application/x-ndjson"
    )
    assert r.status_code == 201, r.text
    assert r.json()["count"] == 1


async def test_events_endpoint_takes_mixed_kinds(mclient: httpx.AsyncClient, agents: list[str]) -> None:
    """POST /api/v1/events stores each item in the table its `kind` names, in request order."""
    sent = [
        {"kind": "agent_log", **agent_event(agents[0], "mixed 0")},
        {"kind": "system_log", "level": "WARNING", "message": "mixed 1"},
        {"kind": "agent_log", **agent_event(agents[1], "mixed 2")},
        {"kind": "system_log", "level": "ERROR", "message": "mixed 3"},
    ]
    r = await mclient.post("/api/v1/events", json=sent)
    assert r.status_code == 201, r.text
    seqs = check_acks(r.json(), sent)
    stored = await rows_by_seq(mclient, seqs)
    assert [stored[s]["kind"] for s in seqs] == ["agent_log", "system_log", "agent_log", "system_log"]
    assert stored[seqs[1]]["data"]["message"] == "mixed 1"
    assert stored[seqs[2]]["data"]["content"] == "mixed 2"
    assert "kind" not in stored[seqs[0]]["data"], "kind is the envelope's, not a row column"


async def test_events_endpoint_ndjson_mixed(mclient: httpx.AsyncClient, agents: list[str]) -> None:
    """NDJSON works on /api/v1/events too."""
    sent = [
        {"kind": "system_log", "level": "INFO", "message": "nd mixed 0"},
        {"kind": "agent_log", **agent_event(agents[2], "nd mixed 1")},
    ]
    r = await post_raw(mclient, "/api/v1/events", ndjson(sent), "application/x-ndjson")
    assert r.status_code == 201, r.text
    seqs = check_acks(r.json(), sent)
    stored = await rows_by_seq(mclient, seqs)
    assert [stored[s]["kind"] for s in seqs] == ["system_log", "agent_log"]


async def test_events_endpoint_requires_a_known_kind(mclient: httpx.AsyncClient) -> None:
    """/api/v1/events without `kind`, or with an unknown one → 422 naming the index and field `kind`."""
    r = await mclient.post("/api/v1/events", json=[{"kind": "system_log", "message": "ok"}, {"message": "x"}])
    error = assert_error(r, 422, "validation_failed")
    assert {"index": 1, "field": "kind"}.items() <= error["details"][0].items(), error
    r = await mclient.post("/api/v1/events", json={"kind": "metric", "message": "x"})
    error = assert_error(r, 422, "validation_failed")
    assert error["details"][0]["field"] == "kind", error


# ---------------------------------------------------------------- normalisation


async def test_ids_come_back_canonical_lower_case(mclient: httpx.AsyncClient, agents: list[str]) -> None:
    """Upper-case (or hyphen-less) ids and agent_ids are accepted and stored/returned lower-case."""
    ident = uuid.uuid4()
    sent = agent_event(agents[0].upper(), "upper id", id=str(ident).upper())
    r = await mclient.post("/api/v1/agent-logs", json=sent)
    assert r.status_code == 201, r.text
    ack = r.json()["items"][0]
    assert ack["id"] == str(ident)
    stored = (await rows_by_seq(mclient, [ack["seq"]]))[ack["seq"]]["data"]
    assert stored["id"] == str(ident)
    assert stored["agent_id"] == agents[0]

    hexed = uuid.uuid4()
    r = await mclient.post("/api/v1/system-logs", json={"id": hexed.hex.upper(), "message": "hex id"})
    assert r.status_code == 201, r.text
    assert r.json()["items"][0]["id"] == str(hexed)


async def test_level_is_normalised_upper_case(mclient: httpx.AsyncClient, agents: list[str]) -> None:
    """`level` accepts any case and is stored upper-case; an agent log without level is INFO."""
    given = ["debug", "Info", "wArNiNg", "error", "critical"]
    r = await mclient.post("/api/v1/system-logs", json=[{"level": lv, "message": lv} for lv in given])
    assert r.status_code == 201, r.text
    seqs = [a["seq"] for a in r.json()["items"]]
    stored = await rows_by_seq(mclient, seqs)
    assert [stored[s]["data"]["level"] for s in seqs] == ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

    r = await mclient.post("/api/v1/agent-logs", json=[agent_event(agents[0]), agent_event(agents[0], level="error")])
    assert r.status_code == 201, r.text
    seqs = [a["seq"] for a in r.json()["items"]]
    stored = await rows_by_seq(mclient, seqs)
    assert [stored[s]["data"]["level"] for s in seqs] == ["INFO", "ERROR"]


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2024-03-10T12:00:00+02:00", "2024-03-10T10:00:00.000000Z"),
        ("2024-03-10T12:00:00.123-05:30", "2024-03-10T17:30:00.123000Z"),
        ("2024-03-10T23:59:59.999999-01:00", "2024-03-11T00:59:59.999999Z"),
        ("2024-03-10T12:00:00Z", "2024-03-10T12:00:00.000000Z"),
        ("2024-03-10T12:00:00.5+00:00", "2024-03-10T12:00:00.500000Z"),
    ],
)
async def test_client_timestamps_stored_as_utc_z_with_microseconds(
    mclient: httpx.AsyncClient, agents: list[str], given: str, stored: str
) -> None:
    """A client timestamp with any offset is stored and returned as UTC `YYYY-MM-DDTHH:MM:SS.ffffffZ`."""
    r = await mclient.post(
        "/api/v1/events",
        json=[
            {"kind": "agent_log", **agent_event(agents[0], "ts", timestamp=given)},
            {"kind": "system_log", "message": "ts", "timestamp": given},
        ],
    )
    assert r.status_code == 201, r.text
    seqs = [a["seq"] for a in r.json()["items"]]
    rows = await rows_by_seq(mclient, seqs)
    assert [rows[s]["data"]["timestamp"] for s in seqs] == [stored, stored]


async def test_server_fills_id_and_timestamp(mclient: httpx.AsyncClient, agents: list[str]) -> None:
    """Items without `id`/`timestamp` get a fresh UUID and the server's current UTC time."""
    before = datetime.now(UTC) - timedelta(seconds=5)
    r = await mclient.post("/api/v1/agent-logs", json=[agent_event(agents[1], "a"), agent_event(agents[1], "b")])
    assert r.status_code == 201, r.text
    acks = r.json()["items"]
    assert acks[0]["id"] != acks[1]["id"]
    rows = await rows_by_seq(mclient, [a["seq"] for a in acks])
    for ack in acks:
        ts = rows[ack["seq"]]["data"]["timestamp"]
        assert TS_FORMAT.match(ts), ts
        moment = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert before <= moment <= datetime.now(UTC) + timedelta(seconds=5)
        assert rows[ack["seq"]]["data"]["id"] == ack["id"]


async def test_optional_fields_round_trip(mclient: httpx.AsyncClient, agents: list[str]) -> None:
    """Every agent-log column posted comes back unchanged in history (payload as a JSON object)."""
    sent = {
        "agent_id": agents[2],
        "session_id": "sess-rt",
        "task_slug": "task-rt",
        "adw_id": "adw-rt",
        "adw_step": "build",
        "entry_index": 7,
        "event_category": "response",
        "event_type": "tool_use",
        "level": "WARNING",
        "content": "ünïcödé ✓ content",
        "payload": {"tool": "Bash", "args": [1, 2.5, None, True], "nested": {"k": "v"}},
        "summary": "a summary",
    }
    r = await mclient.post("/api/v1/agent-logs", json=sent)
    assert r.status_code == 201, r.text
    seq = r.json()["items"][0]["seq"]
    data = (await rows_by_seq(mclient, [seq]))[seq]["data"]
    for key, value in sent.items():
        assert data[key] == value, key
    sys_sent = {"level": "ERROR", "message": "m", "file_path": "/x.py", "adw_id": "a", "adw_step": "s",
                "summary": "sum", "metadata": {"a": [1, {"b": 2}]}}  # fmt: skip
    r = await mclient.post("/api/v1/system-logs", json=sys_sent)
    assert r.status_code == 201, r.text
    seq = r.json()["items"][0]["seq"]
    data = (await rows_by_seq(mclient, [seq]))[seq]["data"]
    for key, value in sys_sent.items():
        assert data[key] == value, key


# ---------------------------------------------------------------- idempotency


async def test_repost_returns_original_seq_and_writes_nothing(mclient: httpx.AsyncClient, agents: list[str]) -> None:
    """Re-posting known ids returns their original seqs with duplicate=true; no row is written,
    head_seq does not move, and the stored row keeps its original content."""
    sent = [agent_event(agents[0], f"idem {i}", id=str(uuid.uuid4())) for i in range(3)]
    first = await mclient.post("/api/v1/agent-logs", json=sent)
    assert first.status_code == 201, first.text
    seqs = check_acks(first.json(), sent)
    head = await head_seq(mclient)
    total = len(await history(mclient))

    retry = [{**item, "content": "changed on retry"} for item in sent]
    again = await mclient.post("/api/v1/agent-logs", json=retry)
    assert again.status_code == 201, again.text
    assert check_acks(again.json(), retry) == seqs
    assert [a["duplicate"] for a in again.json()["items"]] == [True, True, True]
    assert await head_seq(mclient) == head
    everything = await history(mclient)
    assert len(everything) == total
    assert [e["data"]["id"] for e in everything].count(sent[0]["id"]) == 1
    stored = await rows_by_seq(mclient, seqs)
    assert [stored[s]["data"]["content"] for s in seqs] == ["idem 0", "idem 1", "idem 2"]


async def test_repost_with_other_case_and_form_is_a_duplicate(mclient: httpx.AsyncClient) -> None:
    """The idempotency key is the canonical UUID: upper-case or hex form of a known id is a duplicate."""
    ident = uuid.uuid4()
    r = await mclient.post("/api/v1/system-logs", json={"id": str(ident), "message": "case"})
    seq = r.json()["items"][0]["seq"]
    for form in (str(ident).upper(), ident.hex):
        r = await mclient.post("/api/v1/system-logs", json={"id": form, "message": "case"})
        assert r.status_code == 201, r.text
        assert r.json()["items"][0] == {"id": str(ident), "seq": seq, "duplicate": True}


async def test_repost_mixing_known_and_new_ids(mclient: httpx.AsyncClient) -> None:
    """A retry that adds new items: known ids are duplicates at their old seqs, new ones get new seqs."""
    known = {"id": str(uuid.uuid4()), "message": "known"}
    r = await mclient.post("/api/v1/system-logs", json=known)
    known_seq = r.json()["items"][0]["seq"]
    head = await head_seq(mclient)
    new = {"id": str(uuid.uuid4()), "message": "new"}
    r = await mclient.post("/api/v1/system-logs", json=[new, known])
    assert r.status_code == 201, r.text
    assert r.json()["items"] == [
        {"id": new["id"], "seq": head + 1, "duplicate": False},
        {"id": known["id"], "seq": known_seq, "duplicate": True},
    ]
    assert await head_seq(mclient) == head + 1


async def test_duplicate_id_inside_one_array(mclient: httpx.AsyncClient, agents: list[str]) -> None:
    """The same id twice in one request: stored once; the second ack repeats the first's seq as duplicate."""
    a = agent_event(agents[0], "first copy", id=str(uuid.uuid4()))
    b = agent_event(agents[0], "other", id=str(uuid.uuid4()))
    head = await head_seq(mclient)
    r = await mclient.post("/api/v1/agent-logs", json=[a, b, {**a, "content": "second copy"}])
    assert r.status_code == 201, r.text
    acks = r.json()["items"]
    assert [x["duplicate"] for x in acks] == [False, False, True]
    assert acks[2]["seq"] == acks[0]["seq"] and acks[2]["id"] == a["id"]
    assert await head_seq(mclient) == head + 2
    ids = [e["data"]["id"] for e in await history(mclient, after=head)]
    assert sorted(ids) == sorted([a["id"], b["id"]])
    stored = await rows_by_seq(mclient, [acks[0]["seq"]])
    assert stored[acks[0]["seq"]]["data"]["content"] == "first copy"


# ---------------------------------------------------------------- concurrency


async def test_50_concurrent_posters_every_ack_stored_once_no_holes(server: AppServer) -> None:
    """50 posters x 200 events (random batches of 1-20, all three endpoints, JSON and NDJSON):
    every acked event is in history exactly once; seqs unique, strictly increasing with no holes;
    each ack's seq holds that ack's id; each poster's later acks have higher seqs."""
    rng = random.Random(20240601)
    posters, per_poster = 50, 200
    limits = httpx.Limits(max_connections=posters, max_keepalive_connections=posters)
    async with server.client(timeout=60, limits=limits) as client:
        _orch, agent_ids = await make_agents(client, 4)
        plans = []
        for p in range(posters):
            batches, left = [], per_poster
            while left:
                size = min(left, rng.randint(1, 20))
                left -= size
                endpoint = rng.choice(["/api/v1/agent-logs", "/api/v1/system-logs", "/api/v1/events"])
                items = []
                for i in range(size):
                    kind = (
                        "agent_log"
                        if endpoint.endswith("agent-logs")
                        else "system_log"
                        if endpoint.endswith("system-logs")
                        else rng.choice(["agent_log", "system_log"])
                    )
                    if kind == "agent_log":
                        item: dict[str, Any] = agent_event(rng.choice(agent_ids), f"p{p} b{len(batches)} i{i}")
                    else:
                        item = {"level": "INFO", "message": f"p{p} b{len(batches)} i{i}"}
                    if rng.random() < 0.7:
                        item["id"] = str(uuid.uuid4())
                    if endpoint.endswith("/events"):
                        item["kind"] = kind
                    items.append((kind, item))
                batches.append((endpoint, rng.choice(["json", "ndjson"]), items))
            plans.append(batches)

        async def poster(batches: list[Any]) -> list[tuple[str, str, int]]:
            acked: list[tuple[str, str, int]] = []
            last = 0
            for endpoint, form, items in batches:
                bodies = [item for _kind, item in items]
                if form == "ndjson":
                    r = await post_raw(client, endpoint, ndjson(bodies), "application/x-ndjson")
                elif len(bodies) == 1:
                    r = await client.post(endpoint, json=bodies[0])
                else:
                    r = await client.post(endpoint, json=bodies)
                assert r.status_code == 201, r.text
                seqs = check_acks(r.json(), bodies)
                assert all(s > last for s in seqs), "a poster's later request got a lower seq"
                assert seqs == sorted(seqs), "acks of one request are not in increasing seq order"
                last = seqs[-1]
                assert not any(a["duplicate"] for a in r.json()["items"])
                acked.extend(
                    (kind, ack["id"], ack["seq"]) for (kind, _), ack in zip(items, r.json()["items"], strict=True)
                )
            return acked

        results = await asyncio.gather(*(poster(b) for b in plans))
        acked = [a for per in results for a in per]
        assert len(acked) == posters * per_poster
        assert len({seq for _k, _i, seq in acked}) == len(acked), "two acks share a seq"
        assert len({ident for _k, ident, _s in acked}) == len(acked), "two acks share an id"

        stored = await history(client)
        seqs = [e["seq"] for e in stored]
        assert seqs == list(range(1, posters * per_poster + 1)), "history is not exactly seqs 1..N"
        by_seq = {e["seq"]: e for e in stored}
        for kind, ident, seq in acked:
            assert by_seq[seq]["data"]["id"] == ident, f"seq {seq} holds another event than its ack says"
            assert by_seq[seq]["kind"] == kind
            assert by_seq[seq]["data"]["seq"] == seq
        assert await head_seq(client) == posters * per_poster


async def test_unknown_agent_fails_its_request_alone(mclient: httpx.AsyncClient, agents: list[str]) -> None:
    """A request with one unknown agent_id → 422 naming its index and `agent_id`; none of its good
    items are stored; concurrent good requests all commit; the failed request leaves no seq hole."""
    unknown = str(uuid.uuid4())
    bad = [agent_event(agents[0], f"bad-req {i}", id=str(uuid.uuid4())) for i in range(4)]
    bad[2]["agent_id"] = unknown
    goods = [
        [agent_event(agents[i % 3], f"good-req {n} {i}", id=str(uuid.uuid4())) for i in range(5)] for n in range(30)
    ]
    head = await head_seq(mclient)

    async def post(items: list[dict[str, Any]]) -> httpx.Response:
        return await mclient.post("/api/v1/agent-logs", json=items)

    responses = await asyncio.gather(*(post(g) for g in goods[:15]), post(bad), *(post(g) for g in goods[15:]))
    bad_response = responses[15]
    error = assert_error(bad_response, 422, "validation_failed")
    assert any(d.get("index") == 2 and d.get("field") == "agent_id" for d in error["details"]), error
    assert unknown in error["message"] or unknown in str(error["details"])
    good_responses = responses[:15] + responses[16:]
    for r, items in zip(good_responses, goods, strict=True):
        assert r.status_code == 201, r.text
        check_acks(r.json(), items)

    after = await history(mclient, after=head)
    stored_ids = {e["data"]["id"] for e in after}
    assert not stored_ids & {item["id"] for item in bad}, "an item of the failed request was stored"
    assert {item["id"] for g in goods for item in g} <= stored_ids
    assert [e["seq"] for e in after] == list(range(head + 1, head + 1 + 150)), "seqs have a hole"


async def test_full_queue_is_503_with_retry_after_at_once(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Writer stalled (another process holds the database's write lock) and its queue full
    (ORCHLOG_QUEUE_MAX_REQUESTS=1): extra requests get 503 overloaded with Retry-After while the
    lock is still held, never an unbounded wait; the accepted ones commit once it is released."""
    env = {"ORCHLOG_QUEUE_MAX_REQUESTS": "1", "ORCHLOG_BUSY_TIMEOUT_MS": "60000"}
    srv = start_app(tmp_path_factory.mktemp("overload"), env=env)
    blocker = sqlite3.connect(srv.db, isolation_level=None)
    try:
        async with srv.client(timeout=60) as c:
            blocker.execute("BEGIN IMMEDIATE")
            tasks = [asyncio.ensure_future(c.post("/api/v1/system-logs", json={"message": f"q{i}"})) for i in range(6)]
            await wait_until(lambda: sum(t.done() for t in tasks) >= 4, 20, "4 of 6 requests refused at once")
            early = [i for i, t in enumerate(tasks) if t.done()]
            for i in early:
                r = tasks[i].result()
                assert_error(r, 503, "overloaded")
                assert int(r.headers["retry-after"]) >= 1
            blocker.execute("ROLLBACK")
            accepted = [i for i in range(6) if i not in early]
            for i in accepted:
                r = await tasks[i]
                assert r.status_code == 201, r.text
            stored = sorted(e["data"]["message"] for e in await history(c))
            assert stored == sorted(f"q{i}" for i in accepted)
            assert (await c.get("/readyz")).status_code == 200
    finally:
        if blocker.in_transaction:
            blocker.execute("ROLLBACK")
        blocker.close()
        srv.stop()


# ---------------------------------------------------------------- 4xx, each with its error code


async def test_malformed_json_is_400_with_line(mclient: httpx.AsyncClient) -> None:
    """Malformed JSON → 400 bad_request naming the line and column."""
    r = await post_raw(mclient, "/api/v1/system-logs", b'{"message": "x",', "application/json")
    error = assert_error(r, 400, "bad_request")
    assert "line 1" in error["message"], error
    r = await post_raw(mclient, "/api/v1/system-logs", b'[\n{"message": "x"},\n{"message" "y"}\n]', "application/json")
    error = assert_error(r, 400, "bad_request")
    assert "line 3" in error["message"], error
    assert error["details"][0]["line"] == 3


async def test_malformed_ndjson_names_the_line(mclient: httpx.AsyncClient) -> None:
    """Malformed NDJSON → 400 naming the bad line's number; nothing of the body is stored."""
    head = await head_seq(mclient)
    body = b'{"message": "ok 1"}\n{"message": "ok 2"}\n{"message": oops}\n{"message": "ok 4"}\n'
    r = await post_raw(mclient, "/api/v1/system-logs", body, "application/x-ndjson")
    error = assert_error(r, 400, "bad_request")
    assert "line 3" in error["message"], error
    assert error["details"][0]["line"] == 3
    assert await head_seq(mclient) == head


async def test_empty_bodies_are_400(mclient: httpx.AsyncClient) -> None:
    """An empty body, an empty array and an NDJSON body of blank lines → 400 bad_request."""
    for body, ctype in (
        (b"", "application/json"),
        (b"[]", "application/json"),
        (b"\n\n", "application/x-ndjson"),
    ):
        assert_error(await post_raw(mclient, "/api/v1/system-logs", body, ctype), 400, "bad_request")


async def test_non_object_items_are_422(mclient: httpx.AsyncClient) -> None:
    """An item that is not an object (a number, a string) → 422 naming its index."""
    r = await mclient.post("/api/v1/system-logs", json=[{"message": "ok"}, 42])
    error = assert_error(r, 422, "validation_failed")
    assert error["details"][0]["index"] == 1, error


async def test_body_under_limit_is_accepted(lclient: httpx.AsyncClient) -> None:
    """Control for the 413s: a body just under the limit is accepted (a ~0.9 MiB item within limits)."""
    r = await lclient.post(
        "/api/v1/system-logs",
        json=[{"message": "x", "metadata": {"pad": "p" * 18000}} for _ in range(50)],
    )
    assert r.status_code == 201, r.text


async def test_declared_length_over_small_limit_is_413(lclient: httpx.AsyncClient) -> None:
    """With ORCHLOG_MAX_BODY_BYTES=1 MiB, a 1 MiB + 1 byte JSON body → 413 payload_too_large."""
    body = orjson.dumps({"message": "m", "metadata": {"pad": ""}})
    body = body.replace(b'"pad":""', b'"pad":"' + b"p" * (1024 * 1024 + 1 - len(body)) + b'"')
    assert len(body) == 1024 * 1024 + 1
    assert_error(await post_raw(lclient, "/api/v1/system-logs", body, "application/json"), 413, "payload_too_large")


async def test_too_many_items_is_413(lclient: httpx.AsyncClient) -> None:
    """More items than ORCHLOG_MAX_ITEMS (50) → 413, for JSON arrays and NDJSON; exactly 50 is fine."""
    items = [{"message": f"n{i}"} for i in range(51)]
    error = assert_error(await lclient.post("/api/v1/system-logs", json=items), 413, "payload_too_large")
    assert "50" in error["message"]
    r = await post_raw(lclient, "/api/v1/system-logs", ndjson(items), "application/x-ndjson")
    assert_error(r, 413, "payload_too_large")
    r = await lclient.post("/api/v1/system-logs", json=items[:50])
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("ctype", ["application/xml", "text/plain", "multipart/form-data; boundary=x"])
async def test_unsupported_content_type_is_415(mclient: httpx.AsyncClient, ctype: str) -> None:
    """A content type other than JSON / NDJSON → 415 unsupported_media_type."""
    r = await post_raw(mclient, "/api/v1/system-logs", b"<log><message>x</message></log>", ctype)
    assert_error(r, 415, "unsupported_media_type")


async def test_json_with_charset_is_accepted(mclient: httpx.AsyncClient) -> None:
    """`application/json; charset=utf-8` is JSON (parameters of the media type are ignored)."""
    r = await post_raw(mclient, "/api/v1/system-logs", b'{"message": "charset"}', "application/json; charset=utf-8")
    assert r.status_code == 201, r.text


async def test_unknown_field_is_422_naming_it(mclient: httpx.AsyncClient, agents: list[str]) -> None:
    """An unknown field → 422 validation_failed whose details name the item index and the field."""
    r = await mclient.post("/api/v1/system-logs", json=[{"message": "ok"}, {"message": "x", "colour": "red"}])
    error = assert_error(r, 422, "validation_failed")
    assert {"index": 1, "field": "colour"}.items() <= error["details"][0].items(), error
    assert "colour" in error["message"]
    r = await mclient.post("/api/v1/agent-logs", json=agent_event(agents[0], extra_field=1))
    error = assert_error(r, 422, "validation_failed")
    assert error["details"][0]["field"] == "extra_field", error


async def test_bad_level_is_422(mclient: httpx.AsyncClient, agents: list[str]) -> None:
    """A level outside DEBUG..CRITICAL → 422 naming field `level`."""
    r = await mclient.post("/api/v1/system-logs", json={"message": "x", "level": "LOUD"})
    error = assert_error(r, 422, "validation_failed")
    assert error["details"][0]["field"] == "level", error
    r = await mclient.post("/api/v1/agent-logs", json=[agent_event(agents[0]), agent_event(agents[0], level=5)])
    error = assert_error(r, 422, "validation_failed")
    assert {"index": 1, "field": "level"}.items() <= error["details"][0].items(), error


async def test_bad_field_values_are_422(mclient: httpx.AsyncClient, agents: list[str]) -> None:
    """Bad category, missing required field, bad UUID, bad timestamp, non-object payload → 422 naming each."""
    cases = [
        ("/api/v1/agent-logs", agent_event(agents[0], event_category="chatter"), "event_category"),
        ("/api/v1/agent-logs", {"agent_id": agents[0], "event_type": "x"}, "event_category"),
        ("/api/v1/agent-logs", agent_event("not-a-uuid"), "agent_id"),
        ("/api/v1/agent-logs", agent_event(agents[0], payload=[1, 2]), "payload"),
        ("/api/v1/system-logs", {"level": "INFO"}, "message"),
        ("/api/v1/system-logs", {"message": "x", "id": "12345"}, "id"),
        ("/api/v1/system-logs", {"message": "x", "timestamp": "yesterday"}, "timestamp"),
        ("/api/v1/system-logs", {"message": "x", "metadata": "text"}, "metadata"),
    ]
    for path, item, field in cases:
        error = assert_error(await mclient.post(path, json=item), 422, "validation_failed")
        assert any(d["field"] == field for d in error["details"]), (item, error)


async def test_every_bad_item_is_reported_with_its_index(mclient: httpx.AsyncClient) -> None:
    """All failing items are listed, each with its index (not only the first)."""
    items = [{"message": "x", "level": "nope"}, {"message": "ok"}, {"level": "INFO"}]
    error = assert_error(await mclient.post("/api/v1/system-logs", json=items), 422, "validation_failed")
    assert {(d["index"], d["field"]) for d in error["details"]} == {(0, "level"), (2, "message")}, error


async def test_oversize_content_is_422(lclient: httpx.AsyncClient, limited_server: AppServer) -> None:
    """content / message over ORCHLOG_MAX_CONTENT_CHARS (1000) → 422 naming the field; 1000 is fine."""
    with limited_server.sync_client() as c:
        agent = make_agents_sync(c, 1, prefix="limits")[1][0]
    r = await lclient.post("/api/v1/agent-logs", json=[agent_event(agent, "x" * 1000), agent_event(agent, "y" * 1001)])
    error = assert_error(r, 422, "validation_failed")
    assert {"index": 1, "field": "content"}.items() <= error["details"][0].items(), error
    r = await lclient.post("/api/v1/system-logs", json={"message": "m" * 1001})
    assert assert_error(r, 422, "validation_failed")["details"][0]["field"] == "message"
    r = await lclient.post("/api/v1/agent-logs", json=agent_event(agent, "z" * 1000))
    assert r.status_code == 201, r.text


async def test_unknown_route_is_404_json(mclient: httpx.AsyncClient) -> None:
    """An unknown path → 404 with the JSON error body (code not_found)."""
    assert_error(await mclient.get("/api/v1/nope"), 404, "not_found")
    assert_error(await mclient.post("/api/v1/agent-log", json={}), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/agent-logs"),
        ("PUT", "/api/v1/system-logs"),
        ("DELETE", "/api/v1/events"),
        ("PATCH", "/api/v1/events"),
        ("POST", "/healthz"),
    ],
)
async def test_wrong_method_is_405(mclient: httpx.AsyncClient, method: str, path: str) -> None:
    """A known route with the wrong method → 405 method_not_allowed (JSON error body)."""
    assert_error(await mclient.request(method, path), 405, "method_not_allowed")


async def test_healthy_after_every_kind_of_bad_input(
    module_server: AppServer, mclient: httpx.AsyncClient, agents: list[str]
) -> None:
    """A burst of every bad request at once: each gets its 4xx, no body has a traceback, and
    afterwards /healthz and /readyz are 200 and a good post still commits."""
    bad: list[tuple[str, str, bytes, str, int]] = [
        ("POST", "/api/v1/system-logs", b"{", "application/json", 400),
        ("POST", "/api/v1/system-logs", b'{"message": "a"}\n{', "application/x-ndjson", 400),
        ("POST", "/api/v1/system-logs", b"<x/>", "application/xml", 415),
        ("POST", "/api/v1/system-logs", b'{"message": "a", "bogus": 1}', "application/json", 422),
        ("POST", "/api/v1/system-logs", b'{"message": "a", "level": "LOUD"}', "application/json", 422),
        ("POST", "/api/v1/system-logs", b'{"message": "a", "metadata": []}', "application/json", 422),
        ("POST", "/api/v1/system-logs", b'"just a string"', "application/json", 422),
        ("POST", "/api/v1/system-logs", b"\xff\xfe\x00", "application/json", 400),
        ("POST", "/api/v1/agent-logs", orjson.dumps(agent_event(str(uuid.uuid4()))), "application/json", 422),
        ("POST", "/api/v1/events", b'[{"kind": 1}]', "application/json", 422),
        ("POST", "/api/v1/events", b"[" * 10000 + b"]" * 10000, "application/json", 400),
        ("GET", "/api/v1/events?after=abc", b"", "application/json", 400),
        ("GET", "/api/v1/missing", b"", "application/json", 404),
        ("PUT", "/api/v1/agent-logs", b"{}", "application/json", 405),
    ]
    responses = await asyncio.gather(
        *(mclient.request(m, p, content=b, headers={"content-type": c}) for m, p, b, c, _ in bad)
    )
    for (method, path, body, _c, status), r in zip(bad, responses, strict=True):
        assert r.status_code == status, (method, path, body[:40], r.status_code, r.text)
        assert "Traceback" not in r.text
        assert "error" in r.json() and r.json()["error"]["code"], r.text
    assert (await mclient.get("/healthz")).status_code == 200
    ready = await mclient.get("/readyz")
    assert ready.status_code == 200, ready.text
    r = await mclient.post("/api/v1/agent-logs", json=agent_event(agents[0], "after the storm"))
    assert r.status_code == 201, r.text
    assert module_server.runtime.started, "the runtime stopped"


def test_server_log_has_no_crash(module_server: AppServer, limited_server: AppServer) -> None:
    """Nothing above made the servers log an unhandled error (500s are bugs, 4xx are not)."""
    for srv in (module_server, limited_server):
        text = srv.log_text()
        assert "unhandled error" not in text, text[-3000:]
        assert " 500 " not in text, text[-3000:]


def _ingested(text: str) -> dict[tuple[str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.labels["kind"], s.labels["result"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "orchlog_ingest_events_total"
    }


async def test_the_ingest_counters_count_each_kind_and_duplicates(client: httpx.AsyncClient) -> None:
    """orchlog_ingest_events_total by kind and result, on a one-kind route and on the mixed one."""
    _, (agent,) = await make_agents(client, 1)
    ident = str(uuid.uuid4())
    before = _ingested((await client.get("/metrics")).text)
    r = await client.post("/api/v1/agent-logs", json=[agent_event(agent, "a"), agent_event(agent, "b", id=ident)])
    assert r.status_code == 201, r.text
    mixed = [
        {"kind": "agent_log", **agent_event(agent, "b", id=ident)},  # a duplicate
        {"kind": "system_log", "message": "s"},
        {"kind": "agent_log", **agent_event(agent, "c")},
    ]
    r = await client.post("/api/v1/events", json=mixed)
    assert [it["duplicate"] for it in r.json()["items"]] == [True, False, False]
    after = _ingested((await client.get("/metrics")).text)
    moved = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
    assert moved == {("agent_log", "stored"): 3, ("agent_log", "duplicate"): 1, ("system_log", "stored"): 1}
