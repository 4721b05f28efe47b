"""The single writer: a bounded queue in front of one group-commit loop.

Requests put a validated write operation on the queue and await its future. The loop takes
everything queued (up to ``max_batch_events``), applies it as ONE transaction with a savepoint
per operation, and resolves each future only after COMMIT returned, so an ack always means
"durable". Then it tells its listeners the new head seq (the hub wakes on that). A full queue
is refused at once with ``Overloaded`` (503 + Retry-After), never an unbounded wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import Overloaded
from .store.base import Store, WriteOp

log = logging.getLogger("orchlog.writer")

HeadListener = Callable[[int], None]
CommitListener = Callable[[list[WriteOp], list[Any]], None]
BatchObserver = Callable[[int, float], None]


@dataclass
class _Pending:
    op: WriteOp
    future: asyncio.Future[Any]


@dataclass
class WriterStats:
    batches: int = 0
    ops: int = 0
    events: int = 0
    failed_batches: int = 0
    last_batch_ops: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark an outcome as seen: the awaiting request may have gone (client disconnected)."""
    if not future.cancelled():
        future.exception()


class Writer:
    def __init__(self, store: Store, *, queue_max: int, max_batch_events: int, retry_after: float = 1.0) -> None:
        self._store = store
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=queue_max)
        self._max_batch = max_batch_events
        self._retry_after = retry_after
        self._head_listeners: list[HeadListener] = []
        self._commit_listeners: list[CommitListener] = []
        self._observers: list[BatchObserver] = []
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.stats = WriterStats()
        self.head_seq = 0

    # -- wiring
    def on_head(self, listener: HeadListener) -> None:
        """Called with the new head seq after each commit that added events."""
        self._head_listeners.append(listener)

    def on_commit(self, listener: CommitListener) -> None:
        """Called with the committed ops and their results (entity change announcements)."""
        self._commit_listeners.append(listener)

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="orchlog-writer")

    async def stop(self) -> None:
        """Refuse new work, commit what is queued, then end the loop."""
        self._closing = True
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    # -- the request side
    async def submit(self, op: WriteOp) -> Any:
        """Queue one operation and wait for its committed result (or its own error)."""
        if self._closing:
            raise Overloaded("the server is shutting down; retry against another instance", retry_after=1.0)
        if not self.alive:
            raise Overloaded("the writer is not running", retry_after=self._retry_after)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        try:
            self._queue.put_nowait(_Pending(op, future))
        except asyncio.QueueFull:
            raise Overloaded(
                f"ingest queue is full ({self._queue.maxsize} requests waiting); retry after the delay",
                retry_after=self._retry_after,
            ) from None
        # no shield needed: cancelling this await (a client gone, a shutdown) cancels only the
        # future; the operation stays queued or in its batch and is written all the same
        return await future

    # -- the loop
    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            events = first.op.size
            while events < self._max_batch and not self._queue.empty():
                nxt = self._queue.get_nowait()
                batch.append(nxt)
                events += nxt.op.size
            try:
                await self._commit(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def on_batch(self, observer: BatchObserver) -> None:
        """Called with (events in the batch, seconds the transaction took) after each commit."""
        self._observers.append(observer)

    async def _commit(self, batch: list[_Pending]) -> None:
        ops = [p.op for p in batch]
        started = time.perf_counter()
        try:
            result = await self._store.write_batch(ops)
        except Exception as exc:
            self.stats.failed_batches += 1
            if not isinstance(exc, Overloaded):
                log.exception("write batch of %d ops failed", len(ops))
                exc = Overloaded(f"the write failed ({type(exc).__name__}); retry", retry_after=self._retry_after)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        took = time.perf_counter() - started
        for observer in self._observers:
            observer(sum(op.size for op in ops), took)
        self.stats.batches += 1
        self.stats.ops += len(ops)
        self.stats.events += sum(op.size for op in ops)
        self.stats.last_batch_ops = len(ops)
        for pending, outcome in zip(batch, result.results, strict=True):
            if pending.future.done():
                continue
            if isinstance(outcome, BaseException):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)
        if result.head_seq > self.head_seq:
            self.head_seq = result.head_seq
            for listener in self._head_listeners:
                listener(result.head_seq)
        for commit_listener in self._commit_listeners:
            try:
                commit_listener(ops, result.results)
            except Exception:
                log.exception("commit listener failed")
