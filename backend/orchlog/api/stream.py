"""Live transports over ``follow()``: WebSocket ``/api/v1/stream`` and SSE ``/api/v1/stream/sse``.

Both only encode what the follower yields. A WebSocket client that stops reading for longer
than ``send_timeout_s`` is closed with 1001 ("going away: reconnect and resume with after=");
until then its queue overflowing just sends it to the database catch-up path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..auth import Principal
from ..errors import BadParameter, Forbidden, OrchlogError
from ..filters import EventFilter, parse_int
from ..stream.follow import Follower, FollowSpec, Frame, Revoked
from ..stream.hub import Event, batch_native
from .responses import JSON, error_response, query_lists, runtime
from .security import chosen_subprotocol, principal_of
from .wsdirect import DirectWriter


async def ticket(request: Request) -> JSON:
    """A single-use, short-lived ticket for browsers: open the stream with ``?ticket=``."""
    rt = runtime(request)
    value = rt.tickets.issue(principal_of(request))
    return JSON({"ticket": value, "expires_in": rt.settings.ticket_ttl_s}, status_code=201)


CLOSE_GOING_AWAY = 1001
CLOSE_BAD_PARAMS = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_MANY = 4429

Encoder = Callable[[Frame], str | list[str] | None]
OnMessage = Callable[[dict[str, Any]], Awaitable[None]]


def follow_spec(
    params: Mapping[str, Sequence[str]], principal: Principal, last_event_id: str | None = None
) -> FollowSpec:
    flt = principal.restrict(EventFilter.from_params(params))

    def one(name: str) -> str | None:
        values = params.get(name) or []
        return values[-1] if values else None

    after = parse_int("after", one("after"))
    if last_event_id is not None and last_event_id.strip():
        after = parse_int("Last-Event-ID", last_event_id.strip())
    tail = parse_int("tail", one("tail"), maximum=100_000)
    if after is not None and tail is not None:
        raise BadParameter("tail", "give either after or tail, not both")
    epoch = one("epoch")
    batch = (one("batch") or "").lower() in ("1", "true", "yes")
    return FollowSpec(
        filter=flt, after=after, tail=tail if after is None else None, epoch=epoch, batch=batch, owner=principal
    )


def encode(frame: Frame) -> str:
    if isinstance(frame, Event):
        return frame.native
    if isinstance(frame, list):
        return batch_native(frame)
    return orjson.dumps(frame).decode()


async def stream_ws(ws: WebSocket) -> None:
    rt = ws.app.state.runtime
    subprotocol = chosen_subprotocol(ws.scope)
    try:
        spec = follow_spec(query_lists(ws), principal_of(ws))  # type: ignore[arg-type]
    except OrchlogError as exc:
        await ws.accept(subprotocol=subprotocol)
        code = CLOSE_FORBIDDEN if isinstance(exc, Forbidden) else CLOSE_BAD_PARAMS
        await ws.close(code=code, reason=exc.message[:120])
        return
    try:
        slot = rt.slots.acquire(principal_of(ws).name, client_host(ws.scope), "websocket")
    except OrchlogError as exc:
        await ws.accept(subprotocol=subprotocol)
        await ws.close(code=CLOSE_TOO_MANY, reason=exc.message[:120])
        return
    try:
        await ws.accept(subprotocol=subprotocol)
        follower = Follower(rt.hub, rt.store, spec, rt.follow_config, rt.stopping)
        await run_socket(ws, follower.frames(), encode, rt.settings.send_timeout_s, follower=follower)
    finally:
        slot.release()


def client_host(scope: Mapping[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


OUTBOX_MESSAGES = 256  # encoded frames waiting for the socket, per connection
BURST_BYTES = 256 * 1024  # written in one transport write at most (wsdirect)
OUTBOX_BYTES = 1024 * 1024  # ... and their size: beyond either the follower waits (its hub queue then
# overflows and it catches up from the database; nothing is buffered without bound)


class Outbox:
    """The frames one socket still has to write, bounded by count and bytes, written by ONE task.

    One writer means no lock per send, and one timer per burst (renewed as the burst makes
    progress) instead of one per send: the client that reads nothing for ``send_timeout`` still
    gets 1001, a client that reads gets its burst written back to back. A client that keeps up
    (nothing queued, nothing in the transport's buffer) skips the queue: see ``_put_direct``."""

    def __init__(self, direct: DirectWriter | None = None) -> None:
        self.texts: deque[str | int] = deque()  # an int is the end: the close code
        self.bytes = 0
        self._direct = direct
        self._pending: list[str] = []  # the fast lane (see _put_direct)
        self._pending_bytes = 0
        self._flush_soon = False
        self._sending = False  # the drain task is sending a burst through the ASGI send
        self._ready = asyncio.Event()
        self._space = asyncio.Event()

    @property
    def direct_capable(self) -> bool:
        return self._direct is not None

    def full(self) -> bool:
        return len(self.texts) >= OUTBOX_MESSAGES or self.bytes >= OUTBOX_BYTES

    def put_now(self, text: str) -> bool:
        """The fast lane if it is open now (see ``_put_direct``); False, and nothing done, if not."""
        direct = self._direct
        if direct is not None and not self.texts and not self._sending and (self._pending or direct.idle()):
            self._put_direct(text)
            return True
        return False

    async def put(self, text: str) -> None:
        if self.put_now(text):
            return
        while self.full():
            self._space.clear()
            await self._space.wait()
        self.texts.append(text)
        self.bytes += len(text)
        self._ready.set()

    def _put_direct(self, text: str) -> None:
        """The fast lane of a client that keeps up (nothing of ours queued or in the transport's
        buffer): frames put during one turn of the event loop are written together by a
        callback at the end of it, one transport write, without waking the drain task. At most
        ``BURST_BYTES`` wait for it; past that they are written at once."""
        self._pending.append(text)
        self._pending_bytes += len(text)
        if self._pending_bytes >= BURST_BYTES:
            self._flush()
        elif not self._flush_soon:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        if not self._pending:
            return
        texts = self._pending
        self._pending, self._pending_bytes = [], 0
        assert self._direct is not None
        if not self._direct.write(texts):  # no longer open: the drain task's sends will say so
            self.texts.extendleft(reversed(texts))
            self.bytes += sum(len(t) for t in texts)
            self._ready.set()

    def end(self, code: int, *, discard: bool = False) -> None:
        if discard:
            self._pending, self._pending_bytes = [], 0
            self.texts.clear()
            self.bytes = 0
        else:
            self._flush()  # the fast lane's frames go out before the end
        self.texts.append(code)
        self._ready.set()

    def _burst(self) -> tuple[list[str], int | None]:
        """What is queued now (up to ``BURST_BYTES``), and the close code if the end came with it."""
        texts, size = self.texts, 0
        burst: list[str] = []
        while texts and size < BURST_BYTES:
            item = texts.popleft()
            if isinstance(item, int):
                return burst, item
            burst.append(item)
            size += len(item)
        self.bytes -= size
        self._space.set()
        return burst, None

    async def drain(self, ws: WebSocket, send_timeout: float) -> int:
        """Write until the end marker; its close code. TimeoutError if the client stops reading."""
        loop = asyncio.get_running_loop()
        direct = self._direct
        while True:
            if not self.texts:
                self._ready.clear()
                await self._ready.wait()
                continue
            async with asyncio.timeout(send_timeout) as budget:
                renewed = loop.time()
                while self.texts:
                    burst, code = self._burst()
                    if direct is not None and burst and direct.write(burst):
                        await direct.drain()  # one write for the burst; wait only if the client lags
                    else:
                        # the ASGI send (the socket was not open for a direct write yet): the fast
                        # lane waits until this burst is out, or it could overtake its rest
                        self._sending = True
                        try:
                            for text in burst:
                                await ws.send_text(text)
                        finally:
                            self._sending = False
                    if code is not None:
                        return code
                    now = loop.time()
                    if now - renewed > send_timeout / 4:  # progress: push the deadline (rarely)
                        budget.reschedule(now + send_timeout)
                        renewed = now


async def run_socket(
    ws: WebSocket,
    frames: AsyncGenerator[Frame, None],
    encoder: Encoder,
    send_timeout: float,
    on_message: OnMessage | None = None,
    follower: Follower | None = None,
) -> None:
    """Pump frames to the socket while answering the client's pings, until either side ends.

    Given the ``follower`` behind ``frames``, live events of a single-event stream can also be
    handed over by the hub itself while the follower waits (``Follower.direct``): encoded and put
    in the outbox's fast lane, without waking the pump task."""
    outbox = Outbox(DirectWriter.of(ws.scope))
    if follower is not None and outbox.direct_capable:

        def send_now(event: Event) -> bool:
            text = encoder(event)
            return isinstance(text, str) and outbox.put_now(text)

        follower.send_now = send_now

    async def pump() -> None:
        try:
            async for frame in frames:
                encoded = encoder(frame)
                for text in [encoded] if isinstance(encoded, str) else encoded or ():
                    await outbox.put(text)
        except Revoked:
            outbox.end(CLOSE_UNAUTHORIZED, discard=True)  # fail closed: nothing more after revocation
        except BaseException:
            outbox.end(0)  # an unexpected error: end without a close code (as before)
            raise
        else:
            outbox.end(CLOSE_GOING_AWAY)  # after everything queued: the client resumes with after=

    async def listen() -> int:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return 0
            raw = message.get("text") or message.get("bytes")
            try:
                data = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                continue  # like the original: non-JSON text is a keep-alive
            if isinstance(data, dict) and data.get("type") == "ping":
                await outbox.put(PONG)
            elif isinstance(data, dict) and on_message is not None:
                await on_message(data)

    pump_task = asyncio.create_task(pump())
    send_task = asyncio.create_task(outbox.drain(ws, send_timeout))
    listen_task = asyncio.create_task(listen())
    code = 0
    try:
        done, _ = await asyncio.wait({send_task, listen_task}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if exc is None:
                code = task.result()
            elif isinstance(exc, TimeoutError):
                code = CLOSE_GOING_AWAY
    finally:
        tasks: tuple[asyncio.Task[Any], ...] = (pump_task, send_task, listen_task)
        for each in tasks:
            each.cancel()
            with contextlib.suppress(BaseException):
                await each
        with contextlib.suppress(BaseException):
            await frames.aclose()
    if code:
        reason = CLOSE_REASONS.get(code, "")
        with contextlib.suppress(Exception, WebSocketDisconnect):
            await asyncio.wait_for(ws.close(code=code, reason=reason), 2)


PONG = orjson.dumps({"type": "pong"}).decode()
CLOSE_REASONS = {
    CLOSE_GOING_AWAY: "going away: reconnect and resume with after=",
    CLOSE_UNAUTHORIZED: "this token was revoked",
}


async def stream_sse(request: Request) -> Response:
    rt = request.app.state.runtime
    try:
        spec = follow_spec(query_lists(request), principal_of(request), request.headers.get("last-event-id"))
    except OrchlogError as exc:
        return error_response(exc)
    try:
        slot = rt.slots.acquire(principal_of(request).name, client_host(request.scope), "sse")
    except OrchlogError as exc:
        return error_response(exc)
    follower = Follower(rt.hub, rt.store, spec, rt.follow_config, rt.stopping)

    async def body() -> AsyncGenerator[str, None]:
        try:
            async for chunk in sse_chunks():
                yield chunk
        finally:
            slot.release()

    async def sse_chunks() -> AsyncGenerator[str, None]:
        yield "retry: 2000\n\n"
        try:
            async for chunk in sse_frames():
                yield chunk
        except Revoked:
            error = {"type": "error", "code": "unauthorized", "message": "this token was revoked"}
            yield f"event: error\ndata: {orjson.dumps(error).decode()}\n\n"

    async def sse_frames() -> AsyncGenerator[str, None]:
        async for frame in follower.frames():
            if isinstance(frame, list):
                yield "".join(f"event: {e.kind}\nid: {e.seq}\ndata: {e.native}\n\n" for e in frame)
            elif isinstance(frame, Event):
                yield f"event: {frame.kind}\nid: {frame.seq}\ndata: {frame.native}\n\n"
            elif frame.get("type") == "heartbeat":
                yield f": heartbeat head_seq={frame.get('head_seq')}\n\n"
            else:
                yield f"event: {frame.get('type')}\ndata: {orjson.dumps(frame).decode()}\n\n"

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        # a client gone before the body started never runs body()'s finally: release here too
        background=BackgroundTask(slot.release),
    )
