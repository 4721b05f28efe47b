"""``orchlog bench ingest``: orchlog next to its baselines, all in one run, medians of 3.

For each load shape (clients x events per POST) the same load generator process
(``orchlog.bench.load``) drives:
- orchlog: ``orchlog serve`` on a fresh database, or one prefilled with ``--rows`` events;
- naive: the seed app's pattern over HTTP (``bench/naive.py``: Starlette + aiosqlite, one
  INSERT + COMMIT per request) on the same schema;
and, without HTTP, in this process:
- raw: stdlib sqlite3 ``executemany`` of the same rows into the same schema, one transaction
  per request-sized batch: the storage ceiling;
- redis: Redis Streams ``XADD`` through redis-py pipelines of the same size, AOF everysec, when
  a ``redis-server`` binary exists (skipped with a note otherwise).

The runs of a shape are taken in turn (raw, naive, redis, orchlog, then again: ``interleaved``)
with every server started once and idle between its runs, so the three runs behind each median
are spread over the same minutes for every subject.

Servers are pinned to core 0 and the load generator to core 1 where the machine allows. Server
CPU per event comes from /proc (user + system time of the whole process, every thread). The
prefill is raw inserts (``bench/prefill.py``), never the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from ..config import Settings
from ..ids import new_id
from ..models import AgentLogIn
from ..store.rules import AGENT_COLS, agent_row
from ..store.sqlite import connect, insert_sql
from .common import ServerProcess, free_port, record, remove_tmpdir, tmpdir
from .prefill import prefill

SHAPES = ((32, 1, 20_000), (8, 10, 50_000), (8, 100, 200_000), (4, 1000, 400_000))
REPEATS = 3
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU so far of a whole process (all its threads), or of one of its threads."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _pin(pid: int, cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {cpu})


def _load(url: str, agent: str, clients: int, batch: int, total: int, server_pid: int) -> dict[str, float]:
    """One run of the load generator against a server: ev/s acked, server CPU µs per event."""
    cmd = [sys.executable, "-m", "orchlog.bench.load", url, agent, str(clients), str(batch), str(total)]
    cpu0 = cpu_seconds(server_pid)
    load = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    _pin(load.pid, 1)
    try:
        out, _ = load.communicate(timeout=900)
    finally:
        if load.poll() is None:  # timed out or interrupted: the generator does not outlive its run
            load.kill()
            load.wait()
    cpu = cpu_seconds(server_pid) - cpu0
    result = json.loads(out.strip().splitlines()[-1])
    return {"events_per_s": result["events_per_s"], "cpu_us": cpu * 1e6 / total, "retries": result["retries"]}


def _median(runs: list[dict[str, float]]) -> dict[str, Any]:
    out = {
        "events_per_s": round(statistics.median(r["events_per_s"] for r in runs)),
        "cpu_us_per_event": round(statistics.median(r["cpu_us"] for r in runs), 1),
        "runs_events_per_s": [round(r["events_per_s"]) for r in runs],
    }
    for key, name in (("loop_cpu_us", "loop_cpu_us_per_event"), ("cores", "cores")):  # orchlog's runs only
        if key in runs[0]:
            out[name] = round(statistics.median(r[key] for r in runs), 2)
    return out


@contextlib.contextmanager
def _process(cmd: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{cmd[:4]} did not start")
            time.sleep(0.05)
        _pin(proc.pid, 0)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


Shape = tuple[int, int, int]  # clients, events per POST, events per run
Run = Callable[[Shape], dict[str, float]]


def _head(url: str) -> int:
    return int(httpx.get(url + "/api/v1/events", params={"limit": 1}).json()["head_seq"])


@contextlib.contextmanager
def orchlog_subject(rows: int) -> Iterator[Run]:
    """``orchlog serve`` on a database prefilled with ``rows`` events; one call = one run."""
    db = tmpdir() / "orchlog.db"
    agent = prefill(db, rows)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(remove_tmpdir, db.parent)  # after the server stopped (LIFO)
        srv = cleanup.enter_context(ServerProcess(db))
        assert srv.proc is not None
        pid = srv.proc.pid
        _pin(pid, 0)

        def run(shape: Shape) -> dict[str, float]:
            clients, batch, total = shape
            head0, cpu0, loop0, wall = _head(srv.url), cpu_seconds(pid), cpu_seconds(pid, pid), time.perf_counter()
            result = _load(srv.url, agent, clients, batch, total, pid)
            # The full-text index trails the head by up to a second; a search brings it up to date
            # so the CPU of indexing this run's events is counted in this run.
            httpx.get(srv.url + "/api/v1/events", params={"q": "x", "limit": 1}, timeout=60)
            cpu, loop = cpu_seconds(pid) - cpu0, cpu_seconds(pid, pid) - loop0
            return {
                **result,
                "cpu_us": cpu * 1e6 / total,
                # the event loop's thread (the main one) apart from the writer's and readers', and
                # how much of the one core it is pinned to the server kept busy (1.0: CPU-bound)
                "loop_cpu_us": loop * 1e6 / total,
                "cores": cpu / (time.perf_counter() - wall),
                "committed": _head(srv.url) - head0,
            }

        yield run


@contextlib.contextmanager
def naive_subject() -> Iterator[Run]:
    """The seed app's pattern over HTTP (``bench/naive.py``) on the same schema."""
    db = tmpdir() / "naive.db"
    agent = prefill(db, 0)
    port = free_port()
    with _process([sys.executable, "-m", "orchlog.bench.naive", str(db), str(port)], port) as proc:
        url = f"http://127.0.0.1:{port}"
        yield lambda shape: _load(url, agent, *shape, proc.pid)


def _rows(agent: str, n: int, start: int) -> list[tuple[Any, ...]]:
    item = AgentLogIn(
        agent_id=agent,
        event_category="hook",
        event_type="PreToolUse",
        content="x" * 120,
        payload={"tool": "Bash", "args": ["ls", "-la"], "n": 1},
    )
    rows = []
    for i in range(n):
        item.id = new_id()
        rows.append(agent_row(item, start + i + 1))
    return rows


def raw_run(shape: Shape) -> dict[str, float]:
    """executemany + COMMIT per request-sized batch into a fresh database of the same schema,
    same rows (CPU of this process; the rows are built before the clock starts)."""
    _clients, batch, total = shape
    n = min(total, 100_000)
    db = tmpdir() / "raw.db"
    agent = prefill(db, 0)
    conn = connect(str(db), Settings())
    try:
        rows = _rows(agent, n, 0)
        sql = insert_sql("agent_logs", AGENT_COLS)
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(0, n, batch):
            conn.execute("BEGIN")
            conn.executemany(sql, rows[i : i + batch])
            conn.execute("COMMIT")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        conn.close()
        remove_tmpdir(db.parent)
    return {"events_per_s": n / wall, "cpu_us": cpu * 1e6 / n}


def bench_raw(shapes: list[Shape]) -> dict[tuple[int, int], dict[str, Any]]:
    return {(c, b): _median([raw_run((c, b, t)) for _ in range(REPEATS)]) for c, b, t in shapes}


@contextlib.contextmanager
def redis_subject() -> Iterator[Run | str]:
    """XADD of the same events through redis-py pipelines of the request size (AOF everysec);
    a note instead when there is no ``redis-server`` or no redis-py."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield "skipped: no redis-server binary on this machine"
        return
    try:
        import redis
    except ImportError:
        yield "skipped: redis-py is not installed (pip install redis)"
        return
    import orjson

    port, work = free_port(), tmpdir()
    cmd = [binary, "--port", str(port), "--dir", str(work), "--appendonly", "yes", "--appendfsync", "everysec"]
    event = {
        "agent_id": new_id(),
        "event_category": "hook",
        "event_type": "PreToolUse",
        "content": "x" * 120,
        "payload": orjson.dumps({"tool": "Bash", "args": ["ls", "-la"], "n": 1}),
    }
    with _process([*cmd, "--save", ""], port) as proc:
        client = redis.Redis(port=port)

        def run(shape: Shape) -> dict[str, float]:
            _clients, batch, total = shape
            n = min(total, 100_000)
            cpu0, wall = cpu_seconds(proc.pid), time.perf_counter()
            for _start in range(0, n, batch):
                pipe = client.pipeline(transaction=False)
                for _ in range(batch):
                    pipe.xadd("orchlog", event)  # type: ignore[arg-type,unused-ignore]
                pipe.execute()
            wall = time.perf_counter() - wall
            return {"events_per_s": n / wall, "cpu_us": (cpu_seconds(proc.pid) - cpu0) * 1e6 / n}

        try:
            yield run
        finally:
            client.close()


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    if not a or not b or not b["events_per_s"]:
        return None
    return round(float(a["events_per_s"]) / float(b["events_per_s"]), 2)


def interleaved(subjects: dict[str, Run], shapes: list[Shape]) -> dict[str, dict[tuple[int, int], dict[str, Any]]]:
    """Every subject's runs of a shape, taken in turn: raw, naive, redis, orchlog, raw, ... so a
    drift of this machine's speed over the minutes of a run (a shared VM) moves every figure of
    a ratio alike, instead of landing on whichever subject happened to run later."""
    out: dict[str, dict[tuple[int, int], dict[str, Any]]] = {name: {} for name in subjects}
    for shape in shapes:
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in subjects}
        for _ in range(REPEATS):
            for name, run in subjects.items():
                runs[name].append(run(shape))
        for name, results in runs.items():
            out[name][shape[:2]] = _median(results)
            if "committed" in results[0]:
                out[name][shape[:2]].update(committed=sum(int(r["committed"]) for r in results))
                out[name][shape[:2]].update(expected=shape[2] * REPEATS)
    return out


def main(quick: bool = False, rows: tuple[int, ...] = (0,)) -> list[dict[str, Any]]:
    scale = 0.1 if quick else 1.0
    shapes = [(c, b, max(b * c * 10, int(t * scale) // (b * c) * (b * c))) for c, b, t in SHAPES]
    out: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        subjects: dict[str, Run] = {"raw": raw_run, "naive": stack.enter_context(naive_subject())}
        redis_run = stack.enter_context(redis_subject())
        if isinstance(redis_run, str):
            out.append(record("ingest_redis", note=redis_run))
        else:
            subjects["redis"] = redis_run
        for n in rows:
            subjects[f"orchlog@{n}"] = stack.enter_context(orchlog_subject(n))
        results = interleaved(subjects, shapes)
    empty = results[f"orchlog@{rows[0]}"]
    for clients, batch, total in shapes:
        key = (clients, batch)
        base = {"clients": clients, "batch": batch, "events": total, "repeats": REPEATS}
        out.append(record("ingest_raw", **base, **results["raw"][key]))
        out.append(record("ingest_naive_http", **base, **results["naive"][key]))
        if "redis" in results:
            out.append(record("ingest_redis", **base, **results["redis"][key]))
        for n in rows:
            mine = results[f"orchlog@{n}"][key]
            out.append(
                record(
                    "ingest_orchlog",
                    **base,
                    rows_before=n,
                    **mine,
                    x_naive=_ratio(mine, results["naive"][key]),
                    x_raw=_ratio(mine, results["raw"][key]),
                    x_redis=_ratio(mine, results.get("redis", {}).get(key)),
                    x_first_rows=_ratio(mine, empty[key]),
                )
            )
    pg_admin = os.environ.get("ORCHLOG_BENCH_PG_URL")
    if pg_admin:
        out.extend(postgres_vs_copy(pg_admin, 8, 100, shapes[2][2]))
    return out


def postgres_vs_copy(admin_url: str, clients: int, batch: int, total: int) -> list[dict[str, Any]]:
    """orchlog on PostgreSQL (a throwaway database) next to asyncpg COPY of the same rows."""
    import asyncpg

    from ..store.postgres_write import to_ts

    name = f"orchlog_bench_{new_id()[:8]}"
    target = admin_url.rsplit("/", 1)[0] + "/" + name

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    # COPY writes into the same database between orchlog's runs (interleaved): its rows take
    # seqs above the head (orchlog's PostgreSQL writer starts from the larger of last_seq and the
    # tables' highest seq), so neither side's rows collide with the other's.
    async def copy(agent: str, n: int) -> dict[str, float]:
        conn = await asyncpg.connect(target)
        try:
            head = int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM agent_logs"))
            rows = [(*r[:-1], to_ts(r[-1])) for r in _rows(agent, n, head)]
            wall = time.perf_counter()
            for i in range(0, n, batch):
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "agent_logs", records=rows[i : i + batch], columns=list(AGENT_COLS)
                    )
            return {"events_per_s": n / (time.perf_counter() - wall), "cpu_us": 0.0}
        finally:
            await conn.close()

    asyncio.run(admin(f"CREATE DATABASE {name}"))
    try:
        with ServerProcess(target) as srv:
            assert srv.proc is not None
            with httpx.Client(base_url=srv.url) as c:
                orch = c.post("/api/v1/orchestrator-agents", json={}).json()["id"]
                body = {"orchestrator_agent_id": orch, "name": "b", "model": "m"}
                agent = c.post("/api/v1/agents", json=body).json()["id"]
            pid = srv.proc.pid
            results = interleaved(
                {
                    "orchlog": lambda shape: _load(srv.url, agent, *shape, pid),
                    "copy": lambda shape: asyncio.run(copy(agent, min(shape[2], 100_000))),
                },
                [(clients, batch, total)],
            )
        mine, copied = results["orchlog"][(clients, batch)], results["copy"][(clients, batch)]
    finally:
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    base = {"clients": clients, "batch": batch, "events": total, "repeats": REPEATS}
    return [
        record("ingest_postgres_copy", **base, events_per_s=copied["events_per_s"]),
        record("ingest_postgres_orchlog", **base, **mine, x_copy=_ratio(mine, copied)),
    ]


TABLE_HEAD = (
    "| load | orchlog | naive app over HTTP | raw executemany | Redis XADD | ratios |\n|---|---|---|---|---|---|"
)
_BASELINES = ("ingest_naive_http", "ingest_raw", "ingest_redis")
_RATIOS = (("x_naive", "naive"), ("x_raw", "raw"), ("x_redis", "Redis"))


def table(rows: list[dict[str, Any]]) -> str:
    """The ingest records as one table, a row per orchlog case with its baselines of the same
    run beside it ('' without ingest records): what bench-results.md shows first."""
    base = {(r["name"], r["clients"], r["batch"]): r for r in rows if r["name"] in _BASELINES and "batch" in r}
    lines = []
    for r in rows:
        if r["name"] == "ingest_orchlog":
            shape = (r["clients"], r["batch"])
            load = f"{shape[0]} x {shape[1]:,}-event POSTs" + (
                f", {r['rows_before']:,} rows stored" if r["rows_before"] else ""
            )
            cells = [
                f"{base[(name, *shape)]['events_per_s']:,}" if (name, *shape) in base else "" for name in _BASELINES
            ]
            ratios = [f"{r[key]}x {label}" for key, label in _RATIOS if r.get(key) is not None]
            if r["rows_before"] and r.get("x_first_rows") is not None:
                ratios.append(f"{r['x_first_rows']}x the first table size")
            mine = f"{r['events_per_s']:,} ev/s, {r['cpu_us_per_event']} µs CPU/ev"
            lines.append(f"| {load} | {mine} | {' | '.join(cells)} | {', '.join(ratios)} |")
        elif r["name"] == "ingest_postgres_orchlog":
            copy = next((c for c in rows if c["name"] == "ingest_postgres_copy"), None)
            load = f"PostgreSQL, {r['clients']} x {r['batch']:,}-event POSTs"
            mine = f"{r['events_per_s']:,} ev/s, {r['cpu_us_per_event']} µs CPU/ev"
            against = f"asyncpg COPY {copy['events_per_s']:,}" if copy else ""
            lines.append(f"| {load} | {mine} | | {against} | | {r['x_copy']}x COPY |")
    return TABLE_HEAD + "\n" + "\n".join(lines) + "\n" if lines else ""


def parse_rows(text: str) -> tuple[int, ...]:
    """``0,1M,5M`` → (0, 1_000_000, 5_000_000)."""
    units = {"k": 1_000, "m": 1_000_000}
    out = []
    for part in text.lower().replace("_", "").split(","):
        part = part.strip()
        mult = units.get(part[-1:], 1)
        out.append(int(float(part[:-1] if mult > 1 else part) * mult))
    return tuple(out) or (0,)


if __name__ == "__main__":
    for row in main(quick="--quick" in sys.argv):
        print(json.dumps(row))
