"""Live transports over ``follow()``: WebSocket ``/api/v1/stream`` and SSE ``/api/v1/stream/sse``.

Both only encode what the follower yields. A WebSocket client that stops reading for longer
than ``send_timeout_s`` is closed with 1001 ("going away: reconnect and resume with after=");
until then its queue overflowing just sends it to the database catch-up path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
from ..stream.turn import at_end_of_turn
from .responses import JSON, error_response, query_lists, runtime
from .security import chosen_subprotocol, principal_of
from .wsdirect import DirectWriter

log = logging.getLogger("orchlog.stream")


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
    (nothing queued, nothing in the transport's buffer) skips the queue: see ``_put_direct``.

    The writing task starts with the first frame that has to wait (``_queue``), and its queue
    and wake-ups exist only while needed: an idle stream whose client keeps up holds none of
    them (thousands of idle subscribers, each a few KB lighter)."""

    def __init__(self, ws: WebSocket, send_timeout: float, direct: DirectWriter | None = None) -> None:
        self._ws = ws
        self._send_timeout = send_timeout
        self.texts: deque[str | int] | None = None  # an int is the end: the close code
        self.bytes = 0
        self._direct = direct
        self._pending: list[str] = []  # the fast lane (see _put_direct)
        self._pending_bytes = 0
        self._flush_soon = False
        self._sending = False  # the drain task is sending a burst through the ASGI send
        self._ready: asyncio.Future[None] | None = None  # the drain task waits for frames
        self._space: asyncio.Future[None] | None = None  # a put waits for room
        self.task: asyncio.Task[int] | None = None  # the drain task, once started
        self._stopped = False  # torn down: no drain task starts any more
        self.on_done: Callable[[asyncio.Task[int]], None] | None = None

    @property
    def direct_capable(self) -> bool:
        return self._direct is not None

    def full(self) -> bool:
        texts = self.texts
        return (texts is not None and len(texts) >= OUTBOX_MESSAGES) or self.bytes >= OUTBOX_BYTES

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
            if self._space is None:
                self._space = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._space)  # one future for every waiting put
        self._queue().append(text)
        self.bytes += len(text)
        self._kick()

    def _queue(self) -> deque[str | int]:
        if self.texts is None:
            self.texts = deque()
        if self.task is None and not self._stopped:
            self.task = asyncio.get_running_loop().create_task(self._drain())
            if self.on_done is not None:
                self.task.add_done_callback(self.on_done)
        return self.texts

    def _kick(self) -> None:
        ready = self._ready
        if ready is not None and not ready.done():
            ready.set_result(None)

    def _put_direct(self, text: str) -> None:
        """The fast lane of a client that keeps up (nothing of ours queued or in the transport's
        buffer): frames put during one turn of the event loop are written together by a
        callback at the end of it (``at_end_of_turn``: one for every outbox), one transport write,
        without waking the drain task. At most ``BURST_BYTES`` wait for it; past that they are
        written at once."""
        self._pending.append(text)
        self._pending_bytes += len(text)
        if self._pending_bytes >= BURST_BYTES:
            self._flush()
        elif not self._flush_soon:
            self._flush_soon = True
            at_end_of_turn(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        if not self._pending:
            return
        texts = self._pending
        self._pending, self._pending_bytes = [], 0
        assert self._direct is not None
        if not self._direct.write(texts):  # no longer open: the drain task's sends will say so
            self._queue().extendleft(reversed(texts))
            self.bytes += sum(len(t) for t in texts)
            self._kick()

    def end(self, code: int, *, discard: bool = False) -> None:
        if discard:
            self._pending, self._pending_bytes = [], 0
            if self.texts is not None:
                self.texts.clear()
            self.bytes = 0
        else:
            self._flush()  # the fast lane's frames go out before the end
        self._queue().append(code)
        self._kick()

    def stop(self) -> asyncio.Task[int] | None:
        """Cancel the drain task (if any) and start none later; it is returned to be awaited."""
        self._stopped = True
        task = self.task
        if task is not None:
            task.cancel()
        return task

    def _burst(self) -> tuple[list[str], int | None]:
        """What is queued now (up to ``BURST_BYTES``), and the close code if the end came with it."""
        texts, size = self.texts, 0
        assert texts is not None  # only the drain task bursts, and it exists because frames were queued
        burst: list[str] = []
        while texts and size < BURST_BYTES:
            item = texts.popleft()
            if isinstance(item, int):
                return burst, item
            burst.append(item)
            size += len(item)
        self.bytes -= size
        space = self._space
        if space is not None:
            self._space = None
            if not space.done():
                space.set_result(None)
        return burst, None

    async def _drain(self) -> int:
        """Write until the end marker; its close code. TimeoutError if the client stops reading."""
        loop = asyncio.get_running_loop()
        direct, ws, send_timeout = self._direct, self._ws, self._send_timeout
        while True:
            if not self.texts:
                self._ready = loop.create_future()
                try:
                    await self._ready
                finally:
                    self._ready = None
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


def _drain_code(task: asyncio.Task[int]) -> int:
    """The close code the drain task ended with: 1001 if the client stopped reading, else its result."""
    if task.cancelled():
        return 0
    exc = task.exception()
    if exc is None:
        return task.result()
    return CLOSE_GOING_AWAY if isinstance(exc, TimeoutError) else 0


async def run_socket(
    ws: WebSocket,
    frames: AsyncGenerator[Frame, None],
    encoder: Encoder,
    send_timeout: float,
    on_message: OnMessage | None = None,
    follower: Follower | None = None,
) -> None:
    """Pump frames to the socket while answering the client's pings, until either side ends.

    Two tasks per stream, not four: the pump (the follower) runs in its own task, the client's
    messages are read here, in the connection's own task, and the outbox starts its writing task
    only once a frame has to wait. When the writing ends (the stream's end, or a client that
    stopped reading) it interrupts the read here, the way ``asyncio.timeout`` does.

    Given the ``follower`` behind ``frames``, live events can also be
    handed over by the hub itself while the follower waits (``Follower.direct``, and for batched
    streams ``Follower.direct_batch``): encoded and put in the outbox's fast lane, without waking
    the pump task."""
    outbox = Outbox(ws, send_timeout, DirectWriter.of(ws.scope))
    if follower is not None and outbox.direct_capable:

        def send_now(frame: Event | list[Event]) -> bool:
            text = encoder(frame)
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
        except asyncio.CancelledError:
            outbox.end(0)
            raise
        except Exception:
            log.exception("stream %s failed; closing it (the client resumes with after=)", ws.url.path)
            outbox.end(0)  # without a close code: the client sees an abnormal close and reconnects
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

    me = asyncio.current_task()
    assert me is not None
    listening = True
    drained: list[int] = []

    def on_drained(task: asyncio.Task[int]) -> None:
        drained.append(_drain_code(task))
        if listening:
            me.cancel()  # interrupt the read below (taken back there: see ``uncancel``)

    outbox.on_done = on_drained
    pump_task = asyncio.create_task(pump())
    cancelling = me.cancelling()
    code = 0
    try:
        try:
            code = await listen()
        except asyncio.CancelledError:
            # ours (the drain ended) unless somebody else cancelled this task too
            if not drained or me.uncancel() > cancelling:
                raise
            code = drained[0]
        except Exception:
            log.warning("stream %s: reading the client's messages failed; closing", ws.url.path, exc_info=True)
            code = 0
        finally:
            listening = False
    finally:
        tasks = [t for t in (pump_task, outbox.stop()) if t is not None]
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
