"""Helpers for the live-stream tests: WebSocket and SSE readers, event mixes, history comparisons.

The socket readers talk to a real ``orchlog serve`` (``helpers.server.Server``); the HTTP helpers work
against any client. Readers never sleep to
wait for something: every receive has a timeout, and conditions are polled with ``wait_until``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .api import agent_event, history
from .api import head_seq as head_seq  # re-exported: the one head_seq lives in helpers.api
from .server import Server

KINDS = ("agent_log", "system_log")
RECV_TIMEOUT = 15.0
STREAM = "/api/v1/stream"
SSE = "/api/v1/stream/sse"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

Params = Mapping[str, Any]


# ------------------------------------------------------------------ WebSocket


def ws_url(server: Server, params: Params | None = None, path: str = STREAM) -> str:
    query = urlencode({k: v for k, v in (params or {}).items() if v is not None}, doseq=True)
    return f"{server.ws}{path}{'?' + query if query else ''}"


async def open_ws(server: Server, params: Params | None = None, path: str = STREAM, **kw: Any) -> ClientConnection:
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", 15)
    kw.setdefault("max_size", 8 * 1024 * 1024)
    return await connect(ws_url(server, params, path), **kw)


async def recv(ws: ClientConnection, within: float = RECV_TIMEOUT) -> dict[str, Any]:
    """The next frame as JSON; fails (instead of hanging) after ``within`` seconds."""
    try:
        raw = await asyncio.wait_for(ws.recv(), within)
    except TimeoutError:
        raise AssertionError(f"no frame within {within}s") from None
    frame = orjson.loads(raw)
    assert isinstance(frame, dict), frame
    return frame


async def until_live(
    ws: ClientConnection, within: float = RECV_TIMEOUT
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """hello, then every sequenced frame up to the ``live`` frame: (hello, events, live)."""
    hello = await recv(ws, within)
    assert hello["type"] == "hello", f"first frame must be hello, got {hello}"
    events: list[dict[str, Any]] = []
    while True:
        frame = await recv(ws, within)
        if frame["type"] == "live":
            return hello, events, frame
        assert frame["type"] in KINDS, f"unexpected frame before live: {frame}"
        events.append(frame)


async def recv_events(
    ws: ClientConnection, n: int, within: float = RECV_TIMEOUT, skip: Sequence[str] = ("heartbeat",)
) -> list[dict[str, Any]]:
    """The next ``n`` sequenced frames, all within ``within`` seconds (heartbeats do not extend it);
    control frames in ``skip`` are ignored, others fail."""
    out: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while len(out) < n:
        left = deadline - loop.time()
        try:
            if left <= 0:
                raise AssertionError
            frame = await recv(ws, left)
        except AssertionError:
            last = out[-1]["seq"] if out else None
            raise AssertionError(f"only {len(out)} of {n} events within {within}s (last seq {last})") from None
        if frame["type"] in KINDS:
            out.append(frame)
        else:
            assert frame["type"] in skip, f"unexpected frame {frame} after {len(out)} of {n} events"
    return out


async def recv_type(ws: ClientConnection, wanted: str, within: float = RECV_TIMEOUT) -> dict[str, Any]:
    """Skip frames until one of type ``wanted`` (sequenced frames are not expected meanwhile)."""
    while True:
        frame = await recv(ws, within)
        if frame["type"] == wanted:
            return frame
        assert frame["type"] not in KINDS, f"unexpected event {frame} while waiting for {wanted}"


async def assert_quiet(ws: ClientConnection) -> None:
    """Nothing else is pending: a ping is answered by a pong with no frame in between."""
    await ws.send(orjson.dumps({"type": "ping"}).decode())
    frame = await recv(ws)
    while frame["type"] == "heartbeat":
        frame = await recv(ws)
    assert frame == {"type": "pong"}, f"expected pong and nothing before it, got {frame}"


async def refused(server: Server, params: Params, path: str = STREAM) -> tuple[int, str]:
    """(code, reason) of a refused subscription: close code after accept, or HTTP status."""
    try:
        ws = await open_ws(server, params, path)
    except InvalidStatus as exc:
        return exc.response.status_code, exc.response.body.decode(errors="replace")
    try:
        frame = await recv(ws, 10)
    except ConnectionClosed:
        assert ws.close_code is not None
        return ws.close_code, ws.close_reason or ""
    finally:
        await ws.close()
    raise AssertionError(f"subscription with {dict(params)} was accepted; first frame {frame}")


def triples(frames: Sequence[Mapping[str, Any]]) -> list[tuple[str, int, Any]]:
    """Sequenced frames or history items as comparable (kind, seq, row) triples."""
    return [(f.get("type") or f["kind"], f["seq"], f["data"]) for f in frames]


# ------------------------------------------------------------------ SSE


async def sse_messages(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Parse an event stream into messages: {"event", "id", "data", "retry", "comments"}.

    A block of comments only (a heartbeat) is yielded too, as {"comments": [...]}.
    """
    message: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line == "":
            if message:
                yield message
            message = {}
            continue
        if line.startswith(":"):
            message.setdefault("comments", []).append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            message["data"] = value if "data" not in message else message["data"] + "\n" + value
        else:
            message[name] = value


class SSEReader:
    """One SSE subscription read message by message with a timeout."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._messages = sse_messages(response)

    async def next(self, within: float = RECV_TIMEOUT) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(anext(self._messages), within)
        except TimeoutError:
            raise AssertionError(f"no SSE message within {within}s") from None

    async def next_event(self, within: float = RECV_TIMEOUT) -> dict[str, Any]:
        """The next message that has an ``event:`` field (skips retry and comment blocks)."""
        while True:
            message = await self.next(within)
            if "event" in message:
                return message

    async def until_live(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        hello = await self.next_event()
        assert hello["event"] == "hello", f"first SSE event must be hello, got {hello}"
        events = []
        while True:
            message = await self.next_event()
            if message["event"] == "live":
                return hello, events
            assert message["event"] in KINDS, message
            events.append(message)


@contextlib.asynccontextmanager
async def open_sse(
    client: httpx.AsyncClient, params: Params | None = None, headers: Mapping[str, str] | None = None
) -> AsyncIterator[SSEReader]:
    async with client.stream("GET", SSE, params=dict(params or {}), headers=dict(headers or {})) as r:
        assert r.status_code == 200, (await r.aread()).decode()
        assert r.headers["content-type"].startswith("text/event-stream"), r.headers
        yield SSEReader(r)


def sse_frame(message: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON data of an SSE event message, checked against its ``event:`` and ``id:`` fields."""
    data = orjson.loads(message["data"])
    assert data["type"] == message["event"], message
    assert message["id"] == str(data["seq"]), message
    return data


# ------------------------------------------------------------------ posting


async def post(client: httpx.AsyncClient, items: list[dict[str, Any]], path: str = "/api/v1/events") -> list[int]:
    """Post one batch; the acked seqs in request order."""
    r = await client.post(path, json=items)
    assert r.status_code == 201, f"{r.status_code} {r.text[:500]}"
    return [item["seq"] for item in r.json()["items"]]


def agent_item(agent_id: str, text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"kind": "agent_log", **agent_event(agent_id, text, **extra)}


def system_item(message: str, level: str = "INFO", **extra: Any) -> dict[str, Any]:
    return {"kind": "system_log", "level": level, "message": message, **extra}


def mixed(agents: Sequence[str], n: int, rng: random.Random, tag: str = "") -> list[dict[str, Any]]:
    """``n`` varied events (both kinds, every level, several types, slugs, adw ids and search words)."""
    out = []
    for i in range(n):
        level = rng.choices(LEVELS, weights=(20, 45, 17, 12, 6))[0]
        word = rng.choice(("needle", "NEEDLE", "Needle", "hay", "straw"))
        adw = rng.choice((None, "adw-7", "adw-8"))
        if rng.random() < 0.7:
            extra: dict[str, Any] = {
                "level": level,
                "event_category": rng.choice(("hook", "response", "adw_step")),
                "event_type": rng.choice(("PreToolUse", "PostToolUse", "text", "thinking")),
                "task_slug": rng.choice((None, "t1", "t2")),
                "session_id": rng.choice((None, "s1")),
            }
            if adw:
                extra["adw_id"] = adw
            out.append(agent_item(rng.choice(agents), f"{tag}{i} {word} content", **extra))
        else:
            extra = {"adw_id": adw} if adw else {}
            if rng.random() < 0.3:
                extra["summary"] = f"sum {rng.choice(('needle', 'hay'))}"
            out.append(system_item(f"{tag}{i} {word} message", level, **extra))
    return out


async def matching(client: httpx.AsyncClient, params: Params | None = None, after: int = 0) -> list[dict]:
    """History for a filter (the reference every stream is compared with)."""
    return await history(client, dict(params or {}), after=after)


def set_floor(db: Path, floor: int) -> None:
    """Move stream_meta.floor_seq as retention would, with plain sqlite3 on the live file."""
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        conn.execute("UPDATE stream_meta SET floor_seq = ? WHERE id = 1", (floor,))
        conn.commit()


async def open_stalled_ws(
    server: Server, params: Params | None = None, **kw: Any
) -> tuple[ClientConnection, socket.socket]:
    """A WebSocket on a socket with a 4 KB receive buffer and a one-message client queue, and
    that socket: once the client stops reading, the server's writes back up at once instead of
    filling loopback's buffers (raise the socket's ``SO_RCVBUF`` to read at speed again)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    kw.setdefault("ping_interval", None)
    kw.setdefault("max_size", 2**22)
    return await connect(ws_url(server, params), sock=sock, max_queue=1, **kw), sock


def vm_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def seq_diff(got: Sequence[int], want: Sequence[int]) -> str:
    """A short explanation of how two seq lists differ (for assertion messages)."""
    if list(got) == list(want):
        return "identical"
    seen: set[int] = set()
    dups = sorted({s for s in got if s in seen or seen.add(s)})  # type: ignore[func-returns-value]
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    unordered = next((i for i in range(1, len(got)) if got[i] <= got[i - 1]), None)
    first = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))
    return (
        f"got {len(got)} want {len(want)}; first difference at index {first}; "
        f"missing {missing[:10]}{'...' if len(missing) > 10 else ''} ({len(missing)}); "
        f"extra {extra[:10]} ({len(extra)}); duplicates {dups[:10]} ({len(dups)}); "
        f"first out-of-order index {unordered}"
    )
