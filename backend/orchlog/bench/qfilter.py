"""Ingest next to K idle subscribers that each hold a distinct ``q`` filter matching nothing.

The fan-out must never starve ingest: a server with 1,000 subscribers whose filters want none of
the events should take them about as fast as one with none (target: at least 0.7x) and keep
answering ``/healthz`` (target: p99 under 100 ms). Each repeat measures both on the same server,
one phase after the other: a fixed number of events posted as fast as possible by the ingest
benchmark's load generator (``orchlog.bench.load``, in its own process started before the clock)
while this process GETs ``/healthz`` every ~10 ms on a keep-alive connection; first without
subscribers, then with the K subscribers (``?q=nomatch-<i>``, one WebSocket each, all in a
spawned client process) attached.
A phase that runs past its time cap is stopped and rated by what was committed (``capped``).
Each phase starts on a near-idle server, and its server CPU per event (``/proc``) is read once the
server is near idle again, so fan-out work still queued after the last ack is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import json
import multiprocessing
import statistics
import sys
import threading
import time
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from . import load
from .common import ServerProcess, percentile, record, tmpdir
from .fanout import _setup, proc_cpu_s

CLIENTS, BATCH = 8, 100
HEALTHZ_EVERY_S = 0.01
TARGET_RATIO, TARGET_HEALTHZ_P99_MS = 0.7, 100.0


async def _hold(url: str, count: int, conn: Any) -> None:
    """The client process: ``count`` sockets with distinct non-matching filters, read until told to stop."""
    frames: dict[str, int] = {}
    opened: list[ClientConnection] = []

    async def open_one(i: int) -> None:
        ws = await connect(f"{url}?q=nomatch-{i}", ping_interval=None, compression=None, open_timeout=60)
        await ws.recv()  # hello
        opened.append(ws)

    async def read(ws: ClientConnection) -> None:
        async for raw in ws:
            kind = str(orjson.loads(raw).get("type"))
            frames[kind] = frames.get(kind, 0) + 1

    for start in range(0, count, 100):  # in steps, so the accept backlog never overflows
        await asyncio.gather(*(open_one(i) for i in range(start, min(count, start + 100))))
    readers = [asyncio.create_task(read(ws)) for ws in opened]
    conn.send("ready")
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "stop"
    attached = sum(1 for task in readers if not task.done())  # still open: none was dropped
    await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
    await asyncio.gather(*readers, return_exceptions=True)
    conn.send({"attached": attached, "frames": frames})


def _client_main(url: str, count: int, conn: Any) -> None:
    asyncio.run(_hold(url, count, conn))


def _poll_healthz(port: int, stop: threading.Event, out: list[float], failed: list[int]) -> None:
    """GET /healthz every ~10 ms until ``stop`` (at least once): each latency in ms, and the answers
    that were not 200 (a 503 under load is a finding, not a crash of the benchmark)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        next_at = time.perf_counter()
        while True:
            started = time.perf_counter()
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            out.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                failed.append(response.status)
            if stop.is_set():
                return
            next_at = max(next_at + HEALTHZ_EVERY_S, time.perf_counter())
            stop.wait(next_at - time.perf_counter())  # pacing, not a wait for a condition
    finally:
        conn.close()


def _settle(pid: int, deadline_s: float = 30.0) -> None:
    """Wait (up to a deadline) until the server is near idle, so that no phase starts while it still
    works off the last one (a capped phase's backlog, 1,000 sockets just opened or closed)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        cpu0 = proc_cpu_s(pid)
        time.sleep(0.5)  # a measuring window: CPU seconds only come in clock ticks
        if proc_cpu_s(pid) - cpu0 < 0.15:  # under 0.3 of a core
            return


def _head(url: str) -> int:
    return int(httpx.get(url + "/api/v1/events", params={"limit": 1}, timeout=60).json()["head_seq"])


def _load_main(url: str, agent: str, events: int, conn: Any) -> None:
    """The load generator's own process, started ahead so its start-up is not timed: go, post, report."""
    conn.recv()  # "go"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        asyncio.run(load.main(url, agent, CLIENTS, BATCH, events))
    conn.send(json.loads(out.getvalue().strip().splitlines()[-1]))


def _phase(srv: ServerProcess, agent: str, events: int, cap_s: float) -> dict[str, Any]:
    """Post ``events`` as fast as the load generator can while /healthz is polled."""
    assert srv.proc is not None
    _settle(srv.proc.pid)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    poster = ctx.Process(target=_load_main, args=(srv.url, agent, events, child), daemon=True)
    poster.start()
    latencies: list[float] = []
    failed: list[int] = []
    stop = threading.Event()
    poller = threading.Thread(target=_poll_healthz, args=(srv.port, stop, latencies, failed), daemon=True)
    head0, cpu0 = _head(srv.url), proc_cpu_s(srv.proc.pid)
    parent.send("go")
    poller.start()
    started = time.perf_counter()
    capped = not parent.poll(cap_s)
    took = time.perf_counter() - started
    stop.set()
    result = {} if capped else parent.recv()
    if capped:
        poster.kill()
    poster.join(30)
    poller.join(70)
    committed = _head(srv.url) - head0
    _settle(srv.proc.pid)  # the CPU per event includes fan-out work still queued when the acks were in
    cpu = proc_cpu_s(srv.proc.pid) - cpu0
    return {
        "events_per_s": committed / took if capped else float(result["events_per_s"]),
        "committed": committed,
        "capped": capped,
        "healthz_ms": latencies,
        "healthz_failed": len(failed),
        "cpu_us_per_event": cpu * 1e6 / committed if committed else 0.0,
    }


def run_qfilter(
    subscribers: int, events: int, repeat: int = 1, cap_s: float = 60.0, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """``repeat`` pairs of phases (without, then with ``subscribers``) on one server: medians."""
    ctx = multiprocessing.get_context("spawn")
    limits = {
        "ORCHLOG_MAX_SUBSCRIBERS": str(subscribers + 100),
        "ORCHLOG_MAX_STREAMS_PER_CLIENT": str(subscribers + 100),
        "ORCHLOG_MAX_STREAMS_PER_TOKEN": str(subscribers + 100),
        **(env or {}),
    }
    without: list[dict[str, Any]] = []
    with_subs: list[dict[str, Any]] = []
    attached: list[int] = []
    matched = 0
    with ServerProcess(tmpdir() / "qfilter.db", env=limits) as srv:
        agent = asyncio.run(_setup(srv.url))
        for _ in range(repeat):
            without.append(_phase(srv, agent, events, cap_s))
            parent, child = ctx.Pipe()
            client = ctx.Process(target=_client_main, args=(f"{srv.ws}/api/v1/stream", subscribers, child))
            client.daemon = True
            client.start()
            try:
                if not parent.poll(180) or parent.recv() != "ready":
                    raise RuntimeError("subscribers did not connect")
                with_subs.append(_phase(srv, agent, events, cap_s))
                parent.send("stop")
                if not parent.poll(60):
                    raise RuntimeError("the subscriber process did not report")
                report = parent.recv()
            finally:
                client.join(30)
                if client.is_alive():
                    client.kill()
            attached.append(int(report["attached"]))
            frames = report["frames"]
            matched += int(frames.get("agent_log", 0)) + int(frames.get("events", 0))

    def med(runs: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median(float(r[key]) for r in runs))

    def healthz(runs: list[dict[str, Any]], p: float) -> float:
        return round(statistics.median(percentile(r["healthz_ms"], p) for r in runs), 2)

    base, loaded = med(without, "events_per_s"), med(with_subs, "events_per_s")
    return record(
        "qfilter",
        subscribers=subscribers,
        distinct_q=subscribers,
        events=events,
        clients=CLIENTS,
        batch=BATCH,
        without_events_per_s=round(base),
        with_events_per_s=round(loaded),
        x_without=round(loaded / base, 2) if base else None,
        without_healthz_p50_ms=healthz(without, 50),
        without_healthz_p99_ms=healthz(without, 99),
        with_healthz_p50_ms=healthz(with_subs, 50),
        with_healthz_p99_ms=healthz(with_subs, 99),
        with_healthz_max_ms=round(max(max(r["healthz_ms"]) for r in with_subs), 2),
        healthz_samples=sum(len(r["healthz_ms"]) for r in with_subs),
        healthz_not_ok=sum(r["healthz_failed"] for r in without + with_subs),
        without_server_us_per_event=round(med(without, "cpu_us_per_event"), 2),
        with_server_us_per_event=round(med(with_subs, "cpu_us_per_event"), 2),
        attached=min(attached),
        matched=matched,
        capped=any(r["capped"] for r in without + with_subs),
        runs=repeat,
    )


def main(quick: bool = True) -> list[dict[str, Any]]:
    if quick:
        return [run_qfilter(200, 20_000, repeat=1, cap_s=15)]
    return [run_qfilter(1000, 100_000, repeat=3, cap_s=60)]


def table_row(row: dict[str, Any]) -> str:
    """| case | deliveries/s | p50 | p99 | server CPU | note |, with the ingest and /healthz ratios."""
    k = row["subscribers"]
    case = f"{k:,} subscribers with {row['distinct_q']:,} distinct non-matching `q` filters"
    ingest = (
        f"ingest {row['with_events_per_s']:,} ev/s = {row['x_without']}x of {row['without_events_per_s']:,} "
        f"without (target ≥ {TARGET_RATIO}x)"
    )
    note = (
        f"p50/p99: `/healthz` with the subscribers; without them {row['without_healthz_p50_ms']} / "
        f"{row['without_healthz_p99_ms']} ms (target p99 < {TARGET_HEALTHZ_P99_MS:.0f} ms); "
        f"{row['events']:,} events in {row['batch']}-event POSTs from {row['clients']} clients; "
        f"median of {row['runs']}; {row['attached']:,} attached at the end"
        + (f"; {row['matched']} events wrongly delivered" if row["matched"] else "")
        + (f"; {row['healthz_not_ok']} `/healthz` answers not 200" if row["healthz_not_ok"] else "")
        + ("; a phase hit its time cap" if row["capped"] else "")
    )
    return (
        f"| {case} | {ingest} | {row['with_healthz_p50_ms']} ms | {row['with_healthz_p99_ms']} ms "
        f"| {row['with_server_us_per_event']} µs/ev (without {row['without_server_us_per_event']}) | {note} |"
    )


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]  # subscribers events repeat
    k, n, r = (args + [1000, 100_000, 1][len(args) :])[:3]
    print(orjson.dumps(run_qfilter(k, n, r)).decode())
