"""Fault injection: kill -9 mid-ingest, a foreign write lock, a full disk, fuzzed bodies.

Every test drives real `orchlog serve` processes and then checks the invariants against the
database itself: acknowledged = present exactly once; seqs unique; integrity and foreign keys
intact; followers hold exactly the committed sequence. The long variants run with
`make test-long` (pytest -m long).
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import string
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from helpers import Server, free_port, history, make_agents, wait_until


class Poster:
    """Posts batches with client ids and records exactly what was acknowledged (201)."""

    def __init__(self, url: str, agents: list[str], name: str) -> None:
        self.url = url
        self.agents = agents
        self.name = name
        self.acked: dict[str, int] = {}
        self.stop = asyncio.Event()

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as c:
            n = 0
            while not self.stop.is_set():
                items = []
                for _ in range(random.randint(1, 20)):
                    n += 1
                    if random.random() < 0.7:
                        items.append(
                            {
                                "kind": "agent_log",
                                "id": str(uuid.uuid4()),
                                "agent_id": random.choice(self.agents),
                                "event_category": "hook",
                                "event_type": "PreToolUse",
                                "content": f"{self.name} {n}",
                            }
                        )
                    else:
                        items.append({"kind": "system_log", "id": str(uuid.uuid4()), "message": f"{self.name} {n}"})
                try:
                    r = await c.post("/api/v1/events", json=items)
                except httpx.HTTPError:
                    await asyncio.sleep(0.05)  # server down: pace the retry loop
                    continue
                if r.status_code == 201:
                    for ack in r.json()["items"]:
                        self.acked[ack["id"]] = ack["seq"]


class Tail:
    """A WebSocket follower that survives server restarts by resuming after its last seq."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seqs: list[int] = []
        self.stop = asyncio.Event()

    async def run(self) -> None:
        while not self.stop.is_set():
            after = self.seqs[-1] if self.seqs else 0
            try:
                async with connect(
                    f"ws://127.0.0.1:{self.port}/api/v1/stream?after={after}&batch=1",
                    ping_interval=None,
                    open_timeout=2,
                ) as ws:
                    while not self.stop.is_set():
                        try:
                            raw = await asyncio.wait_for(ws.recv(), 0.5)
                        except TimeoutError:
                            continue
                        frame = json.loads(raw)
                        if frame["type"] == "events":
                            self.seqs.extend(item["seq"] for item in frame["items"])
                        elif frame["type"] in ("agent_log", "system_log"):
                            self.seqs.append(frame["seq"])
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
                await asyncio.sleep(0.05)  # server down: pace reconnects


def check_database(db: Path, acked: dict[str, int]) -> list[int]:
    """Every ack present exactly once at its seq; integrity and FKs hold. Returns all seqs."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        rows = conn.execute("SELECT id, seq FROM agent_logs UNION ALL SELECT id, seq FROM system_logs").fetchall()
    finally:
        conn.close()
    stored = dict(rows)
    assert len(stored) == len(rows), "an id is stored twice"
    seqs = sorted(seq for _, seq in rows)
    assert len(set(seqs)) == len(seqs), "a seq is used twice"
    missing = [i for i in acked if i not in stored]
    assert not missing, f"{len(missing)} acknowledged events are missing after the crashes"
    wrong = [i for i, s in acked.items() if stored[i] != s]
    assert not wrong, f"{len(wrong)} events are stored at another seq than acknowledged"
    return seqs


async def crash_rounds(tmp_path: Path, rounds: int) -> None:
    db = tmp_path / "crash.db"
    port = free_port()
    srv = Server(db, port=port).start()
    async with httpx.AsyncClient(base_url=srv.url, timeout=10) as c:
        _orch, agents = await make_agents(c, 3)
    posters = [Poster(srv.url, agents, f"p{i}") for i in range(4)]
    tail = Tail(port)
    tasks = [asyncio.create_task(p.run()) for p in posters] + [asyncio.create_task(tail.run())]
    try:
        for n in range(rounds):
            before = sum(len(p.acked) for p in posters)
            await wait_until(
                lambda b=before: sum(len(p.acked) for p in posters) > b + random.randint(20, 300),
                30,
                f"acks before crash {n}",
            )
            srv.kill9()
            srv = Server(db, port=port).start()
    finally:
        for p in posters:
            p.stop.set()
        await asyncio.gather(*tasks[:-1])
    acked = {k: v for p in posters for k, v in p.acked.items()}
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=10) as c:
            final = [it["seq"] for it in await history(c)]
        await wait_until(lambda: tail.seqs[-1:] == final[-1:], 30, "the follower to reach the head")
        assert tail.seqs == final, "the follower across restarts does not hold exactly the committed sequence"
    finally:
        tail.stop.set()
        await tasks[-1]
        srv.stop()
    seqs = check_database(db, acked)
    assert seqs == final


async def test_kill9_mid_ingest_loses_no_acknowledged_event(tmp_path: Path) -> None:
    """5 rounds of kill -9 under concurrent ingest: acks durable, seqs unique, follower exact."""
    await crash_rounds(tmp_path, 5)


@pytest.mark.long
async def test_kill9_mid_ingest_25_rounds(tmp_path: Path) -> None:
    """The long version: 25 crash rounds at random moments."""
    await crash_rounds(tmp_path, 25)


async def test_foreign_write_lock_gives_503_then_recovers(tmp_path: Path) -> None:
    """Another process holds the write lock: requests wait up to busy_timeout, then 503 with
    Retry-After; once the lock is released, ingest works and nothing was half-written."""
    srv = Server(tmp_path / "lock.db", env={"ORCHLOG_BUSY_TIMEOUT_MS": "300"}).start()
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=20) as c:
            ok = await c.post("/api/v1/system-logs", json={"message": "before"})
            assert ok.status_code == 201
            locker = sqlite3.connect(srv.db, isolation_level=None)
            locker.execute("BEGIN IMMEDIATE")
            try:
                r = await c.post("/api/v1/system-logs", json={"message": "while locked"})
                assert r.status_code == 503, r.text
                assert int(r.headers["Retry-After"]) >= 1
                assert "locked" in r.json()["error"]["message"]
            finally:
                locker.execute("ROLLBACK")
                locker.close()
            r = await c.post("/api/v1/system-logs", json={"message": "after"})
            assert r.status_code == 201
            messages = [it["data"]["message"] for it in await history(c)]
            assert messages == ["before", "after"]
            seqs = [it["seq"] for it in await history(c)]
            assert len(set(seqs)) == len(seqs)
    finally:
        srv.stop()


async def test_disk_full_answers_503_keeps_readers_and_recovers(tmp_path: Path) -> None:
    """With a small max_page_count (a disk quota), ingest eventually answers 503 with a message
    about space; nothing is half-written (each request all or nothing), history still reads, and
    once retention frees pages ingest succeeds again without a restart."""
    srv = Server(tmp_path / "full.db", env={"ORCHLOG_MAX_DB_PAGES": "60"}).start()
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=20) as c:
            stored: list[str] = []
            full = None
            for i in range(400):
                batch = [{"message": f"fill {i}.{j} " + "x" * 2000} for j in range(5)]
                r = await c.post("/api/v1/system-logs", json=batch)
                if r.status_code == 503:
                    full = r
                    break
                assert r.status_code == 201, r.text
                stored.extend(item["id"] for item in r.json()["items"])
            assert full is not None, "the database never filled up"
            assert "full" in full.json()["error"]["message"] and "Retry-After" in full.headers
            ids = [it["data"]["id"] for it in await history(c)]
            assert ids == stored, "a rejected request left rows behind, or an acked one is missing"
            conn = sqlite3.connect(srv.db, isolation_level=None)
            try:
                conn.execute(
                    "DELETE FROM system_logs WHERE seq IN (SELECT seq FROM system_logs ORDER BY seq LIMIT 100)"
                )
            finally:
                conn.close()
            r = await c.post("/api/v1/system-logs", json={"message": "after space was freed"})
            assert r.status_code == 201, r.text
    finally:
        srv.stop()


def _fuzz_value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(9 if depth < 3 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.randint(-(2**63), 2**63)
    if choice == 3:
        return rng.random() * rng.choice([1, 1e308, -1e-308])
    if choice in (4, 5):
        return "".join(rng.choice(string.printable + "é✓\u0000\ud7ff") for _ in range(rng.randint(0, 40)))
    if choice == 6:
        return [_fuzz_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = [
        "agent_id",
        "event_category",
        "event_type",
        "level",
        "content",
        "payload",
        "message",
        "kind",
        "id",
        "timestamp",
        "metadata",
        "summary",
        "seq",
        "bogus",
    ]
    return {rng.choice(keys): _fuzz_value(rng, depth + 1) for _ in range(rng.randint(0, 6))}


async def test_fuzzed_bodies_never_give_500_and_the_server_stays_healthy(server: Server) -> None:
    """600 random bodies (JSON values of every shape, broken bytes, NDJSON) on the ingest
    endpoints: every answer is 201 or a 4xx with the JSON error shape; never a 500, never a
    traceback; the server answers /readyz afterwards."""
    rng = random.Random(1234)
    paths = [
        "/api/v1/agent-logs",
        "/api/v1/system-logs",
        "/api/v1/events",
        "/api/v1/agents",
        "/v1/logs",
        "/api/v1/hooks/claude-code",
    ]
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as c:
        for i in range(600):
            path = rng.choice(paths)
            kind = rng.randrange(4)
            if kind == 0:
                body = json.dumps(_fuzz_value(rng)).encode()
                ctype = "application/json"
            elif kind == 1:
                body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
                ctype = rng.choice(["application/json", "application/x-ndjson", "application/x-protobuf"])
            elif kind == 2:
                body = "\n".join(json.dumps(_fuzz_value(rng)) for _ in range(rng.randint(1, 5))).encode()
                ctype = "application/x-ndjson"
            else:
                body = json.dumps([_fuzz_value(rng) for _ in range(rng.randint(0, 5))]).encode()
                ctype = "application/json"
            r = await c.post(path, content=body, headers={"content-type": ctype})
            assert r.status_code in (200, 201) or 400 <= r.status_code < 500, (i, path, r.status_code, r.text[:300])
            assert "Traceback" not in r.text
            if r.status_code >= 400:
                assert "error" in r.json(), r.text[:200]
        assert (await c.get("/readyz")).status_code == 200
