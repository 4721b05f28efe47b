"""The live follower: one WebSocket stream that reconnects by itself and resumes after the last seq.

Apart from the HTTP calls because it is the one stateful part of the client: it keeps the resume
position across connections, reads the server's frames (single events, ``events`` batches, hello,
reset) and decides which failures end the stream (a refused token, bad parameters) and which are
retried with backoff. ``websockets`` is imported only when a stream is opened, so importing the
client stays cheap for processes that only post.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from ..closecodes import CloseCode
from .errors import AuthError, OrchlogClientError
from .wire import auth_headers, ws_url

STREAM_PATH = "/api/v1/stream"
_CONNECTED: dict[str, Any] = {}  # marks, by identity, the moment a connection is open (never handed on)


@dataclass
class _Position:
    """Where the next connection resumes: after ``last``, or (before anything was seen) at ``tail``."""

    last: int | None
    first_tail: int | None

    def params(self, filters: dict[str, Any], batch: bool) -> dict[str, Any]:
        params: dict[str, Any] = dict(filters)
        if batch:
            params["batch"] = 1  # several events per frame: far cheaper at high rates
        if self.last is not None:
            params["after"] = self.last
        elif self.first_tail is not None:
            params["tail"] = self.first_tail
        return params

    def advance(self, frame: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The frames to hand on for one server frame (a batch is unpacked), moving the position
        before each one is handed on."""
        kind = frame.get("type")
        if kind in ("agent_log", "system_log"):
            self.last = frame["seq"]
        elif kind == "events":
            for item in frame.get("items", []):
                self.last = item["seq"]
                yield item
            return
        elif kind == "hello" and self.last is None:
            self.last = frame.get("after")  # only-new / tail: resume after what hello says
            self.first_tail = None
        elif kind == "reset":
            self.last = frame.get("after", frame.get("floor_seq"))
        yield frame


def _failure(exc: Exception) -> str:
    """Why a connection ended, as text for the ``disconnected`` frame; raises instead when
    retrying cannot help (the token is refused, the parameters are bad)."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status in (401, 403):
            raise AuthError(f"the server refused the stream ({status})", status=status) from exc
        if status == 400:
            raise OrchlogClientError(f"bad stream parameters: {exc.response.body!r}", status=400) from exc
        return f"HTTP {status}"
    if isinstance(exc, ConnectionClosed):
        code = exc.rcvd.code if exc.rcvd else 1006
        if code in (CloseCode.UNAUTHORIZED, CloseCode.FORBIDDEN, CloseCode.POLICY):
            raise AuthError(f"the server closed the stream: {exc.rcvd.reason if exc.rcvd else code}") from exc
        if code == CloseCode.BAD_REQUEST:
            raise OrchlogClientError(f"bad stream parameters: {exc.rcvd.reason if exc.rcvd else ''}") from exc
        return f"closed ({code})"
    return f"{type(exc).__name__}: {exc}"  # e.g. the server died mid-handshake


def _backoff(attempt: int, max_backoff: float) -> float:
    """Exponential with jitter, so many followers of a restarted server do not reconnect together."""
    return float(min(max_backoff, 0.2 * 2 ** min(attempt, 8)) * random.uniform(0.5, 1.0))


async def _connection(url: str, token: str | None, position: _Position) -> AsyncGenerator[dict[str, Any], None]:
    """The frames of one connection, until it closes or fails (the failure propagates)."""
    from websockets.asyncio.client import connect

    async with connect(
        url,
        additional_headers=auth_headers(token),
        max_size=2**25,
        open_timeout=10,
        ping_interval=20,
    ) as ws:
        yield _CONNECTED
        async for raw in ws:
            for frame in position.advance(orjson.loads(raw)):
                yield frame


async def frames(
    base_url: str,
    token: str | None,
    *,
    after: int | None,
    tail: int | None,
    reconnect: bool,
    max_backoff: float,
    batch: bool,
    filters: dict[str, Any],
) -> AsyncGenerator[dict[str, Any], None]:
    """``AsyncClient.frames``: every frame, plus ``disconnected`` before each reconnect."""
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    position = _Position(last=after, first_tail=tail)
    attempt = 0
    while True:
        url = ws_url(base_url, STREAM_PATH, position.params(filters, batch))
        try:
            async with contextlib.aclosing(_connection(url, token, position)) as connection:
                async for frame in connection:
                    if frame is _CONNECTED:
                        attempt = 0
                        continue
                    yield frame
            error = "connection closed"
        except (ConnectionClosed, OSError, TimeoutError, InvalidHandshake) as exc:
            error = _failure(exc)
        if not reconnect:
            raise OrchlogClientError(f"the stream from {base_url} ended early: {error}")
        attempt += 1
        delay = _backoff(attempt, max_backoff)
        yield {"type": "disconnected", "error": error, "retry_in": round(delay, 2), "after": position.last}
        await asyncio.sleep(delay)
