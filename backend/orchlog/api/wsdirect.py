"""Several WebSocket messages in ONE transport write, under uvicorn's ``websockets`` implementation.

The ASGI path writes each message with its own ``transport.write`` (a syscall and, on loopback, a
packet each): for single-event frames that was most of the server's CPU per delivery. When the
server is uvicorn with the ``websockets`` implementation, the outermost middleware hands the
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
UVICORN_WEBSOCKETS = "uvicorn.protocols.websockets.websockets_impl"


class _LegacyProtocol(Protocol):
    """What we use of websockets' legacy ``WebSocketServerProtocol`` (uvicorn's base class)."""

    state: State
    extensions: Sequence[Any]
    transport: Any

    async def drain(self) -> None: ...


class CaptureWsProtocol:
    """Pure ASGI middleware (outermost): remember the uvicorn protocol behind a WebSocket's send."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            owner = getattr(send, "__self__", None)
            if owner is not None and type(owner).__module__ == UVICORN_WEBSOCKETS:
                scope[SCOPE_KEY] = owner
        await self.app(scope, receive, send)


class DirectWriter:
    """Frames text messages and writes a burst of them at once on the captured protocol."""

    def __init__(self, protocol: object) -> None:
        self._protocol = cast(_LegacyProtocol, protocol)

    @classmethod
    def of(cls, scope: Scope) -> DirectWriter | None:
        protocol = scope.get(SCOPE_KEY)
        return cls(protocol) if protocol is not None else None

    def write(self, texts: Sequence[str]) -> bool:
        """Write every message in one transport write; False (nothing written) unless open."""
        proto = self._protocol
        if proto.state is not State.OPEN or proto.transport is None or proto.transport.is_closing():
            return False
        extensions = proto.extensions
        proto.transport.write(
            b"".join(Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=extensions) for text in texts)
        )
        return True

    async def drain(self) -> None:
        """Wait while the transport's buffer is over its high-water mark (the client reads slowly)."""
        await self._protocol.drain()
