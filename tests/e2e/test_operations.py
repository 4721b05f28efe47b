"""Operations: retention and the floor, /metrics, backup, graceful shutdown, config sources."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from helpers import REPO, Server, history, make_agents, wait_until


def orchlog(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHLOG_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "orchlog", *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=full_env
    )


async def post_system(client: httpx.AsyncClient, n: int, text: str = "ops") -> list[int]:
    r = await client.post("/api/v1/system-logs", json=[{"message": f"{text} {i}"} for i in range(n)])
    assert r.status_code == 201, r.text
    return [item["seq"] for item in r.json()["items"]]


async def test_retention_by_rows_deletes_oldest_raises_floor_and_resets_old_cursors(tmp_path: Path) -> None:
    """With retention_rows=50, a maintenance round keeps the newest 50 per table, floor_seq rises
    to the last deleted seq, history shows only kept rows, and a stream resuming below the floor
    gets `reset` and then exactly the kept events."""
    srv = Server(tmp_path / "r.db", env={"ORCHLOG_RETENTION_ROWS": "50", "ORCHLOG_MAINTENANCE_INTERVAL_S": "0.2"})
    srv.start()
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=30) as c:
            seqs: list[int] = []
            for _ in range(6):
                seqs += await post_system(c, 50)

            async def floor() -> int:
                return int((await c.get("/api/v1/events", params={"limit": 1})).json()["floor_seq"])

            await wait_until(lambda: floor(), 20, "retention to raise the floor")
            await wait_until(lambda: _floor_is(c, seqs[-51]), 20, "retention to delete all but the newest 50")
            kept = [it["seq"] for it in await history(c)]
            assert kept == seqs[-50:]
            async with connect(f"{srv.ws}/api/v1/stream?after=1", ping_interval=None) as ws:
                hello = json.loads(await ws.recv())
                assert hello["floor_seq"] == seqs[-51]
                reset = json.loads(await ws.recv())
                assert reset["type"] == "reset" and reset["reason"] == "below_floor", reset
                got = []
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if frame["type"] == "live":
                        break
                    got.append(frame["seq"])
                assert got == seqs[-50:]
            metrics = (await c.get("/metrics")).text
            deleted = _sample(metrics, "orchlog_retention_deleted_total", {"table": "system_logs"})
            assert deleted == 250
    finally:
        srv.stop()


async def _floor_is(c: httpx.AsyncClient, value: int) -> bool:
    return int((await c.get("/api/v1/events", params={"limit": 1})).json()["floor_seq"]) == value


def _sample(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                return float(sample.value)
    raise AssertionError(f"no sample {name} {labels} in /metrics")


async def test_retention_cli_runs_while_server_serves(server: Server, client: httpx.AsyncClient) -> None:
    """`orchlog retention --rows N` against the live database deletes in place and the server keeps
    serving: history afterwards holds only the newest N."""
    seqs = await post_system(client, 120)
    result = orchlog("retention", "--db", str(server.db), "--rows", "20")
    assert result.returncode == 0, result.stderr
    assert "system_logs: deleted 100 rows" in result.stdout
    assert [it["seq"] for it in await history(client)] == seqs[-20:]
    assert (await client.get("/healthz")).status_code == 200


async def test_metrics_parse_and_move_with_traffic(client: httpx.AsyncClient) -> None:
    """/metrics is valid Prometheus text (prometheus_client's parser) and the ingest counter,
    request counter and batch histogram move as events flow."""
    before = (await client.get("/metrics")).text
    stored0 = _maybe(before, "orchlog_ingest_events_total", {"kind": "system_log", "result": "stored"})
    await post_system(client, 7)
    r = await client.post("/api/v1/system-logs", json={"message": "dup", "id": "6f1c2a52-9a4e-4a4b-8a43-5b1f0d1e2a3b"})
    assert r.status_code == 201
    r = await client.post("/api/v1/system-logs", json={"message": "dup", "id": "6f1c2a52-9a4e-4a4b-8a43-5b1f0d1e2a3b"})
    assert r.json()["items"][0]["duplicate"] is True
    after = (await client.get("/metrics")).text
    assert _sample(after, "orchlog_ingest_events_total", {"kind": "system_log", "result": "stored"}) == stored0 + 8
    assert _sample(after, "orchlog_ingest_events_total", {"kind": "system_log", "result": "duplicate"}) == 1
    assert _sample(after, "orchlog_writer_batch_events_count") >= 3
    assert _sample(after, "orchlog_http_requests_total", {"route": "/api/v1/system-logs", "status": "201"}) >= 3
    assert _sample(after, "orchlog_db_bytes") > 0
    assert _sample(after, "orchlog_head_seq") >= 8


def _maybe(text: str, name: str, labels: dict[str, str]) -> float:
    try:
        return _sample(text, name, labels)
    except AssertionError:
        return 0.0


async def test_backup_during_ingest_opens_and_passes_integrity_check(
    server: Server, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """`orchlog backup` while posters write: exit 0, the copy passes integrity_check and holds a
    consistent prefix of the log (seqs 1..k without holes)."""
    stop = asyncio.Event()

    async def poster() -> None:
        while not stop.is_set():
            await post_system(client, 20, "backup")

    task = asyncio.create_task(poster())
    try:
        await wait_until(lambda: _head(client, 200), 20, "some events before the backup")
        dest = tmp_path / "copy.db"
        result = await asyncio.to_thread(orchlog, "backup", str(dest), "--db", str(server.db))
        assert result.returncode == 0, result.stderr
    finally:
        stop.set()
        await task
    conn = sqlite3.connect(dest)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        seqs = [row[0] for row in conn.execute("SELECT seq FROM system_logs ORDER BY seq")]
        assert seqs and seqs == list(range(1, len(seqs) + 1))
        last = conn.execute("SELECT last_seq FROM stream_meta").fetchone()[0]
        assert last == seqs[-1]
    finally:
        conn.close()


async def _head(client: httpx.AsyncClient, at_least: int) -> bool:
    return int((await client.get("/api/v1/events", params={"limit": 1})).json()["head_seq"]) >= at_least


async def test_sigterm_during_concurrent_ingest_keeps_every_ack(tmp_path: Path) -> None:
    """SIGTERM while 8 posters write: the server exits 0, and every event acknowledged before it
    went away is in the database afterwards (no ack is lost in the drain)."""
    srv = Server(tmp_path / "t.db").start()
    acked: list[str] = []
    stop = asyncio.Event()

    async def poster(n: int) -> None:
        async with httpx.AsyncClient(base_url=srv.url, timeout=10) as c:
            i = 0
            while not stop.is_set():
                try:
                    r = await c.post("/api/v1/system-logs", json=[{"message": f"p{n} {i} {j}"} for j in range(5)])
                except httpx.HTTPError:
                    return
                if r.status_code != 201:
                    return
                acked.extend(item["id"] for item in r.json()["items"])
                i += 1

    tasks = [asyncio.create_task(poster(n)) for n in range(8)]
    await wait_until(lambda: len(acked) >= 500, 30, "500 acked events")
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(srv.proc.wait, 20)
    stop.set()
    await asyncio.gather(*tasks)
    assert code == 0, srv.log_text()[-2000:]
    conn = sqlite3.connect(srv.db)
    try:
        stored = {row[0] for row in conn.execute("SELECT id FROM system_logs")}
    finally:
        conn.close()
    missing = [i for i in acked if i not in stored]
    assert not missing, f"{len(missing)} acknowledged events are missing after SIGTERM"


def test_config_file_env_and_flags_in_order(tmp_path: Path) -> None:
    """Settings come from flags > ORCHLOG_* env > TOML file > defaults; `orchlog config` shows
    the effective values with secrets hidden; an unknown key in the file is a clear error."""
    cfg = tmp_path / "orchlog.toml"
    cfg.write_text('port = 9100\nhost = "127.0.0.1"\nretention_age = "7d"\ntokens = "a:read:olg_secret"\n')
    result = orchlog("config", "--config", str(cfg), env={"ORCHLOG_PORT": "9200"})
    assert result.returncode == 0, result.stderr
    shown = tomllib.loads(result.stdout)["orchlog"]
    assert shown["port"] == 9200  # env beats file
    assert shown["retention_age"] == "7d"  # file beats default
    assert "tokens" not in shown and "# tokens = ...  (set, hidden" in result.stdout
    assert "olg_secret" not in result.stdout
    cfg.write_text("bogus_setting = 1\n")
    bad = orchlog("config", "--config", str(cfg))
    assert bad.returncode != 0 and "bogus_setting" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("kind", ["docker-compose.yml"])
def test_compose_file_is_valid_and_needs_a_token(kind: str) -> None:
    """docker-compose.yml parses, runs orchlog with a named volume and a health check, and
    requires ORCHLOG_ADMIN_TOKEN (a container binds 0.0.0.0, which needs a token)."""
    import yaml

    data = yaml.safe_load((REPO / kind).read_text())
    service = data["services"]["orchlog"]
    assert "orchlog-data" in data["volumes"]
    assert any(v.startswith("orchlog-data:") for v in service["volumes"])
    assert "healthcheck" in service
    assert "ORCHLOG_ADMIN_TOKEN" in service["environment"]["ORCHLOG_TOKENS"]


async def test_agents_survive_in_compat_after_retention(server: Server, client: httpx.AsyncClient) -> None:
    """Retention deletes events, never agents: /list_agents still lists the agent with the
    remaining log count."""
    _orch, agents = await make_agents(client, 1)
    r = await client.post(
        "/api/v1/agent-logs",
        json=[
            {"agent_id": agents[0], "event_category": "hook", "event_type": "x", "content": str(i)} for i in range(30)
        ],
    )
    assert r.status_code == 201
    result = orchlog("retention", "--db", str(server.db), "--rows", "10")
    assert result.returncode == 0, result.stderr
    body = (await client.get("/list_agents")).json()
    mine = [a for a in body["agents"] if a["id"] == agents[0]]
    assert mine and mine[0]["log_count"] == 10


async def test_json_logs_one_line_per_request_with_request_id(tmp_path: Path) -> None:
    """With ORCHLOG_LOG_FORMAT=json (and ORCHLOG_ACCESS_LOG on: by default only errors and slow
    requests are logged) every request writes one JSON access line carrying the request id (the
    client's X-Request-ID, echoed in the response) and stream tickets are redacted."""
    srv = Server(tmp_path / "logs.db", env={"ORCHLOG_LOG_FORMAT": "json", "ORCHLOG_ACCESS_LOG": "true"}).start()
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=10) as c:
            r = await c.get("/api/v1/events", headers={"X-Request-ID": "req-42"})
            assert r.headers["x-request-id"] == "req-42"
            generated = (await c.get("/healthz")).headers["x-request-id"]
            assert generated and generated != "req-42"
            await c.get("/api/v1/stream/sse", params={"ticket": "secret-ticket-value", "kind": "nope"})

        def lines() -> list[dict]:
            out = []
            for line in srv.log_text().splitlines():
                if line.startswith("{"):
                    out.append(json.loads(line))
            return out

        await wait_until(lambda: any(e.get("request_id") == "req-42" for e in lines()), 10, "the access line")
        access = [e for e in lines() if e.get("logger") == "orchlog.access"]
        mine = next(e for e in access if e["request_id"] == "req-42")
        assert mine["path"].startswith("/api/v1/events") and mine["status"] == 200 and mine["duration_ms"] >= 0
        assert "secret-ticket-value" not in srv.log_text()
    finally:
        srv.stop()


async def test_file_stops_growing_under_steady_ingest_with_retention(tmp_path: Path) -> None:
    """Steady ingest with retention keeping 300 rows: after a warm-up, the database file plus its
    WAL stop growing (freed pages are reused, the WAL is checkpointed)."""
    srv = Server(
        tmp_path / "steady.db", env={"ORCHLOG_RETENTION_ROWS": "300", "ORCHLOG_MAINTENANCE_INTERVAL_S": "0.1"}
    ).start()

    def size() -> int:
        return sum(p.stat().st_size for p in tmp_path.glob("steady.db*") if p.is_file())

    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=30) as c:

            async def rounds(n: int) -> None:
                for i in range(n):
                    await post_system(c, 100, "steady " + "x" * 500)
                    floor = int((await c.get("/api/v1/events", params={"limit": 1})).json()["floor_seq"])
                    head = int((await c.get("/api/v1/events", params={"limit": 1})).json()["head_seq"])
                    await wait_until(lambda h=head: _floor_at_least(c, h - 400), 20, f"retention round {i} ({floor})")

            await rounds(15)
            warm = size()
            await rounds(30)
            after = size()
        assert after <= warm * 1.5 + 512 * 1024, f"the file kept growing: {warm} → {after} bytes"
    finally:
        srv.stop()


async def _floor_at_least(c: httpx.AsyncClient, value: int) -> bool:
    return int((await c.get("/api/v1/events", params={"limit": 1})).json()["floor_seq"]) >= value
