"""A lean WebSocket subscriber for the fan-out benchmark: counts events, times a sample of them.

The ``websockets`` client decodes, validates and queues every frame, and the benchmark then
parsed every frame's JSON: at 1,000 subscribers that saturated the client process before the
server, so the benchmark measured its own backlog. Here each socket is a bare asyncio
``Protocol`` (on uvloop when it is importable): the Upgrade request is written by hand, and the
server's frames are cut out of the byte stream without copying the common case.

- **Counting** needs no JSON parse: every event reaches a subscriber as the object
  ``{"type":"agent_log","seq":N,"data":{...}}`` (a single-event frame, or an item of a batched
  ``{"type":"events","items":[...]}`` frame), built by ``stream/hub.py`` with exactly these bytes.
  ``MARKER`` is its first bytes. It cannot occur inside a JSON string (its quotes would be
  escaped there), so it occurs once per event, unless a row's payload itself holds an object
  starting with those two keys (the benchmark's payload is ``{"t": <float>}``).
- **Latency** (receipt time minus the poster's ``payload.t``, one wall clock) is taken from a
  sample: every ``sample_every``-th text message of each socket, from a random phase per socket,
  is parsed and all its events timed. The choice never looks at a message's content or timing,
  so p50/p99 of the sample estimate those of every delivery (weighted by events, like timing all).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import time
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

import orjson

MARKER = b'{"type":"agent_log","seq":'
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE = 64 * 1024 * 1024


class ProtocolError(Exception):
    """The server broke RFC 6455 (or sent more than ``MAX_MESSAGE``): the benchmark's figures would be wrong."""


Message = tuple[int, bytes]  # (opcode, payload) of a whole message, or of one control frame


class FrameParser:
    """Server-to-client frames out of a byte stream: whole messages and control frames, in order.

    Server frames are unmasked (RFC 6455 5.1: a masked one is an error). Lengths take 7, 16 or
    64 bits. A fragmented message (a first frame without FIN, then continuations) is joined;
    control frames may come between its fragments and are returned as they arrive."""

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self._buf = b""
        self._parts: list[bytes] = []  # fragments of the message in progress
        self._part_bytes = 0
        self._opcode = -1  # of the message in progress; -1: none
        self._max = max_message

    def feed(self, data: bytes) -> list[Message]:
        buf = self._buf + data if self._buf else data
        end = len(buf)
        out: list[Message] = []
        pos = 0
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            if b1 & 0x80:
                raise ProtocolError("masked frame from the server")
            if b0 & 0x70:
                raise ProtocolError("reserved bits set (no extension was negotiated)")
            length = b1 & 0x7F
            start = pos + 2
            if length == 126:
                if end - start < 2:
                    break
                length = int.from_bytes(buf[start : start + 2], "big")
                start += 2
            elif length == 127:
                if end - start < 8:
                    break
                length = int.from_bytes(buf[start : start + 8], "big")
                start += 8
            if length > self._max:
                raise ProtocolError(f"frame of {length} bytes")
            stop = start + length
            if stop > end:
                break
            pos = stop
            opcode = b0 & 0x0F
            payload = buf[start:stop]
            if opcode >= OP_CLOSE:  # control: never fragmented, at most 125 bytes
                if not b0 & 0x80 or length > 125:
                    raise ProtocolError("fragmented or oversized control frame")
                out.append((opcode, payload))
            elif opcode == OP_CONT:
                if self._opcode < 0:
                    raise ProtocolError("continuation without a message")
                self._add_part(payload)
                if b0 & 0x80:
                    out.append((self._opcode, b"".join(self._parts)))
                    self._parts, self._part_bytes, self._opcode = [], 0, -1
            elif opcode in (OP_TEXT, OP_BINARY):
                if self._opcode >= 0:
                    raise ProtocolError("new message inside a fragmented one")
                if b0 & 0x80:
                    out.append((opcode, payload))
                else:
                    self._opcode = opcode
                    self._add_part(payload)
            else:
                raise ProtocolError(f"unknown opcode {opcode}")
        self._buf = buf[pos:] if pos < end else b""
        return out

    def _add_part(self, payload: bytes) -> None:
        self._part_bytes += len(payload)
        if self._part_bytes > self._max:
            raise ProtocolError(f"message over {self._max} bytes")
        self._parts.append(payload)


def client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """One masked client frame (RFC 6455 5.3: every client frame is masked)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    if not n:
        return head + mask
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return head + mask + (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


def upgrade_request(host: str, target: str) -> tuple[bytes, bytes]:
    """The HTTP Upgrade request for ``target`` at ``host`` (``name:port``), and the accept value it expects.

    No ``Origin``: the server lets non-browser clients in without one (``origins.py``)."""
    key = base64.b64encode(os.urandom(16))
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    return request, accept


def check_upgrade(head: bytes, accept: bytes) -> None:
    """Raise ``ProtocolError`` unless ``head`` (the response up to its blank line) is a valid 101."""
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ", 2)
    if len(status) < 2 or status[1] != b"101":
        raise ProtocolError(f"upgrade refused: {lines[0].decode(errors='replace')}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"sec-websocket-accept") != accept:
        raise ProtocolError("wrong Sec-WebSocket-Accept")
    if headers.get(b"sec-websocket-extensions"):
        raise ProtocolError("the server chose an extension none was offered")


class Tally:
    """What the sockets of one process received: events counted, and latencies (s) of the sample."""

    def __init__(self, sample_every: int = 1) -> None:
        self.sample_every = max(1, sample_every)
        self.delivered = 0
        self.latencies: list[float] = []
        self.messages = 0

    def time_message(self, payload: bytes, now: float) -> None:
        frame = orjson.loads(payload)
        kind = frame.get("type")
        items = frame["items"] if kind == "events" else [frame] if kind == "agent_log" else []
        self.latencies.extend(now - item["data"]["payload"]["t"] for item in items)


class Subscriber(asyncio.Protocol):
    """One WebSocket: handshake, then count every event and time a sample (see the module doc)."""

    def __init__(self, request: bytes, accept: bytes, tally: Tally) -> None:
        self.request = request
        self.accept = accept
        self.tally = tally
        self.parser = FrameParser()
        self.transport: asyncio.Transport | None = None
        self.hello: asyncio.Future[None] = asyncio.get_running_loop().create_future()  # the first message
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self._head = b""  # the HTTP response until its blank line
        self._upgraded = False
        self._countdown = random.randrange(tally.sample_every) + 1  # messages until the next timed one

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self._upgraded:
            self._head += data
            head, sep, rest = self._head.partition(b"\r\n\r\n")
            if not sep:
                if len(self._head) > 16384:
                    self._fail(ProtocolError("no end to the upgrade response"))
                return
            try:
                check_upgrade(head, self.accept)
            except ProtocolError as exc:
                self._fail(exc)
                return
            self._upgraded, self._head = True, b""
            if not rest:
                return
            data = rest
        try:
            messages = self.parser.feed(data)
        except ProtocolError as exc:
            self._fail(exc)
            return
        tally = self.tally
        now = 0.0
        for opcode, payload in messages:
            if opcode == OP_TEXT:
                tally.delivered += payload.count(MARKER)
                tally.messages += 1
                if not self.hello.done():
                    self.hello.set_result(None)
                self._countdown -= 1
                if not self._countdown:
                    self._countdown = tally.sample_every
                    now = now or time.time()
                    tally.time_message(payload, now)
            elif opcode == OP_PING:
                self._send(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self._send(OP_CLOSE, payload[:2])
                assert self.transport is not None
                self.transport.close()

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload))

    def _fail(self, exc: Exception) -> None:
        if not self.hello.done():
            self.hello.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def close(self, code: int = 1000) -> None:
        """Say goodbye (a close frame) and end the connection."""
        self._send(OP_CLOSE, code.to_bytes(2, "big"))
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.hello.done():
            self.hello.set_exception(exc or ConnectionError("closed before the first message"))
        if not self.closed.done():
            self.closed.set_result(None)


async def open_subscribers(url: str, count: int, tally: Tally, *, concurrency: int = 200) -> list[Subscriber]:
    """``count`` sockets to ``url`` (``ws://host:port/path?query``), each past its first message (hello)."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname:
        raise ValueError(f"a ws:// URL, not {url!r}")
    host, port = parts.hostname, parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)

    async def one() -> Subscriber:
        request, accept = upgrade_request(parts.netloc, target)
        async with gate:
            _, sub = await loop.create_connection(lambda: Subscriber(request, accept, tally), host, port)
            await sub.hello
        return sub

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def close_all(subs: list[Subscriber]) -> None:
    """Close every socket; wait (a few seconds at most) for the server to let go of them."""
    for sub in subs:
        sub.close()
    if subs:
        await asyncio.wait([asyncio.ensure_future(s.closed) for s in subs], timeout=5.0)


def run(main: Callable[[], Any]) -> Any:
    """``asyncio.run(main())`` on uvloop when it is importable (it is with ``uvicorn[standard]``)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())
