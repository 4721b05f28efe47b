"""Catch-up (one subscriber replaying N stored events from after=0: WS batched and single-event
frames, and SSE), the tail CLI writing ``-o json`` to a file while the server replays, and
idle-subscriber memory."""

from __future__ import annotations

import asyncio
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import connect

from .common import ServerProcess, record, tmpdir
from .fanout import proc_cpu_s
from .prefill import prefill

SSE_TARGET = 60_000  # ev/s, issue 21


async def _replay(url: str, n: int) -> float:
    started = time.perf_counter()
    got = 0
    async with connect(url, ping_interval=None, max_size=2**26, compression=None) as ws:
        async for raw in ws:
            frame = orjson.loads(raw)
            kind = frame.get("type")
            if kind == "events":
                got += len(frame["items"])
            elif kind in ("agent_log", "system_log"):
                got += 1
            elif kind == "live":
                break
    took = time.perf_counter() - started
    assert got == n, f"replayed {got} of {n}"
    return n / took


def _dechunk(raw: bytearray, body: bytearray) -> bool:
    """Move the complete HTTP/1.1 chunks at the start of ``raw`` into ``body``; True at the last chunk."""
    pos = 0
    while True:
        eol = raw.find(b"\r\n", pos)
        if eol < 0:
            break
        size = int(raw[pos:eol].split(b";", 1)[0], 16)
        if size == 0:
            del raw[:]
            return True
        end = eol + 2 + size
        if len(raw) < end + 2:
            break
        body += raw[eol + 2 : end]
        pos = end + 2
    del raw[:pos]
    return False


def _sse_replay(port: int, path: str, n: int) -> float:
    """Read ``GET path`` (SSE) on a raw socket until the ``live`` event, counting the sequenced events.

    A raw socket with a minimal chunked decoder, so the client's own cost stays small next to the
    server's (an HTTP library's line iterator costs more per event than the server does)."""
    started = time.perf_counter()
    got = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n".encode())
        raw = bytearray()
        while b"\r\n\r\n" not in raw:
            data = sock.recv(1 << 16)
            if not data:
                raise RuntimeError("the server closed the SSE stream before its headers")
            raw += data
        head, _, rest = bytes(raw).partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"SSE answered {head.splitlines()[0]!r}")
        chunked = b"transfer-encoding: chunked" in head.lower()
        raw, body = bytearray(rest), bytearray()
        live = ended = False
        while not live:
            if chunked:
                ended = _dechunk(raw, body)
            else:
                body += raw
                del raw[:]
            # whole events only (a field never straddles two reads); the blank line's "\n" stays, so
            # the next block starts "\nevent: " too
            cut = body.rfind(b"\n\n") + 1
            if cut > 0:
                block = bytes(body[:cut])
                del body[:cut]
                # "\nevent: " only starts a line: a data line is JSON, its newlines escaped
                got += block.count(b"\nevent: agent_log\n") + block.count(b"\nevent: system_log\n")
                live = b"\nevent: live\n" in block
            if live or ended:
                break
            data = sock.recv(1 << 20)
            if not data:
                break
            raw += data
    took = time.perf_counter() - started
    assert got == n, f"SSE replayed {got} of {n}"
    return n / took


def catchup(n: int, repeat: int = 3) -> dict[str, Any]:
    """Replay ``n`` stored events over WS (batched and single-event frames) and over SSE: medians of
    ``repeat``, with the server's CPU per event (``/proc``)."""
    db = tmpdir() / "catchup.db"
    prefill(db, n)
    some = min(n, 100_000)  # one frame per event is slower: replay the last 100k only
    figures: dict[str, list[float]] = {k: [] for k in ("batched", "batched_us", "single", "single_us", "sse", "sse_us")}
    with ServerProcess(db) as srv:
        assert srv.proc is not None
        for _ in range(repeat):
            for name, url, count in (
                ("batched", f"{srv.ws}/api/v1/stream?after=0&batch=1", n),
                ("single", f"{srv.ws}/api/v1/stream?after={n - some}", some),
            ):
                cpu0 = proc_cpu_s(srv.proc.pid)
                figures[name].append(asyncio.run(_replay(url, count)))
                figures[name + "_us"].append((proc_cpu_s(srv.proc.pid) - cpu0) * 1e6 / count)
            cpu0 = proc_cpu_s(srv.proc.pid)
            figures["sse"].append(_sse_replay(srv.port, "/api/v1/stream/sse?after=0", n))
            figures["sse_us"].append((proc_cpu_s(srv.proc.pid) - cpu0) * 1e6 / n)
    med = {k: statistics.median(v) for k, v in figures.items()}
    return record(
        "catchup",
        events=n,
        batched_events_per_s=round(med["batched"]),
        batched_server_us_per_event=round(med["batched_us"], 2),
        single_events_per_s=round(med["single"]),
        single_server_us_per_event=round(med["single_us"], 2),
        sse_events_per_s=round(med["sse"]),
        sse_server_us_per_event=round(med["sse_us"], 2),
        x_sse_single=round(med["sse"] / med["single"], 2) if med["single"] else None,
        x_sse_batched=round(med["sse"] / med["batched"], 2) if med["batched"] else None,
        runs=repeat,
    )


def table_rows(row: dict[str, Any]) -> list[str]:
    """The catch-up rows as the issue prints them."""
    runs = f"median of {row['runs']}"
    return [
        f"| catch-up of {row['events']:,} stored events, one subscriber, batched | "
        f"{row['batched_events_per_s']:,} ev/s | | | {row['batched_server_us_per_event']} µs/ev | {runs} |",
        f"| catch-up of the last {min(row['events'], 100_000):,}, single-event frames | "
        f"{row['single_events_per_s']:,} ev/s | | | {row['single_server_us_per_event']} µs/ev | {runs} |",
        f"| catch-up of {row['events']:,} stored events over SSE (`/api/v1/stream/sse?after=0`) | "
        f"{row['sse_events_per_s']:,} ev/s | | | {row['sse_server_us_per_event']} µs/ev | {runs}; "
        f"{row['x_sse_single']}x WS single-event frames, {row['x_sse_batched']}x WS batched "
        f"(target ≥ {SSE_TARGET:,} ev/s) |",
    ]


def tail_cli(n: int) -> dict[str, Any]:
    db = tmpdir() / "tail.db"
    prefill(db, n)
    out = Path(str(db) + ".out")
    with ServerProcess(db) as srv:
        started = time.perf_counter()
        with open(out, "wb") as fh:
            subprocess.run(
                [sys.executable, "-m", "orchlog", "tail", "--url", srv.url, "--after", "0", "-o", "json"],
                stdout=fh,
                check=True,
                timeout=600,
            )
        took = time.perf_counter() - started
    with open(out, "rb") as fh:
        lines = sum(1 for _ in fh)
    assert lines == n, f"tail wrote {lines} of {n} lines"
    return record("tail_cli", events=n, events_per_s=round(n / took))


async def _idle(url: str, count: int, srv: ServerProcess) -> tuple[int, int]:
    before = srv.rss_kb()
    sockets = []
    for _ in range(count):
        ws = await connect(url, ping_interval=None, compression=None)
        await ws.recv()  # hello
        sockets.append(ws)
    await asyncio.sleep(1.0)  # let the server settle (allocations, GC) before reading RSS
    after = srv.rss_kb()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return before, after


def memory(counts: tuple[int, ...] = (1000, 5000)) -> list[dict[str, Any]]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the server
    out = []
    for count in counts:
        if count + 100 > hard:
            out.append(record("memory", subscribers=count, skipped=f"open-file limit {hard}"))
            continue
        limits = {
            "ORCHLOG_MAX_SUBSCRIBERS": str(count + 10),
            "ORCHLOG_MAX_STREAMS_PER_CLIENT": str(count + 10),
            "ORCHLOG_MAX_STREAMS_PER_TOKEN": str(count + 10),
        }
        with ServerProcess(tmpdir() / "mem.db", env=limits) as srv:
            before, after = asyncio.run(_idle(f"{srv.ws}/api/v1/stream", count, srv))
        out.append(
            record(
                "memory",
                subscribers=count,
                rss_before_kb=before,
                rss_after_kb=after,
                kb_per_subscriber=round((after - before) / count, 1),
            )
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return out
