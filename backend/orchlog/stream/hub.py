"""The hub: one tail loop per process that reads new rows ONCE and fans them out.

Wake-ups come from the local writer (``announce``, near-zero latency) and from other processes
committing to the same database (``Store.changed``, polled every ``poll_interval``). Each wake-up
reads every row after the hub's cursor in pages, wraps each in an ``Event`` (encoded lazily, at
most once per wire format) and offers it to every subscription whose filter matches. A
subscription whose bounded queue overflows is dropped from the fan-out at once: the hub never
waits for a subscriber; that subscriber catches up from the database by itself (``follow``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from ..filters import EventFilter
from ..store.base import RawRow, Store, StoredEvent, jsonable
from .index import SubscriptionIndex

log = logging.getLogger("orchlog.hub")
IDLE_POLL_S = 0.25  # the data_version poll with no subscribers (the 5 ms one costs CPU for nobody)
FANOUT_SLICE_S = 0.005  # fan-out gives the event loop back at least this often (health, ingest, sends)

Encoder = Callable[["Event"], str]


class Event:
    """A committed event shared by every subscriber; each wire encoding is made once."""

    __slots__ = ("_batch", "_frames", "data", "kind", "seq")

    def __init__(self, kind: str, seq: int, data: Mapping[str, Any]) -> None:
        self.kind = kind
        self.seq = seq
        self.data = data
        self._frames: dict[str, str] = {}
        self._batch: tuple[tuple[int, ...], str] | None = None  # see batch_native

    @classmethod
    def of(cls, stored: StoredEvent) -> Event:
        event = cls(stored.kind, stored.seq, stored.data)
        if isinstance(stored.data, RawRow):
            # the database rendered the row as JSON: splice it, the bytes encode_native would give
            event._frames["native"] = f'{{"type":"{stored.kind}","seq":{stored.seq},"data":{stored.data.text}}}'
        return event

    def encoded(self, fmt: str, encoder: Encoder) -> str:
        frame = self._frames.get(fmt)
        if frame is None:
            frame = self._frames[fmt] = encoder(self)
        return frame

    @property
    def native(self) -> str:
        return self.encoded("native", encode_native)

    @property
    def size(self) -> int:
        return len(self.native)


def batch_native(events: list[Event]) -> str:
    """One ``events`` frame of these events, the same ``str`` for every subscriber that takes
    the same events in one wake (the subscribers of one filter, live): built once, kept on the
    last event, so the socket layer can frame it once too. The seqs are compared, not assumed:
    two filters can take different events that end with the same one."""
    last = events[-1]
    seqs = tuple(event.seq for event in events)
    cached = last._batch
    if cached is not None and cached[0] == seqs:
        return cached[1]
    text = '{"type":"events","items":[' + ",".join(event.native for event in events) + "]}"
    last._batch = (seqs, text)
    return text


def encode_native(event: Event) -> str:
    return orjson.dumps({"type": event.kind, "seq": event.seq, "data": event.data}, default=jsonable).decode()


class Subscription:
    """One subscriber's bounded inbox (by count and by bytes) plus its entity notices."""

    def __init__(
        self, flt: EventFilter, *, max_events: int, max_bytes: int, relays: bool = False, owner: object = None
    ) -> None:
        self.filter = flt
        self.relays = relays  # orchestrator_3_stream relay messages (compat /ws only)
        self.owner = owner  # who reads (the API's principal); opaque here, used by ``Hub.revoke``
        self.revoked = False
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.events: deque[Event] = deque()
        self.notices: deque[dict[str, Any]] | None = None  # made on the first notice (most streams get none)
        self.bytes = 0
        self.overflowed = False
        self.closed = False
        # the reader's own delivery, tried before the inbox (see Follower.direct): True if it
        # took the event; only ever while nothing is queued, so order is kept
        self.sink: Callable[[Event], bool] | None = None
        # the waiting reader's future, only while it waits: an idle stream holds a future and a
        # timer, not an asyncio.Event with its deque (thousands of idle streams add up)
        self._waiter: asyncio.Future[bool] | None = None

    def offer(self, event: Event) -> bool:
        """Queue an event; False (and overflowed) if the inbox is full: the hub then forgets us."""
        if self.overflowed or self.closed:
            return False
        sink = self.sink
        if sink is not None and not self.events and not self.notices and sink(event):
            return True
        size = event.size
        if len(self.events) >= self.max_events or self.bytes + size > self.max_bytes:
            self.overflowed = True
            self._wake()
            return False
        self.events.append(event)
        self.bytes += size
        if self._waiter is not None:
            self._wake()
        return True

    def notify(self, notice: dict[str, Any]) -> None:
        if not self.closed:
            if self.notices is None:
                self.notices = deque(maxlen=256)
            self.notices.append(notice)
            self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def revoke(self) -> None:
        """The reader may no longer read (its token was revoked): its follower ends the stream."""
        self.revoked = True
        self.close()

    def pop(self) -> Event | None:
        if not self.events:
            return None
        event = self.events.popleft()
        self.bytes -= event.size
        return event

    async def wait(self, within: float) -> bool:
        """Wait until something is queued, overflow or close; False on timeout. One reader."""
        if self.events or self.notices or self.overflowed or self.closed:
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        timer = loop.call_later(within, _settle, waiter, False)
        self._waiter = waiter
        try:
            return await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def poke(self) -> None:
        """Wake the waiting follower without queuing anything (e.g. the server is stopping)."""
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            _settle(waiter, True)


def _settle(waiter: asyncio.Future[bool], woke: bool) -> None:
    if not waiter.done():
        waiter.set_result(woke)


class Hub:
    def __init__(
        self,
        store: Store,
        *,
        poll_interval: float,
        idle_poll_interval: float | None = None,
        page: int,
        queue_events: int,
        queue_bytes: int,
    ) -> None:
        self._store = store
        self._poll_interval = poll_interval
        # nobody listens: other processes' commits only move the cursor, so look for them rarely
        # (the local writer still wakes us at once, and the first subscriber switches back)
        self._idle_poll_interval = max(poll_interval, IDLE_POLL_S if idle_poll_interval is None else idle_poll_interval)
        self._page = page
        self._queue_events = queue_events
        self._queue_bytes = queue_bytes
        self._subs: SubscriptionIndex[Subscription] = SubscriptionIndex()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.cursor = 0
        self._announced = 0
        self.overflows = 0
        self.resets = 0
        self.reads = 0
        self.polls = 0  # data_version checks (looking for other processes' commits)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    async def start(self) -> None:
        self.cursor = await self._store.head_seq()
        await self._store.poll_tail(self.cursor, 1)  # prime data_version
        self._task = asyncio.create_task(self._run(), name="orchlog-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for sub in self._subs:
            sub.close()
        self._subs.clear()

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- wiring
    def announce(self, head_seq: int) -> None:
        """The local writer committed up to head_seq (called on the event loop)."""
        self._announced = max(self._announced, head_seq)
        if head_seq > self.cursor:
            self._wake.set()

    def subscribe(self, flt: EventFilter, *, relays: bool = False, owner: object = None) -> Subscription:
        """Register BEFORE reading the database: every event after ``self.cursor`` will be offered."""
        sub = Subscription(flt, max_events=self._queue_events, max_bytes=self._queue_bytes, relays=relays, owner=owner)
        first = not self._subs
        self._subs.add(sub)
        if first:
            self._wake.set()  # the loop may sit in an idle (slow) poll: back to the normal rate now
        return sub

    def revoke(self, refused: Callable[[object], bool]) -> int:
        """Close every subscription whose owner ``refused`` says may no longer read; how many."""
        gone = [sub for sub in self._subs if sub.owner is not None and refused(sub.owner)]
        for sub in gone:
            self._subs.discard(sub)
            sub.revoke()
        return len(gone)

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def wake_all(self) -> None:
        """Make every follower look at its state now (used when the server starts stopping)."""
        for sub in self._subs:
            sub.poke()

    def notify(self, notice: dict[str, Any], agent_id: str | None = None, *, relay: bool = False) -> None:
        """Entity changes (not sequenced) to every subscriber that may see that agent. A ``relay``
        (orchestrator_3_stream clients re-broadcasting; origin unknown) goes only to relay-aware
        subscribers that are not narrowed to some agents."""
        for sub in self._subs:
            ids = sub.filter.agent_ids
            if relay:
                if sub.relays and not ids:
                    sub.notify(notice)
            elif agent_id is None or not ids or agent_id in ids:
                sub.notify(notice)

    # -- the loop
    async def _run(self) -> None:
        while True:
            try:
                interval = self._poll_interval if self._subs else self._idle_poll_interval
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await self._wake.wait()
                announced = self._wake.is_set()
                self._wake.clear()
                if not announced:
                    self.polls += 1
                if not self._subs:
                    # Nobody listens: skip reading rows. A subscriber that registers later replays
                    # from the database up to the head it reads after registering, so the cursor
                    # may jump, but only in the same step that saw no subscriber (no await in
                    # between): one registering during an await must get its events offered.
                    if announced:
                        self.cursor = max(self.cursor, self._announced)
                    elif await self._store.poll_tail(self.cursor, 0) is not None:
                        head = await self._store.head_seq()
                        if not self._subs:
                            self.cursor = max(self.cursor, head)
                        else:
                            self._wake.set()  # someone arrived meanwhile: read rows next round
                    continue
                if announced:
                    rows = await self._store.tail(self.cursor, self._page)
                else:
                    # one hop: did anybody (another process) commit? if so, the new rows
                    polled = await self._store.poll_tail(self.cursor, self._page)
                    if polled is None:
                        continue
                    rows = polled
                while rows:
                    await self._fan_out(rows)
                    if len(rows) < self._page:
                        break
                    rows = await self._store.tail(self.cursor, self._page)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("hub read failed; retrying")
                await asyncio.sleep(min(1.0, self._poll_interval * 20))

    async def _fan_out(self, rows: list[StoredEvent]) -> None:
        """Offer each row to every subscription whose filter matches: each distinct filter is
        evaluated once per event (with the event's folded text shared between ``q`` filters),
        only where the index says it can match, and the loop is given back every few ms.

        A subscriber that registers during such a pause may miss rows offered before it: that is
        safe, because it replays from the database after registering, and every row the hub has
        read is committed, so its replay holds them."""
        self.reads += 1
        subs = self._subs
        pause_at = time.perf_counter() + FANOUT_SLICE_S
        for stored in rows:
            event = Event.of(stored)
            folded: dict[str, str] = {}
            for flt, group in subs.candidates(event.kind, event.data, folded):
                if flt.matches(event.kind, event.data, folded):
                    for sub in tuple(group):
                        if not sub.offer(event):
                            subs.discard(sub)
                            self.overflows += 1
            self.cursor = stored.seq
            if time.perf_counter() >= pause_at:
                await asyncio.sleep(0)
                pause_at = time.perf_counter() + FANOUT_SLICE_S
