"""Fan-out: K WebSocket subscribers while events are posted at a fixed rate.

Reports deliveries/s and post-to-receipt latency (the poster stamps ``payload.t`` with the
same clock the subscribers read), for single-event frames and for batched frames (``batch=1``).
The subscribers run in this process; with K large the client side can be the limit, which the
report says (client CPU).
"""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import connect

from .common import ServerProcess, percentile, record, tmpdir


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


async def run_fanout(subscribers: int, rate: int, seconds: float, batch: bool) -> dict[str, Any]:
    with ServerProcess(tmpdir() / "fanout.db") as srv:
        agent = await _setup(srv.url)
        latencies: list[float] = []
        counts = [0]
        stop = asyncio.Event()
        readies = [asyncio.Event() for _ in range(subscribers)]
        path = f"{srv.ws}/api/v1/stream" + ("?batch=1" if batch else "")
        tasks = [asyncio.create_task(_subscriber(path, latencies, counts, r, stop)) for r in readies]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        posted = 0
        async with httpx.AsyncClient(base_url=srv.url, timeout=30) as client:
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
                    "/api/v1/agent-logs",
                    content=orjson.dumps(items),
                    headers={"content-type": "application/json"},
                )
                r.raise_for_status()
                posted += per_tick
                next_at = started + (posted / per_tick) * tick
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        want = posted * subscribers
        deadline = time.monotonic() + 30
        while counts[0] < want and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a counter
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    client_cpu = (cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) / elapsed
    ms = [x * 1000 for x in latencies]
    return record(
        "fanout",
        subscribers=subscribers,
        rate=rate,
        batch=batch,
        posted=posted,
        delivered=counts[0],
        expected=want,
        deliveries_per_s=round(counts[0] / elapsed),
        p50_ms=round(percentile(ms, 50), 2),
        p99_ms=round(percentile(ms, 99), 2),
        max_ms=round(max(ms) if ms else float("nan"), 2),
        client_cpu=round(client_cpu, 2),
    )


def one(subscribers: int, rate: int, seconds: float, batch: bool) -> dict[str, Any]:
    return asyncio.run(run_fanout(subscribers, rate, seconds, batch))


def main(subscribers: int = 100, rate: int = 1000, seconds: float = 5.0) -> list[dict[str, Any]]:
    out = []
    for batch in (False, True):
        out.append(asyncio.run(run_fanout(subscribers, rate, seconds, batch)))
    return out


if __name__ == "__main__":
    import sys

    for row in main(*(int(a) for a in sys.argv[1:3])):
        print(orjson.dumps(row).decode())
