"""Several WebSocket messages in ONE transport write, under uvicorn's ``websockets`` implementations.

The ASGI path writes each message with its own ``transport.write`` (a syscall and, on loopback, a
packet each): for single-event frames that was most of the server's CPU per delivery. When the
server is uvicorn with one of its ``websockets`` implementations (the legacy protocol, or the
sans-I/O one, ``--ws websockets-sansio``), the outermost middleware hands the
connection's protocol object to the endpoint (in the scope), and a burst of queued messages is
framed here (each still its own message, the way ``websockets.broadcast`` frames them) and
written in one go, then flow control is honoured (``drain``). Anything else (another server,
another implementation, a connection no longer open) uses the ordinary ASGI send.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, cast

from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.frames import Frame, Opcode
from websockets.protocol import State

SCOPE_KEY = "orchlog.ws_protocol"
UVICORN_LEGACY = "uvicorn.protocols.websockets.websockets_impl"
UVICORN_SANSIO = "uvicorn.protocols.websockets.websockets_sansio_impl"


class _LegacyProtocol(Protocol):
    """What we use of websockets' legacy ``WebSocketServerProtocol`` (uvicorn's base class)."""

    state: State
    extensions: Sequence[Any]
    transport: Any

    async def drain(self) -> None: ...


class _StateHolder(Protocol):
    state: State
    extensions: Sequence[Any]


class _SansioProtocol(Protocol):
    """What we use of uvicorn's sans-I/O ``WebSocketsSansIOProtocol``: the websockets
    ``ServerProtocol`` it drives (state, extensions), its transport, and its flow-control event."""

    conn: _StateHolder
    transport: Any
    writable: Any  # asyncio.Event: cleared while the transport is paused


class CaptureWsProtocol:
    """Pure ASGI middleware (outermost): remember the uvicorn protocol behind a WebSocket's send."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            owner = getattr(send, "__self__", None)
            if owner is not None and type(owner).__module__ in (UVICORN_LEGACY, UVICORN_SANSIO):
                scope[SCOPE_KEY] = owner
        await self.app(scope, receive, send)


FRAMES_CACHED_BYTES = 4 * 1024 * 1024


class FrameCache:
    """Framed bytes of the texts many sockets send alike, made once.

    A server frame is unmasked, so without extensions (no compression) it is the same bytes for
    every connection: the hub's events encode each text once for everybody, and framing it once
    too saves every other subscriber an encode, a copy and websockets' frame header code. Keyed
    by the text itself (the shared ``str`` object: a dict lookup compares its identity first);
    bounded by bytes, emptied at once when full (the texts worth keeping are the newest)."""

    def __init__(self, max_bytes: int = FRAMES_CACHED_BYTES) -> None:
        self._frames: dict[str, bytes] = {}
        self._bytes = 0
        self._max = max_bytes

    def framed(self, text: str) -> bytes:
        frame = self._frames.get(text)
        if frame is None:
            frame = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=())
            if self._bytes + len(frame) > self._max:
                self._frames.clear()
                self._bytes = 0
            self._frames[text] = frame
            self._bytes += len(frame)
        return frame


SHARED_FRAMES = FrameCache()


class DirectWriter:
    """Frames text messages and writes a burst of them at once on the captured protocol."""

    __slots__ = ("_cache", "_drain", "_holder", "_transport")

    def __init__(self, protocol: object, cache: FrameCache = SHARED_FRAMES) -> None:
        # read per write, so looked up once here: the legacy protocol holds state and extensions
        # itself, the sans-I/O one in its websockets ``ServerProtocol``; flow control is the
        # legacy ``drain()`` or the sans-I/O ``writable`` event. The transport is the
        # connection's for its whole life (set before the application runs).
        self._holder: _StateHolder
        if type(protocol).__module__ == UVICORN_SANSIO:
            sansio = cast(_SansioProtocol, protocol)
            self._holder, self._drain, self._transport = sansio.conn, sansio.writable.wait, sansio.transport
        else:
            legacy = cast(_LegacyProtocol, protocol)
            self._holder, self._drain, self._transport = legacy, legacy.drain, legacy.transport
        self._cache = cache

    @classmethod
    def of(cls, scope: Scope) -> DirectWriter | None:
        protocol = scope.get(SCOPE_KEY)
        return cls(protocol) if protocol is not None else None

    def write(self, texts: Sequence[str]) -> bool:
        """Write every message in one transport write; False (nothing written) unless open."""
        holder, transport = self._holder, self._transport
        if holder.state is not State.OPEN or transport is None or transport.is_closing():
            return False
        extensions = holder.extensions
        if extensions:  # compression: each connection's frames are its own
            data = b"".join(Frame(Opcode.TEXT, t.encode()).serialize(mask=False, extensions=extensions) for t in texts)
        else:
            framed = self._cache.framed
            data = framed(texts[0]) if len(texts) == 1 else b"".join(framed(t) for t in texts)
        transport.write(data)
        return True

    def idle(self) -> bool:
        """Open, with nothing waiting in the transport's buffer: a write now goes out at once,
        in order after everything written before (nothing of this socket's is still queued)."""
        transport = self._transport
        return (
            self._holder.state is State.OPEN
            and transport is not None
            and not transport.is_closing()
            and transport.get_write_buffer_size() == 0
        )

    async def drain(self) -> None:
        """Wait while the transport's buffer is over its high-water mark (the client reads slowly)."""
        await self._drain()
