"""follow(): one subscriber's stream, replay → live, exactly once and in order.

The order of operations is what makes it gapless:

1. register with the hub FIRST (every event the hub reads from now on is offered to us);
2. read the stream's meta (epoch, head, floor) and send ``hello``;
3. replay from the database after the cursor, with the same filter, page by page;
4. send ``live`` and switch to the hub's queue, dropping anything at or below the last sent seq.

If the queue overflows (we were slow), we leave the fan-out, page from the database at our own
pace from the last sent seq, and rejoin: nothing is lost, and nobody waited for us.
The transports (WebSocket, SSE, compat ``/ws``) only encode what this yields.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..filters import EventFilter
from ..store.base import Store
from .hub import Event, Hub, Subscription
from .turn import at_end_of_turn


@dataclass(frozen=True)
class FollowSpec:
    filter: EventFilter
    after: int | None = None  # resume after this seq (0 = from the start)
    tail: int | None = None  # or: the last N matching, then live
    epoch: str | None = None  # the client's idea of the database; a mismatch gives `reset`
    batch: bool = False  # yield lists of events (one `events` frame each) instead of one by one
    relays: bool = False  # receive orchestrator_3_stream relay messages (compat /ws)
    owner: object = None  # who reads (the principal): the runtime revokes streams by it


def _quiet(task: asyncio.Future[Any]) -> None:
    """Retrieve a cancelled read-ahead's outcome (no "exception was never retrieved")."""
    if not task.cancelled():
        task.exception()


class _OutOfTime(Exception):
    """The server is stopping and this follower's flush time is over."""


class Revoked(Exception):
    """The reader's credentials were revoked while it followed: the transport closes (4401)."""


@dataclass(frozen=True)
class FollowConfig:
    replay_page: int = 500
    tail_page: int = 2000  # seqs per backward step when locating the start of a tail=N window
    shutdown_flush_s: float = 3.0  # on shutdown, keep sending what is committed this long, then end (1001)
    heartbeat_s: float = 15.0


Frame = Event | list[Event] | dict[str, Any]
MAX_BATCH = 1000


class Follower:
    """Iterate to get frames: ``Event`` objects (sequenced) and control dicts (hello, live, ...)."""

    def __init__(self, hub: Hub, store: Store, spec: FollowSpec, config: FollowConfig, stopping: asyncio.Event) -> None:
        self.hub = hub
        self.store = store
        self.spec = spec
        self.config = config
        self.stopping = stopping
        self.cursor = 0
        self.catchups = 0
        self._sub: Subscription | None = None
        self._flush_until: float | None = None
        self._floor_told = 0  # the highest floor this client has been told about
        # the transport's synchronous send of one frame (an event, or a batch of them) when its
        # socket keeps up; see ``direct``
        self.send_now: Callable[[Event | list[Event]], bool] | None = None
        self._parked = False  # waiting in the live loop with nothing in hand
        self._held: list[Event] = []  # batched streams: events the hub handed over, not sent yet
        self._held_bytes = 0  # ... and their size: bounded like the inbox (subscriber_queue_bytes)
        self._held_flush = False  # a callback will send them at the end of this loop turn

    def close(self) -> None:
        if self._sub is not None:
            self.hub.unsubscribe(self._sub)
            self._sub = None

    async def frames(self) -> AsyncGenerator[Frame, None]:
        """The stream's frames. One generator, not a wrapper around another: every live frame
        passes each generator level once, and a level was a measurable part of a delivery."""
        try:
            async for frame in self._start():
                yield frame
            while not self.stopping.is_set():
                sub = self._sub
                assert sub is not None
                if not self._held:  # (events handed over while a heartbeat was sent: no waiting)
                    self._parked = True
                    try:
                        woke = await self._wait(sub)
                    finally:
                        self._parked = False
                    if not woke:
                        yield {"type": "heartbeat", "head_seq": max(self.hub.cursor, self.cursor)}
                        continue
                if sub.revoked:
                    raise Revoked()
                held = self._held
                if held:  # handed over by the hub (direct_batch), older than anything queued
                    self._held, self._held_bytes = [], 0
                    self.cursor = held[-1].seq
                    for frame in self._emit(held):
                        yield frame
                notices = sub.notices
                while notices:
                    yield notices.popleft()
                fresh = self._take(sub)
                if fresh:
                    for frame in self._emit(fresh):
                        yield frame
                    continue
                if sub.overflowed:
                    # we fell behind: leave the fan-out, read the database at our own pace, rejoin
                    self.catchups += 1
                    self.hub.unsubscribe(sub)
                    self._sub = self._subscribe()
                    async for frame in self._replay():
                        yield frame
                elif sub.closed:
                    return
            # shutting down: hand over everything committed so far, then the transport says 1001
            async for frame in self._replay():
                yield frame
        except _OutOfTime:
            return  # the transport closes with 1001: the client resumes with after=<last seq>
        finally:
            self.close()

    async def _start(self) -> AsyncGenerator[Frame, None]:
        """Subscribe, hello (and a reset if the cursor needs one), the replay, then ``live``."""
        flt = self.spec.filter
        self._sub = self._subscribe()
        meta = await self.store.meta()
        cursor, reset = self._start_cursor(meta.head_seq, meta.floor_seq, meta.epoch)
        self._floor_told = meta.floor_seq  # hello carries it (and a reset below it if needed)
        yield {
            "type": "hello",
            "epoch": meta.epoch,
            "head_seq": meta.head_seq,
            "floor_seq": meta.floor_seq,
            "after": cursor if self.spec.tail is None else meta.head_seq,
            "filter": flt.describe(),
        }
        if reset is not None:
            self.hub.resets += 1
            yield {"type": "reset", "floor_seq": meta.floor_seq, "reason": reset, "after": cursor}
        if self.spec.tail is not None:
            cursor = await self._tail_start(meta.head_seq, meta.floor_seq)
        self.cursor = cursor
        async for frame in self._replay():
            yield frame
        yield {"type": "live", "seq": self.cursor}

    def _subscribe(self) -> Subscription:
        sub = self.hub.subscribe(self.spec.filter, relays=self.spec.relays, owner=self.spec.owner)
        if self.send_now is not None:
            sub.sink = self.direct_batch if self.spec.batch else self.direct
        return sub

    def direct(self, event: Event) -> bool:
        """The hub offers a live event: send it now, from the hub's fan-out, if this follower is
        parked in the live loop (so everything before it is sent and nothing is in hand), the
        stream is not ending, and the transport can write it at once (``send_now``). Then no
        task of this stream wakes for it. Anything else: False, and it is queued as always."""
        if event.seq <= self.cursor:
            return True  # already sent (replay overlap): the queue would drop it too
        sub = self._sub
        if not self._parked or sub is None or sub.revoked or self.stopping.is_set():
            return False
        assert self.send_now is not None
        if not self.send_now(event):
            return False
        self.cursor = event.seq
        return True

    def direct_batch(self, event: Event) -> bool:
        """The batched form of ``direct``: the events the hub hands over during one turn of the
        event loop are held and sent as ONE ``events`` frame by a callback at its end (the same
        frame for every subscriber that holds the same events: see ``batch_native``). If the
        socket cannot take it then, the follower is woken and sends what is held, before
        anything queued after it, through its usual path."""
        if event.seq <= self.cursor:
            return True
        sub = self._sub
        held = self._held
        if not self._parked or sub is None or sub.revoked or self.stopping.is_set() or len(held) >= MAX_BATCH:
            return False
        size = event.size
        if held and self._held_bytes + size > sub.max_bytes:
            return False  # queued instead: the inbox's bound decides (overflow → catch-up)
        held.append(event)
        self._held_bytes += size
        if not self._held_flush:
            self._held_flush = True
            at_end_of_turn(self._send_held)
        return True

    def _send_held(self) -> None:
        self._held_flush = False
        held = self._held
        sub = self._sub
        if not held or sub is None or sub.revoked:
            return  # the follower took them (it woke first), or the stream ends without them
        assert self.send_now is not None
        if self._parked and self.send_now(held):
            self._held, self._held_bytes = [], 0
            self.cursor = held[-1].seq
        else:
            sub.poke()  # the follower sends them (first thing when it wakes)

    def _take(self, sub: Subscription) -> list[Event]:
        """Queued events above the cursor, up to ``MAX_BATCH``: everything one wake brought."""
        out: list[Event] = []
        while len(out) < MAX_BATCH:
            event = sub.pop()
            if event is None:
                break
            if event.seq > self.cursor:
                self.cursor = event.seq
                out.append(event)
        return out

    def _emit(self, events: list[Event]) -> Iterator[Frame]:
        """The frames of events in hand: batches of up to MAX_BATCH, or one by one (stopping at a
        revocation: events taken together are sent one at a time). A plain generator: the live
        loop runs it for every wake, and an async one costs a level per frame."""
        if self.spec.batch:
            for start in range(0, len(events), MAX_BATCH):
                self._check_time()
                if self._sub is not None and self._sub.revoked:
                    raise Revoked()
                yield events[start : start + MAX_BATCH]
            return
        for event in events:
            self._check_time()
            if self._sub is not None and self._sub.revoked:
                raise Revoked()
            yield event

    def _check_time(self) -> None:
        """Once the server is stopping, a follower flushes for ``shutdown_flush_s`` at most (a long
        replay would otherwise outlive the shutdown and be cut with 1012 instead of 1001)."""
        if not self.stopping.is_set():
            return
        now = time.monotonic()
        if self._flush_until is None:
            self._flush_until = now + self.config.shutdown_flush_s
        elif now > self._flush_until:
            raise _OutOfTime()

    async def _wait(self, sub: Subscription) -> bool:
        """Wait for events, notices, overflow, close or shutdown (the runtime pokes every
        subscription when it starts stopping); False when the heartbeat interval passed."""
        if self.stopping.is_set():
            return True
        return await sub.wait(self.config.heartbeat_s)

    async def _replay(self) -> AsyncGenerator[Frame, None]:
        """Everything matching after the cursor, from the database, in pages.

        The next page is read while this one is sent (one page ahead, no more: a client that
        reads nothing holds two pages). Retention may delete rows while we page (a slow reader, a
        busy pruner). The floor is read AFTER each page: if it rose above the cursor the page was
        read from, rows after the cursor may be gone, so the client gets ``reset`` (with the new
        floor) before the rows that remain, instead of a silent gap."""
        ahead: asyncio.Task[tuple[list[Event], bool, int]] | None = None
        try:
            while True:
                self._check_time()
                start = self.cursor
                if ahead is not None:
                    events, more, floor = await ahead
                    ahead = None
                    if floor > start and floor > self._floor_told:
                        # the floor rose while that page was read ahead (during our last yield):
                        # read it again now, so what follows the reset is what remains after it
                        events, more, floor = await self._read_page(start)
                else:
                    events, more, floor = await self._read_page(start)
                if self._sub is not None and self._sub.revoked:
                    raise Revoked()
                if floor > start and floor > self._floor_told:
                    # once per rise of the floor; the rows that are still there follow (age retention
                    # deletes old rows wherever they sit, so the floor may pass rows that remain)
                    self._floor_told = floor
                    self.hub.resets += 1
                    yield {"type": "reset", "floor_seq": floor, "reason": "below_floor", "after": start}
                if events:
                    self.cursor = events[-1].seq
                if more:
                    ahead = asyncio.ensure_future(self._read_page(self.cursor))
                for frame in self._emit(events):
                    yield frame
                if not more:
                    return
        finally:
            if ahead is not None:
                ahead.cancel()
                ahead.add_done_callback(_quiet)

    async def _read_page(self, after: int) -> tuple[list[Event], bool, int]:
        """One replay page after ``after`` (events with their frames spliced) and the floor read after it."""
        stored, more = await self.store.read_events(self.spec.filter, after=after, limit=self.config.replay_page)
        floor = (await self.store.meta()).floor_seq
        return [Event.of(row) for row in stored], more, floor

    async def _tail_start(self, head: int, floor: int) -> int:
        """The cursor just below the last ``tail`` matching events at or below ``head``.

        Found by paging backwards and keeping only seqs, so the events themselves are then read
        forwards by ``_replay`` page by page as the client drains them: a ``tail=100000`` stream
        whose client reads nothing holds one page, not 100,000 rows."""
        remaining = self.spec.tail or 0
        before, start = head + 1, head + 1
        while remaining > 0:
            events, more = await self.store.read_events(
                self.spec.filter, before=before, limit=min(remaining, self.config.tail_page)
            )
            if not events:
                break
            remaining -= len(events)
            start = before = events[0].seq
            if not more:
                break
        # rows at or below the floor may be half gone (retention prunes each table on its own): a
        # tail window never reaches below it, so it never needs a `reset`
        return max(start - 1, min(floor, head))

    def _start_cursor(self, head: int, floor: int, epoch: str) -> tuple[int, str | None]:
        spec = self.spec
        if spec.epoch is not None and spec.epoch != epoch:
            return floor, "epoch_changed"
        if spec.after is None:
            return head, None
        if spec.after < floor:
            # rows after the cursor may be gone: say so, then deliver every row that remains (age
            # retention deletes old rows wherever their seq is, so the floor may pass live rows)
            return spec.after, "below_floor"
        if spec.after > head:
            return floor, "cursor_ahead_of_head"
        return spec.after, None
