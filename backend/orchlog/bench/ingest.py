"""Ingest: events/s committed by a real server, next to two baselines run in the same session.

- raw: stdlib sqlite3 ``executemany`` of the same rows into the same schema, 1,000 per
  transaction — the storage ceiling;
- naive: one INSERT + COMMIT per event through aiosqlite — what the original app does.

The load generator runs in another process (``python -m orchlog.bench.load``), pinned to the
other core where the machine allows, and the server's row count is checked afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiosqlite
import httpx

from ..config import Settings
from ..models import AgentLogIn
from ..store.rules import AGENT_COLS, agent_row
from ..store.sqlite import connect, insert_sql, migrate
from .common import ServerProcess, record, tmpdir


def _seed(db: Path) -> tuple[sqlite3.Connection, str]:
    conn = connect(str(db), Settings())
    migrate(conn)
    orch, agent = str(uuid.uuid4()), str(uuid.uuid4())
    conn.execute("INSERT INTO orchestrator_agents (id) VALUES (?)", (orch,))
    conn.execute(
        "INSERT INTO agents (id, orchestrator_agent_id, name, model) VALUES (?, ?, 'bench', 'm')",
        (agent, orch),
    )
    return conn, agent


def _rows(agent: str, n: int, start: int = 0) -> list[tuple[Any, ...]]:
    item = AgentLogIn(
        agent_id=agent,
        event_category="hook",
        event_type="PreToolUse",
        content="x" * 120,
        payload={"tool": "Bash", "args": ["ls", "-la"], "n": 1},
    )
    rows = []
    for i in range(n):
        item.id = str(uuid.uuid4())
        rows.append(agent_row(item, start + i + 1))
    return rows


def raw_baseline(n: int = 100_000, batch: int = 1000) -> float:
    conn, agent = _seed(tmpdir() / "raw.db")
    rows = _rows(agent, n)
    sql = insert_sql("agent_logs", AGENT_COLS)
    started = time.perf_counter()
    for i in range(0, n, batch):
        conn.execute("BEGIN")
        conn.executemany(sql, rows[i : i + batch])
        conn.execute("COMMIT")
    took = time.perf_counter() - started
    conn.close()
    return n / took


async def _naive(db: Path, agent: str, rows: list[tuple[Any, ...]]) -> float:
    sql = insert_sql("agent_logs", AGENT_COLS)
    async with aiosqlite.connect(db) as conn:
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        started = time.perf_counter()
        for row in rows:
            await conn.execute(sql, row)
            await conn.commit()
        return len(rows) / (time.perf_counter() - started)


def naive_baseline(n: int = 5000) -> float:
    db = tmpdir() / "naive.db"
    conn, agent = _seed(db)
    conn.close()
    return asyncio.run(_naive(db, agent, _rows(agent, n)))


def _pin(pid: int, cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {cpu})


def server_ingest(clients: int, batch: int, total: int, db: Path | str | None = None) -> dict[str, Any]:
    with ServerProcess(db or tmpdir() / "ingest.db") as srv:
        assert srv.proc is not None
        _pin(srv.proc.pid, 0)
        with httpx.Client(base_url=srv.url) as c:
            orch = c.post("/api/v1/orchestrator-agents", json={}).json()["id"]
            agent = c.post("/api/v1/agents", json={"orchestrator_agent_id": orch, "name": "b", "model": "m"}).json()[
                "id"
            ]
            head0 = c.get("/api/v1/events", params={"limit": 1}).json()["head_seq"]
        cmd = [
            sys.executable,
            "-m",
            "orchlog.bench.load",
            srv.url,
            agent,
            str(clients),
            str(batch),
            str(total),
        ]
        load = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        _pin(load.pid, 1)
        out, _ = load.communicate(timeout=600)
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        with httpx.Client(base_url=srv.url) as c:
            head = c.get("/api/v1/events", params={"limit": 1}).json()["head_seq"]
        result["committed"] = head - head0
        return result


def main(quick: bool = False) -> list[dict[str, Any]]:
    scale = 0.25 if quick else 1.0
    raw = raw_baseline(int(100_000 * scale))
    naive = naive_baseline(int(4000 * scale))
    out = [
        record("ingest_baseline_raw", events_per_s=round(raw)),
        record("ingest_baseline_naive", events_per_s=round(naive)),
    ]
    for clients, batch, total in ((32, 1, 20_000), (8, 10, 50_000), (8, 100, 200_000), (4, 1000, 400_000)):
        total = int(total * scale)
        r = server_ingest(clients, batch, total)
        eps = r["events_per_s"]
        out.append(
            record(
                "ingest_server",
                clients=clients,
                batch=batch,
                events=total,
                committed=r["committed"],
                events_per_s=round(eps),
                x_raw=round(eps / raw, 3),
                x_naive=round(eps / naive, 2),
                rejected_503=r["retries"],
            )
        )
    pg_admin = os.environ.get("ORCHLOG_BENCH_PG_URL")
    if pg_admin:
        out.extend(postgres_vs_sqlite(pg_admin, scale))
    return out


def postgres_vs_sqlite(admin_url: str, scale: float) -> list[dict[str, Any]]:
    """The same server and load on PostgreSQL (a throwaway database) next to SQLite."""
    import asyncpg

    name = f"orchlog_bench_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f"CREATE DATABASE {name}"))
    try:
        total = int(100_000 * scale)
        lite = server_ingest(8, 100, total)["events_per_s"]
        pg = server_ingest(8, 100, total, db=admin_url.rsplit("/", 1)[0] + "/" + name)["events_per_s"]
    finally:
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    return [
        record(
            "ingest_postgres",
            clients=8,
            batch=100,
            events=total,
            events_per_s=round(pg),
            sqlite_events_per_s=round(lite),
            x_sqlite=round(pg / lite, 3),
        )
    ]


if __name__ == "__main__":
    for row in main(quick="--quick" in sys.argv):
        print(json.dumps(row))
