"""One contract suite for both stores, plus what only PostgreSQL can do: several replicas.

The contract tests run against SQLite always and against PostgreSQL when ORCHLOG_TEST_PG_URL
points at a server where the user may create databases (`.ci/run` starts one). Each test gets a
throwaway database. Without the variable the PostgreSQL half is skipped, and says so.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from helpers import Server, free_port, history, make_agents, wait_until
from helpers.pg import needs_pg


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=needs_pg)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "contract.db")
    url: str = request.getfixturevalue("pg_db")
    return url


@pytest.fixture
def store_server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "server.db")
    srv.db = db_url  # type: ignore[assignment]  # a path or a postgresql:// URL: passed as --db
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def api(store_server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=store_server.url, timeout=30) as c:
        yield c


def event(agents: list[str], n: int) -> dict[str, Any]:
    if random.random() < 0.7:
        return {
            "kind": "agent_log",
            "agent_id": random.choice(agents),
            "event_category": random.choice(["hook", "response"]),
            "event_type": random.choice(["PreToolUse", "text"]),
            "level": random.choice(["INFO", "WARNING", "ERROR"]),
            "content": f"event {n}",
        }
    return {"kind": "system_log", "level": random.choice(["INFO", "ERROR"]), "message": f"event {n}"}


# ---------------------------------------------------------------- the contract, on both stores


async def test_ingest_ack_history_and_idempotency(api: httpx.AsyncClient) -> None:
    _orch, agents = await make_agents(api, 2)
    ident = str(uuid.uuid4())
    item = {
        "kind": "agent_log",
        "id": ident.upper(),
        "agent_id": agents[0],
        "event_category": "hook",
        "event_type": "PreToolUse",
        "level": "warning",
        "payload": {"x": [1, {"y": True}]},
        "timestamp": "2024-01-02T03:04:05+01:00",
    }
    first = (await api.post("/api/v1/events", json=[item, {"kind": "system_log", "message": "m"}])).json()["items"]
    again = (await api.post("/api/v1/events", json=item)).json()["items"][0]
    assert again == {"id": ident, "seq": first[0]["seq"], "duplicate": True}
    rows = await history(api)
    assert [r["seq"] for r in rows] == [first[0]["seq"], first[1]["seq"]]
    data = rows[0]["data"]
    assert data["id"] == ident and data["level"] == "WARNING" and data["payload"] == {"x": [1, {"y": True}]}
    assert data["timestamp"] == "2024-01-02T02:04:05.000000Z"


async def test_times_with_non_ascii_digits_are_a_422_on_every_route_that_takes_a_time(api: httpx.AsyncClient) -> None:
    """A fullwidth or Arabic-Indic digit looks like a digit to pydantic-core's regex (\\d): such a
    time must be refused by validation, naming the field, on every route that takes a client's
    time (the Claude Code hook's ``orchlog`` envelope included) and on either store (it reached
    SQLite's CHECK without a field, and PostgreSQL's time parser as a 500)."""
    _orch, agents = await make_agents(api, 1)
    before = await history(api)
    for bad in ("2\uff1024-01-02T03:04:05.123456Z", "2024-01-02T03:04:05.12345\u0666Z"):
        agent = {"agent_id": agents[0], "event_category": "hook", "event_type": "x", "timestamp": bad}
        system = {"message": "m", "timestamp": bad}
        posts = [
            ("/api/v1/agent-logs", json.dumps([agent]), "application/json"),
            ("/api/v1/system-logs", json.dumps(system), "application/json"),
            ("/api/v1/events", json.dumps([{"kind": "system_log", **system}]), "application/json"),
            ("/api/v1/events", json.dumps({"kind": "agent_log", **agent}) + "\n", "application/x-ndjson"),
            (
                "/api/v1/prompts",
                json.dumps({"author": "engineer", "prompt_text": "p", "timestamp": bad}),
                "application/json",
            ),
        ]
        hook = {"hook_event_name": "PreToolUse", "session_id": "s", "orchlog": {"agent": "h", "timestamp": bad}}
        posts.append(("/api/v1/hooks/claude-code", json.dumps(hook), "application/json"))  # the hook's envelope
        for path, body, ctype in posts:
            r = await api.post(path, content=body, headers={"content-type": ctype})
            assert r.status_code == 422, (path, bad, r.status_code, r.text)
            assert [d["field"] for d in r.json()["error"]["details"]] == ["timestamp"], (path, r.text)
    assert await history(api) == before, "nothing was stored"


async def test_bad_request_fails_alone_among_concurrent_good_ones(api: httpx.AsyncClient) -> None:
    _orch, agents = await make_agents(api, 1)
    bad = [{"kind": "agent_log", "agent_id": str(uuid.uuid4()), "event_category": "hook", "event_type": "x"}]
    goods = [[event(agents, i)] for i in range(10)]
    replies = await asyncio.gather(
        api.post("/api/v1/events", json=bad), *(api.post("/api/v1/events", json=g) for g in goods)
    )
    assert replies[0].status_code == 422 and replies[0].json()["error"]["details"][0]["field"] == "agent_id"
    assert all(r.status_code == 201 for r in replies[1:])
    seqs = [r["seq"] for r in await history(api)]
    assert seqs == list(range(1, 11))


async def test_concurrent_posters_get_gapless_unique_seqs(api: httpx.AsyncClient) -> None:
    _orch, agents = await make_agents(api, 3)
    acks: list[int] = []

    async def poster(p: int) -> None:
        for i in range(10):
            r = await api.post(
                "/api/v1/events", json=[event(agents, p * 100 + i * 10 + j) for j in range(random.randint(1, 5))]
            )
            assert r.status_code == 201, r.text
            acks.extend(a["seq"] for a in r.json()["items"])

    await asyncio.gather(*(poster(p) for p in range(10)))
    assert sorted(acks) == list(range(1, len(acks) + 1))
    assert [r["seq"] for r in await history(api)] == sorted(acks)


async def test_filters_and_paging_agree(api: httpx.AsyncClient) -> None:
    _orch, agents = await make_agents(api, 2)
    r = await api.post("/api/v1/events", json=[event(agents, i) for i in range(150)])
    assert r.status_code == 201
    everything = await history(api)
    for params, keep in [
        ({"kind": "system_log"}, lambda e: e["kind"] == "system_log"),
        ({"agent_id": agents[0]}, lambda e: e["data"].get("agent_id") == agents[0]),
        ({"min_level": "WARNING"}, lambda e: e["data"]["level"] in ("WARNING", "ERROR", "CRITICAL")),
        ({"event_type": "text"}, lambda e: e["data"].get("event_type") == "text"),
        ({"contains": "EVENT 1"}, lambda e: "event 1" in (e["data"].get("content") or e["data"].get("message"))),
    ]:
        got = [e["seq"] for e in await history(api, params)]
        assert got == [e["seq"] for e in everything if keep(e)], params
    page = (await api.get("/api/v1/events", params={"before": everything[-1]["seq"], "limit": 10})).json()
    assert [i["seq"] for i in page["items"]] == [e["seq"] for e in everything[-11:-1]]


async def test_stream_replay_then_live_exactly_once(store_server: Server, api: httpx.AsyncClient) -> None:
    _orch, agents = await make_agents(api, 2)
    await api.post("/api/v1/events", json=[event(agents, i) for i in range(30)])
    got: list[int] = []
    async with connect(f"{store_server.ws}/api/v1/stream?after=0&batch=1", ping_interval=None) as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        live = False
        posted = False
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame["type"] == "events":
                got += [i["seq"] for i in frame["items"]]
            elif frame["type"] in ("agent_log", "system_log"):
                got.append(frame["seq"])
            elif frame["type"] == "live":
                live = True
            if live and not posted:
                await api.post("/api/v1/events", json=[event(agents, 100 + i) for i in range(20)])
                posted = True
            if len(got) >= 50:
                break
    assert got == list(range(1, 51))


# ---------------------------------------------------------------- PostgreSQL only: replicas


async def _follow(port: int, out: list[int], stop: asyncio.Event, ports: list[int] | None = None) -> None:
    """Follow with after=<last>; on failure, resume on the next port (another replica)."""
    candidates = ports or [port]
    turn = 0
    while not stop.is_set():
        target = candidates[turn % len(candidates)]
        try:
            after = out[-1] if out else 0
            async with connect(
                f"ws://127.0.0.1:{target}/api/v1/stream?after={after}&batch=1", ping_interval=None, open_timeout=3
            ) as ws:
                while not stop.is_set():
                    try:
                        frame = json.loads(await asyncio.wait_for(ws.recv(), 0.3))
                    except TimeoutError:
                        continue
                    if frame["type"] == "events":
                        out.extend(i["seq"] for i in frame["items"])
                    elif frame["type"] in ("agent_log", "system_log"):
                        out.append(frame["seq"])
        except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
            turn += 1
            await asyncio.sleep(0.05)  # pace reconnects to the other replica


@needs_pg
async def test_two_replicas_one_global_gapless_order(pg_db: str, tmp_path: Path) -> None:
    """Posts to replicas A and B at once; subscribers on both get every event exactly once in one
    global order (= history); killing A mid-stream, its subscriber resumes on B without a gap."""
    a = Server(tmp_path / "a.db", port=free_port())
    b = Server(tmp_path / "b.db", port=free_port())
    a.db = b.db = pg_db  # type: ignore[assignment]
    a.start()
    b.start()
    try:
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=30) as ca,
            httpx.AsyncClient(base_url=b.url, timeout=30) as cb,
        ):
            _orch, agents = await make_agents(ca, 2)
            stop = asyncio.Event()
            on_a: list[int] = []
            on_b: list[int] = []
            roaming: list[int] = []
            tasks = [
                asyncio.create_task(_follow(a.port, on_a, stop)),
                asyncio.create_task(_follow(b.port, on_b, stop)),
                asyncio.create_task(_follow(a.port, roaming, stop, ports=[a.port, b.port])),
            ]
            acks: list[int] = []

            async def poster(c: httpx.AsyncClient, p: int, rounds: int) -> None:
                for i in range(rounds):
                    r = await c.post("/api/v1/events", json=[event(agents, p * 1000 + i * 10 + j) for j in range(5)])
                    assert r.status_code == 201, r.text
                    acks.extend(x["seq"] for x in r.json()["items"])

            await asyncio.gather(*(poster(c, p, 20) for p, c in enumerate([ca, ca, cb, cb])))
            assert sorted(acks) == list(range(1, len(acks) + 1)), "seqs across replicas are not gapless and unique"
            final_a = [e["seq"] for e in await history(ca)]
            await wait_until(lambda: on_a[-1:] == final_a[-1:] and on_b[-1:] == final_a[-1:], 30, "both subscribers")
            assert on_a == final_a and on_b == final_a
            a.kill9()
            await asyncio.gather(*(poster(cb, 9 + p, 10) for p in range(2)))
            final = [e["seq"] for e in await history(cb)]
            await wait_until(lambda: roaming[-1:] == final[-1:], 30, "the roaming subscriber to resume on B")
            assert roaming == final, "resuming on the other replica lost or repeated events"
            stop.set()
            await asyncio.gather(*tasks)
    finally:
        a.stop()
        b.stop()


@needs_pg
async def test_lost_notify_connection_recovers_without_loss(pg_db: str, tmp_path: Path) -> None:
    """Kill every LISTEN connection with pg_terminate_backend while replica B has a subscriber:
    events posted to A still reach B's subscriber (fallback poll, then re-LISTEN), none lost."""
    import asyncpg

    a = Server(tmp_path / "a.db", port=free_port())
    b = Server(tmp_path / "b.db", port=free_port())
    a.db = b.db = pg_db  # type: ignore[assignment]
    a.start()
    b.start()
    try:
        async with httpx.AsyncClient(base_url=a.url, timeout=30) as ca:
            _orch, agents = await make_agents(ca, 1)
            stop = asyncio.Event()
            seen: list[int] = []
            task = asyncio.create_task(_follow(b.port, seen, stop))
            await ca.post("/api/v1/events", json=[event(agents, i) for i in range(5)])
            await wait_until(lambda: len(seen) >= 5, 20, "first events on B")
            conn = await asyncpg.connect(pg_db)
            try:
                killed = await conn.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()"
                )
            finally:
                await conn.close()
            assert killed >= 1, "no LISTEN connection was found to kill"
            for i in range(5):
                await ca.post("/api/v1/events", json=[event(agents, 100 + i)])
            final = [e["seq"] for e in await history(ca)]
            await wait_until(lambda: seen[-1:] == final[-1:], 20, "events after the lost NOTIFY connection")
            assert seen == final
            stop.set()
            await task
    finally:
        a.stop()
        b.stop()


@needs_pg
def test_schemas_expose_the_same_tables_and_columns(pg_db: str, tmp_path: Path) -> None:
    """SQLite and PostgreSQL migrations define the same tables with the same columns (the
    PostgreSQL full-text column `fts` aside)."""
    import subprocess
    import sys

    sqlite_db = tmp_path / "parity.db"
    for target in (str(sqlite_db), pg_db):
        r = subprocess.run([sys.executable, "-m", "orchlog", "migrate", "--db", target], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    conn = sqlite3.connect(sqlite_db)
    tables = ["orchestrator_agents", "agents", "prompts", "agent_logs", "system_logs", "stream_meta", "api_tokens"]
    lite = {t: [row[1] for row in conn.execute(f"PRAGMA table_info({t})")] for t in tables}
    conn.close()

    import asyncpg

    async def pg_columns() -> dict[str, list[str]]:
        c = await asyncpg.connect(pg_db)
        try:
            out = {}
            for t in tables:
                rows = await c.fetch(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = $1 "
                    "ORDER BY ordinal_position",
                    t,
                )
                out[t] = [r[0] for r in rows if r[0] != "fts"]
            return out
        finally:
            await c.close()

    pg = asyncio.run(pg_columns())
    for t in tables:
        assert sorted(lite[t]) == sorted(pg[t]), f"{t}: sqlite {sorted(lite[t])} vs postgres {sorted(pg[t])}"
