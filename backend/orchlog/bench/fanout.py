"""Fan-out: K WebSocket subscribers while events are posted at a fixed rate.

Reports deliveries/s, commit-to-receipt latency (the poster stamps ``payload.t`` with the same
wall clock the subscribers read) and the server's CPU per delivery (from ``/proc/<pid>/stat``),
for single-event frames and for batched frames (``batch=1``). The subscribers run in their own
process(es), so the client's CPU does not compete with the poster's event loop; its CPU share is
reported too (``client_cpu``, cores, summed over ``client_processes``) so a saturated client is
visible.

The subscribers are ``wsclient``'s lean sockets by default: the ``websockets`` client (kept as
``client="websockets"`` to cross-check the counts) used 0.85 of a core at 1,000 subscribers and
fell seconds behind, so those rows measured the client. With 2 cores and the server on one,
one lean client process beats two (measured: a second one takes CPU from the server), hence
``SOCKETS_PER_PROCESS``. Latency is timed on a sample, every ``sample_every``-th message of each
socket (``TIMED_SOCKETS``: about 50 sockets' worth of messages whatever K; see ``wsclient``).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import resource
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import connect

from . import wsclient
from .common import ServerProcess, percentile, record, tmpdir
from .wsclient import Tally

CLIENTS = ("lean", "websockets")
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


async def _ws_subscriber(url: str, tally: Tally, ready: asyncio.Event, stop: asyncio.Event) -> None:
    """One socket of the ``websockets`` client: the reference the lean one is checked against."""
    async with connect(url, ping_interval=None, max_size=2**25, compression=None) as ws:
        await ws.recv()  # hello
        ready.set()
        countdown = random.randrange(tally.sample_every) + 1
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            now = time.time()
            frame = orjson.loads(raw)
            kind = frame.get("type")
            tally.delivered += len(frame["items"]) if kind == "events" else 1 if kind == "agent_log" else 0
            countdown -= 1
            if not countdown:
                countdown = tally.sample_every
                tally.time_message(raw.encode() if isinstance(raw, str) else raw, now)


async def _open_ws(url: str, count: int, tally: Tally, stop: asyncio.Event) -> Callable[[], Awaitable[None]]:
    readies = [asyncio.Event() for _ in range(count)]
    tasks = [asyncio.create_task(_ws_subscriber(url, tally, r, stop)) for r in readies]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)

    async def close() -> None:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    return close


async def _open_lean(url: str, count: int, tally: Tally) -> Callable[[], Awaitable[None]]:
    subs = await asyncio.wait_for(wsclient.open_subscribers(url, count, tally), 120)

    async def close() -> None:
        await wsclient.close_all(subs)

    return close


async def _subscribers(client: str, url: str, count: int, sample_every: int, conn: Any) -> None:
    """One client process: open ``count`` sockets, say ready, count until told how many to expect."""
    tally = Tally(sample_every)
    if client == "websockets":
        close = await _open_ws(url, count, tally, asyncio.Event())
    else:
        close = await _open_lean(url, count, tally)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    conn.send("ready")
    loop = asyncio.get_running_loop()
    want = await loop.run_in_executor(None, conn.recv)  # the poster is done: how many to expect
    deadline = time.monotonic() + 30
    while tally.delivered < want and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a counter
        await asyncio.sleep(0.01)
    done_at = time.monotonic()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    await close()
    conn.send(
        {
            "delivered": tally.delivered,
            "done_at": done_at,
            "latencies": tally.latencies,
            "cpu_s": cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime,
        }
    )


def _client_main(client: str, url: str, count: int, sample_every: int, conn: Any) -> None:
    wsclient.run(lambda: _subscribers(client, url, count, sample_every, conn))


def timed_events(agent: str, count: int) -> list[dict[str, Any]]:
    """The fan-out bench's events: stamped with the wall clock (``payload.t``) the subscribers
    read, so each delivery's commit-to-receipt latency is ``now - t``."""
    now = time.time()
    return [
        {
            "agent_id": agent,
            "event_category": "hook",
            "event_type": "bench",
            "content": "x" * 100,
            "payload": {"t": now},
        }
        for _ in range(count)
    ]


async def post_timed(client: httpx.AsyncClient, agent: str, count: int) -> httpx.Response:
    """POST ``count`` timed events as one request (the body encoded once, by orjson)."""
    body = orjson.dumps(timed_events(agent, count))
    return await client.post("/api/v1/agent-logs", content=body, headers={"content-type": "application/json"})


async def _post(url: str, agent: str, rate: int, seconds: float) -> tuple[int, float]:
    """Post ``rate`` events/s for ``seconds``: every 10 ms, the events due by then.

    Usually ``rate/100`` per request; when a request took longer than a tick (a server busy
    fanning out), the next one carries what is due, so the offered rate is the case's rate, not
    whatever one request at a time allows (``posted_per_s`` in the record shows it)."""
    posted = 0
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        tick = 0.01
        per_tick = max(1, rate // 100)
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            count = min(5000, (int(elapsed / tick) + 1) * per_tick - posted)  # due by the end of this tick
            r = await post_timed(client, agent, count)
            r.raise_for_status()
            posted += count
            next_at = started + (posted / per_tick) * tick
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    return posted, started


SOCKETS_PER_PROCESS = 1000  # per client process by default (see the module doc)
TIMED_SOCKETS = 50  # sample_every = ceil(subscribers / this): about this many sockets' worth of messages timed


def default_processes(subscribers: int) -> int:
    return max(1, -(-subscribers // SOCKETS_PER_PROCESS))


def default_sample_every(subscribers: int) -> int:
    return max(1, -(-subscribers // TIMED_SOCKETS))


def run_fanout(
    subscribers: int,
    rate: int,
    seconds: float,
    batch: bool,
    env: dict[str, str] | None = None,
    *,
    processes: int | None = None,
    client: str = "lean",
    sample_every: int | None = None,
) -> dict[str, Any]:
    """One run: ``subscribers`` sockets over ``processes`` client processes, ``rate`` ev/s for ``seconds``.

    ``client`` is ``lean`` (``wsclient``) or ``websockets`` (the library's client, to cross-check
    the counts); ``sample_every``: every how many messages of a socket one is timed."""
    if client not in CLIENTS:
        raise ValueError(f"client is one of {', '.join(CLIENTS)}, not {client!r}")
    procs = max(1, min(subscribers, processes or default_processes(subscribers)))
    every = sample_every or default_sample_every(subscribers)
    shares = [subscribers // procs + (i < subscribers % procs) for i in range(procs)]
    ctx = multiprocessing.get_context("spawn")
    with ServerProcess(tmpdir() / "fanout.db", env=env or {}) as srv:
        assert srv.proc is not None
        agent = asyncio.run(_setup(srv.url))
        # the same posts with nobody subscribed first: what ingest alone costs the server, so the
        # live path's own cost per delivery can be printed beside the whole server's
        ingest_cpu0 = proc_cpu_s(srv.proc.pid)
        ingest_posted, _ = asyncio.run(_post(srv.url, agent, rate, seconds))
        ingest_cpu = proc_cpu_s(srv.proc.pid) - ingest_cpu0
        path = f"{srv.ws}/api/v1/stream" + ("?batch=1" if batch else "")
        pipes, children = [], []
        try:
            for share in shares:
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_client_main, args=(client, path, share, every, child), daemon=True)
                proc.start()
                child.close()  # the child's end lives in the child: its exit is then an EOF here
                pipes.append(parent)
                children.append(proc)
            deadline = time.monotonic() + 150
            for parent in pipes:
                try:
                    ok = parent.poll(max(0.0, deadline - time.monotonic())) and parent.recv() == "ready"
                except EOFError:
                    ok = False
                if not ok:
                    raise RuntimeError("subscribers did not connect (see the client's error above)")
            server_cpu0 = proc_cpu_s(srv.proc.pid)
            posted, started = asyncio.run(_post(srv.url, agent, rate, seconds))
            for parent, share in zip(pipes, shares, strict=True):
                parent.send(posted * share)
            deadline = time.monotonic() + 60
            results: list[dict[str, Any]] = [
                parent.recv() if parent.poll(max(0.0, deadline - time.monotonic())) else {} for parent in pipes
            ]
            server_cpu1 = proc_cpu_s(srv.proc.pid)
            for proc in children:
                proc.join(10)
        finally:
            for proc in children:
                if proc.is_alive():
                    proc.kill()
    want = posted * subscribers
    done_at = max((r["done_at"] for r in results if "done_at" in r), default=time.monotonic())
    elapsed = max(1e-9, done_at - started)
    delivered = sum(int(r.get("delivered", 0)) for r in results)
    ms = [x * 1000 for r in results for x in r.get("latencies", ())]
    server_cpu = server_cpu1 - server_cpu0
    live_cpu = server_cpu - ingest_cpu * posted / max(1, ingest_posted)
    client_cpu_s = sum(float(r.get("cpu_s", 0.0)) for r in results)
    return record(
        "fanout",
        subscribers=subscribers,
        rate=rate,
        batch=batch,
        posted=posted,
        posted_per_s=round(posted / seconds),
        delivered=delivered,
        expected=want,
        deliveries_per_s=round(delivered / elapsed),
        p50_ms=round(percentile(ms, 50), 2),
        p99_ms=round(percentile(ms, 99), 2),
        max_ms=round(max(ms) if ms else float("nan"), 2),
        server_cpu_us_per_delivery=round(server_cpu * 1e6 / delivered, 2) if delivered else None,
        live_cpu_us_per_delivery=round(live_cpu * 1e6 / delivered, 2) if delivered else None,
        ingest_cpu_us_per_event=round(ingest_cpu * 1e6 / max(1, ingest_posted), 1),
        server_cpu=round(server_cpu / elapsed, 2),
        client_cpu=round(client_cpu_s / elapsed, 2),
        client=client,
        client_processes=procs,
        sample_every=every,
        timed=len(ms),
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


def one(subscribers: int, rate: int, seconds: float, batch: bool, repeat: int = 1, **options: Any) -> dict[str, Any]:
    return median_of([run_fanout(subscribers, rate, seconds, batch, **options) for _ in range(repeat)])


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
    procs = row.get("client_processes", 1)
    client = f"client {row['client_cpu']} cores" + (f" in {procs} processes" if procs > 1 else "")
    note = f"median of {row.get('runs', 1)}; {client}" + (f"; {lost} NOT delivered" if lost else "")
    return (
        f"| {case} | {row['deliveries_per_s']:,.0f} | {row['p50_ms']} ms | {row['p99_ms']} ms "
        f"| {row['server_cpu_us_per_delivery']} µs ({row.get('live_cpu_us_per_delivery')} µs without ingest) | {note} |"
    )


if __name__ == "__main__":
    import sys

    # subscribers rate seconds batch repeat [--client=lean|websockets] [--processes=N] [--sample-every=N]
    flags = dict(a.removeprefix("--").split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
    args = [float(a) for a in sys.argv[1:] if not a.startswith("--")]
    k, r, s, b, n = (args + [100, 1000, 3.0, 0, 1][len(args) :])[:5]
    options: dict[str, Any] = {"client": flags.get("client", "lean")}
    for name in ("processes", "sample-every"):
        if name in flags:
            options[name.replace("-", "_")] = int(flags[name])
    print(orjson.dumps(one(int(k), int(r), s, bool(b), int(n), **options)).decode())
