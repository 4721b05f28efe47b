"""Reconnect storms, raw garbage on the sockets, and the client's spool across repeated crashes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from helpers import Server, free_port, history, make_agents, wait_until


async def _churning_subscriber(ws_base: str, params: str, out: list[int], stop: asyncio.Event) -> int:
    """Drops its connection at random (clean close or TCP abort) and resumes with after=<last>."""
    connects = 0
    while not stop.is_set():
        after = out[-1] if out else 0
        try:
            async with connect(
                f"{ws_base}/api/v1/stream?after={after}&batch=1{params}",
                ping_interval=None,
                open_timeout=10,
                close_timeout=1,
            ) as ws:
                connects += 1
                deadline = asyncio.get_running_loop().time() + random.uniform(0.05, 1.0)
                while asyncio.get_running_loop().time() < deadline and not stop.is_set():
                    try:
                        frame = json.loads(await asyncio.wait_for(ws.recv(), 0.2))
                    except TimeoutError:
                        continue
                    if frame["type"] == "events":
                        out.extend(i["seq"] for i in frame["items"])
                    elif frame["type"] in ("agent_log", "system_log"):
                        out.append(frame["seq"])
                if random.random() < 0.5 and ws.transport is not None:
                    ws.transport.abort()
        except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
            await asyncio.sleep(0.05)  # pace retries while the server is saturated
    return connects


async def reconnect_storm(tmp_path: Path, subscribers: int, events: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    srv = Server(tmp_path / "storm.db").start()
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=30) as c:
            _orch, agents = await make_agents(c, 3)
            filters = ["", "&kind=system_log", f"&agent_id={agents[0]}", "&min_level=WARNING"]
            stop = asyncio.Event()
            outs: list[list[int]] = [[] for _ in range(subscribers)]
            subs = [
                asyncio.create_task(_churning_subscriber(srv.ws, filters[i % len(filters)], outs[i], stop))
                for i in range(subscribers)
            ]
            posted = 0
            while posted < events:
                batch = []
                for _ in range(50):
                    if random.random() < 0.6:
                        batch.append(
                            {
                                "kind": "agent_log",
                                "agent_id": random.choice(agents),
                                "event_category": "hook",
                                "event_type": "x",
                                "level": random.choice(["INFO", "WARNING"]),
                            }
                        )
                    else:
                        batch.append(
                            {"kind": "system_log", "message": "storm", "level": random.choice(["INFO", "ERROR"])}
                        )
                r = await c.post("/api/v1/events", json=batch)
                assert r.status_code == 201, r.text
                posted += len(batch)
            wanted = {}
            for f in filters:
                params = dict(p.split("=", 1) for p in f.strip("&").split("&") if p)
                wanted[f] = [e["seq"] for e in await history(c, params)]

            def done() -> bool:
                return all(outs[i][-1:] == wanted[filters[i % len(filters)]][-1:] for i in range(subscribers))

            await wait_until(done, 120, "every churning subscriber to reach its head")
            stop.set()
            await asyncio.gather(*subs)
            for i in range(subscribers):
                want = wanted[filters[i % len(filters)]]
                assert outs[i] == want, f"subscriber {i} ({filters[i % len(filters)] or 'all'}): not the history"
    finally:
        srv.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.serial  # CPU-heavy / timing-bound: runs alone, after the parallel pass
async def test_reconnect_storm_100_subscribers(tmp_path: Path) -> None:
    """100 subscribers drop and resume at random during ingest; each final list equals history."""
    await reconnect_storm(tmp_path, 100, 3000)


@pytest.mark.long
async def test_reconnect_storm_500_subscribers(tmp_path: Path) -> None:
    """The long version: 500 churning subscribers."""
    await reconnect_storm(tmp_path, 500, 10_000)


async def test_raw_garbage_on_http_and_websocket_sockets(server: Server) -> None:
    """Garbage bytes on the HTTP socket and on an upgraded WebSocket (bad frames, binary junk,
    invalid UTF-8, a huge frame): the server drops or answers those connections and stays healthy."""
    rng = random.Random(7)
    for _ in range(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(bytes(rng.randrange(256) for _ in range(rng.randint(1, 4000))) + b"\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
            await asyncio.wait_for(reader.read(1000), 5)
        writer.close()
    async with connect(f"{server.ws}/api/v1/stream", ping_interval=None, max_size=None) as ws:
        await ws.recv()  # hello
        await ws.recv()  # live
        await ws.send(b"\x00\xff" * 1000)
        await ws.send("not json at all {{{")
        await ws.send(json.dumps({"type": "ping"}))
        got = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert got["type"] == "pong"
    ws = await connect(f"{server.ws}/api/v1/stream", ping_interval=None, max_size=None)
    await ws.recv()  # hello
    await ws.recv()  # live
    with pytest.raises(ConnectionClosed):
        await ws.send("x" * (2 * 1024 * 1024))  # over the 1 MiB WebSocket message limit
        await asyncio.wait_for(ws.recv(), 5)
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(
        b"GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.settimeout(5)
    assert b"101" in sock.recv(200)
    sock.sendall(os.urandom(5000))  # unmasked, malformed frames
    sock.close()
    async with httpx.AsyncClient(base_url=server.url) as c:
        assert (await c.get("/readyz")).status_code == 200


def test_client_spool_across_repeated_server_crashes(tmp_path: Path) -> None:
    """An EventSender with a spool keeps logging while the server is killed and restarted three
    times; at the end every event is stored exactly once, in submission order."""
    from orchlog.client import EventSender

    port = free_port()
    db = tmp_path / "spool.db"
    srv = Server(db, port=port).start()
    sender = EventSender(srv.url, spool_path=str(tmp_path / "client-spool.db"), max_backoff=0.5, flush_interval=0.02)
    ids = []
    try:
        for round_ in range(4):
            for i in range(300):
                event = {
                    "kind": "system_log",
                    "message": f"r{round_} e{i}",
                    "id": f"00000000-0000-4000-8000-{round_:04d}{i:08d}",
                }
                ids.append(event["id"])
                sender.submit(event)
            if round_ < 3:
                srv.kill9()
                for i in range(100):  # logged while the server is down
                    event = {
                        "kind": "system_log",
                        "message": f"down {round_} {i}",
                        "id": f"00000000-0000-4000-9000-{round_:04d}{i:08d}",
                    }
                    ids.append(event["id"])
                    sender.submit(event)
                srv = Server(db, port=port).start()
        assert sender.flush(timeout=60), sender.stats
    finally:
        sender.close(timeout=5)
        srv.stop()
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        stored = [row[0] for row in conn.execute("SELECT id FROM system_logs ORDER BY seq")]
    finally:
        conn.close()
    assert sorted(stored) == sorted(ids) and len(stored) == len(set(stored)), "lost or duplicated events"
    assert stored == ids, "events were stored out of submission order"
