"""Fan-out: K WebSocket subscribers while events are posted at a fixed rate.

Reports deliveries/s, commit-to-receipt latency (the poster stamps ``payload.t`` with the same
wall clock the subscribers read) and the server's CPU per delivery (from ``/proc/<pid>/stat``),
for single-event frames and for batched frames (``batch=1``). The subscribers run in their own
process, so the client's CPU does not compete with the poster's event loop; its CPU share is
reported too (``client_cpu``, cores) so a saturated client is visible.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import connect

from .common import ServerProcess, percentile, record, tmpdir

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux ``/proc``); 0.0 where there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def _setup(url: str) -> str:
    async with httpx.AsyncClient(base_url=url) as c:
        orch = (await c.post("/api/v1/orchestrator-agents", json={"status": "idle"})).json()["id"]
        agent = await c.post("/api/v1/agents", json={"orchestrator_agent_id": orch, "name": "bench", "model": "m"})
        return str(agent.json()["id"])


async def _subscriber(
    url: str, latencies: list[float], counts: list[int], ready: asyncio.Event, stop: asyncio.Event
) -> None:
    async with connect(url, ping_interval=None, max_size=2**25, compression=None) as ws:
        await ws.recv()  # hello
        ready.set()
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            now = time.time()
            frame = orjson.loads(raw)
            kind = frame.get("type")
            items = frame["items"] if kind == "events" else [frame] if kind == "agent_log" else []
            for item in items:
                latencies.append(now - item["data"]["payload"]["t"])
            counts[0] += len(items)


async def _subscribers(path: str, count: int, conn: Any) -> None:
    """The client process: open ``count`` sockets, say ready, count until told how many to expect."""
    latencies: list[float] = []
    counts = [0]
    stop = asyncio.Event()
    readies = [asyncio.Event() for _ in range(count)]
    tasks = [asyncio.create_task(_subscriber(path, latencies, counts, r, stop)) for r in readies]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    conn.send("ready")
    loop = asyncio.get_running_loop()
    want = await loop.run_in_executor(None, conn.recv)  # the poster is done: how many to expect
    deadline = time.monotonic() + 30
    while counts[0] < want and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a counter
        await asyncio.sleep(0.02)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    conn.send(
        {
            "delivered": counts[0],
            "done_at": time.monotonic(),
            "latencies": latencies,
            "cpu_s": cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime,
        }
    )


def _client_main(path: str, count: int, conn: Any) -> None:
    asyncio.run(_subscribers(path, count, conn))


async def _post(url: str, agent: str, rate: int, seconds: float) -> tuple[int, float]:
    posted = 0
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        tick = 0.01  # post every 10 ms: rate/100 events per request
        per_tick = max(1, rate // 100)
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            items = [
                {
                    "agent_id": agent,
                    "event_category": "hook",
                    "event_type": "bench",
                    "content": "x" * 100,
                    "payload": {"t": time.time()},
                }
                for _ in range(per_tick)
            ]
            r = await client.post(
                "/api/v1/agent-logs", content=orjson.dumps(items), headers={"content-type": "application/json"}
            )
            r.raise_for_status()
            posted += per_tick
            next_at = started + (posted / per_tick) * tick
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    return posted, started


def run_fanout(
    subscribers: int, rate: int, seconds: float, batch: bool, env: dict[str, str] | None = None
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with ServerProcess(tmpdir() / "fanout.db", env=env or {}) as srv:
        assert srv.proc is not None
        agent = asyncio.run(_setup(srv.url))
        path = f"{srv.ws}/api/v1/stream" + ("?batch=1" if batch else "")
        parent, child = ctx.Pipe()
        client = ctx.Process(target=_client_main, args=(path, subscribers, child), daemon=True)
        client.start()
        if not parent.poll(150) or parent.recv() != "ready":
            client.kill()
            raise RuntimeError("subscribers did not connect")
        server_cpu0 = proc_cpu_s(srv.proc.pid)
        posted, started = asyncio.run(_post(srv.url, agent, rate, seconds))
        want = posted * subscribers
        parent.send(want)
        result: dict[str, Any] = parent.recv() if parent.poll(60) else {"delivered": 0, "latencies": [], "cpu_s": 0.0}
        server_cpu1 = proc_cpu_s(srv.proc.pid)
        client.join(10)
    elapsed = max(1e-9, result.get("done_at", time.monotonic()) - started)
    delivered = int(result["delivered"])
    ms = [x * 1000 for x in result["latencies"]]
    server_cpu = server_cpu1 - server_cpu0
    return record(
        "fanout",
        subscribers=subscribers,
        rate=rate,
        batch=batch,
        posted=posted,
        delivered=delivered,
        expected=want,
        deliveries_per_s=round(delivered / elapsed),
        p50_ms=round(percentile(ms, 50), 2),
        p99_ms=round(percentile(ms, 99), 2),
        max_ms=round(max(ms) if ms else float("nan"), 2),
        server_cpu_us_per_delivery=round(server_cpu * 1e6 / delivered, 2) if delivered else None,
        server_cpu=round(server_cpu / elapsed, 2),
        client_cpu=round(float(result["cpu_s"]) / elapsed, 2),
    )


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row: the median of each numeric figure over repeated runs (``runs`` = how many)."""
    row = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            values = [r[key] for r in runs if isinstance(r.get(key), int | float)]
            row[key] = statistics.median(values) if values else value
    row["runs"] = len(runs)
    return row


def one(subscribers: int, rate: int, seconds: float, batch: bool, repeat: int = 1) -> dict[str, Any]:
    return median_of([run_fanout(subscribers, rate, seconds, batch) for _ in range(repeat)])


QUICK_CASES = ((100, 500, False), (100, 1000, True))
FULL_CASES = tuple((k, r, b) for k in (10, 100, 1000) for b in (False, True) for r in (100, 1000))


def main(quick: bool = True, repeat: int = 3) -> list[dict[str, Any]]:
    """The issue's matrix (subscribers x frames x rate), each case the median of ``repeat`` runs."""
    seconds = 3.0 if quick else 5.0
    return [one(k, r, seconds, b, repeat) for k, r, b in (QUICK_CASES if quick else FULL_CASES)]


def table_row(row: dict[str, Any]) -> str:
    """One row as the issue prints it: | case | deliveries/s | p50 | p99 | server us/delivery | note |."""
    frames = "batched frames (`batch=1`)" if row["batch"] else "single-event frames"
    case = f"{row['subscribers']} subscribers, {row['rate']} ev/s, {frames}"
    lost = row["expected"] - row["delivered"]
    note = f"median of {row.get('runs', 1)}; client {row['client_cpu']} cores" + (
        f"; {lost} NOT delivered" if lost else ""
    )
    return (
        f"| {case} | {row['deliveries_per_s']:,.0f} | {row['p50_ms']} ms | {row['p99_ms']} ms "
        f"| {row['server_cpu_us_per_delivery']} µs | {note} |"
    )


if __name__ == "__main__":
    import sys

    args = [float(a) for a in sys.argv[1:]]  # subscribers rate seconds batch repeat
    k, r, s, b, n = (args + [100, 1000, 3.0, 0, 1][len(args) :])[:5]
    print(orjson.dumps(one(int(k), int(r), s, bool(b), int(n))).decode())
