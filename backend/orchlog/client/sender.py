"""``EventSender``: non-blocking logging for agent processes (bounded buffer, sender thread,
batches, retries, optional spool).

Apart from the request/reply clients because it owns a thread and a queue: the producer side
(``submit`` and friends, any thread) never raises and never blocks beyond ``block_timeout``; the
sender thread alone talks to the server and to the spool.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import uuid_utils

from .spool import Policy, Spool
from .wire import DEFAULT_URL, JSON_HEADERS, auth_headers, now_iso


@dataclass
class SenderStats:
    queued: int = 0
    sent: int = 0
    duplicates: int = 0
    rejected: int = 0  # refused by the server as invalid (4xx): never retried
    dropped: int = 0  # lost to the overflow policy (buffer and spool full)
    spooled: int = 0
    retries: int = 0
    refused_status: int | None = None  # the HTTP status of the last batch refused as a whole (401, 403, 413...)
    last_error: str = ""
    errors: list[str] = field(default_factory=list)


class _Retry(Exception):
    def __init__(self, delay: float, message: str) -> None:
        super().__init__(message)
        self.delay = delay


class EventSender:
    """Non-blocking logging for agent processes: a bounded buffer, a sender thread, batches.

    - every event gets its ``id`` here, so each retry is idempotent (the server acks duplicates);
    - batches by size (``batch_size``) and time (``flush_interval``);
    - obeys ``Retry-After`` on 503/429, exponential backoff with jitter on network errors;
    - with ``spool_path``, events that cannot be sent go to a local SQLite spool and are sent
      first, in order, once the server is back;
    - when the buffer (and spool) is full, ``policy`` decides: ``block`` (the caller waits at most
      ``block_timeout``, then drops), ``drop_oldest`` or ``drop_newest``; drops are counted.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        spool_path: str | None = None,
        max_buffer: int = 10_000,
        max_spool: int = 1_000_000,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        policy: Policy = "drop_oldest",
        block_timeout: float = 1.0,
        timeout: float = 10.0,
        max_backoff: float = 30.0,
        endpoint: str = "/api/v1/events",
        assign_ids: bool = True,
    ) -> None:
        self.url = (url or os.environ.get("ORCHLOG_URL") or DEFAULT_URL).rstrip("/")
        self.endpoint = endpoint
        self.assign_ids = assign_ids
        self.token = token if token is not None else os.environ.get("ORCHLOG_TOKEN")
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.policy: Policy = policy
        self.block_timeout = block_timeout
        self.max_backoff = max_backoff
        self.stats = SenderStats()
        self._buffer: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=max_buffer)
        self._spool_path = spool_path
        self._max_spool = max_spool
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=auth_headers(self.token))
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="orchlog-sender", daemon=True)
        self._thread.start()

    # -- producer side (any thread; never raises, never blocks beyond block_timeout)
    def log_agent(self, agent_id: str, event_type: str, content: str | None = None, **fields: Any) -> None:
        fields.setdefault("event_category", "hook")
        self.submit(
            {
                "kind": "agent_log",
                "agent_id": agent_id,
                "event_type": event_type,
                "content": content,
                **fields,
            }
        )

    def log_system(self, level: str, message: str, **fields: Any) -> None:
        self.submit({"kind": "system_log", "level": level, "message": message, **fields})

    def submit(self, event: dict[str, Any]) -> None:
        """Queue one event (``kind`` = agent_log / system_log) for sending."""
        event = dict(event)
        if self.assign_ids:  # ids are what make retries idempotent
            event.setdefault("id", str(uuid_utils.uuid7()))  # time-ordered: cheap to index
            event.setdefault("timestamp", now_iso())
        try:
            if self.policy == "block":
                self._buffer.put(event, timeout=self.block_timeout)
            else:
                self._buffer.put_nowait(event)
        except queue.Full:
            if self.policy == "drop_oldest":
                with contextlib.suppress(queue.Empty):
                    self._buffer.get_nowait()
                with contextlib.suppress(queue.Full):
                    self._buffer.put_nowait(event)
            self.stats.dropped += 1
            return
        self.stats.queued += 1

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted before this call was sent (spool included).

        False on timeout (e.g. the server is down; the events stay buffered or spooled)."""
        marker = threading.Event()
        try:
            self._buffer.put(marker, timeout=timeout)  # type: ignore[arg-type]
        except queue.Full:
            return False
        return marker.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Flush (up to ``timeout``), then stop; unsent events stay in the spool if there is one."""
        self.flush(timeout)
        self._closing.set()
        self._thread.join(timeout + 5)
        self._http.close()

    def __enter__(self) -> EventSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the sender thread
    def _run(self) -> None:
        spool = Spool(self._spool_path, self._max_spool) if self._spool_path else None
        backoff = 0.0
        markers: list[threading.Event] = []  # flush() calls waiting for everything before them
        try:
            while not self._closing.is_set():
                batch, new_markers = self._take_batch()
                markers += new_markers
                try:
                    if spool is not None and (len(spool) or (batch and backoff)):
                        if batch:
                            self.stats.dropped += spool.push(batch, self.policy)
                            self.stats.spooled += len(batch)
                            batch = []
                        while len(spool):
                            pending = spool.peek(self.batch_size)
                            self._send([item for _, item in pending])
                            spool.remove_through(pending[-1][0])
                    elif batch:
                        self._send(batch)
                    backoff = 0.0
                    for marker in markers:
                        marker.set()
                    markers.clear()
                except _Retry as retry:
                    self.stats.retries += 1
                    self.stats.last_error = str(retry)
                    if spool is not None and batch:
                        self.stats.dropped += spool.push(batch, self.policy)
                        self.stats.spooled += len(batch)
                    elif batch:
                        self._requeue(batch)
                    backoff = min(self.max_backoff, max(retry.delay, backoff * 2 or 0.1))
                    markers += self._wait_out(backoff * random.uniform(0.8, 1.2), spool)
        finally:
            if spool is not None:
                leftovers = [e for e in self._drain_buffer() if isinstance(e, dict)]
                if leftovers:
                    self.stats.dropped += spool.push(leftovers, self.policy)
                spool.close()

    def _take_batch(self, within: float | None = None) -> tuple[list[dict[str, Any]], list[threading.Event]]:
        """Up to batch_size events or flush_interval seconds; stops early at a flush marker."""
        batch: list[dict[str, Any]] = []
        markers: list[threading.Event] = []
        deadline = time.monotonic() + (self.flush_interval if within is None else within)
        while len(batch) < self.batch_size:
            left = deadline - time.monotonic()
            try:
                item: Any = self._buffer.get(timeout=left) if left > 0 else self._buffer.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, threading.Event):
                markers.append(item)
                break
            batch.append(item)
        return batch, markers

    def _drain_buffer(self) -> list[Any]:
        out: list[Any] = []
        while True:
            try:
                out.append(self._buffer.get_nowait())
            except queue.Empty:
                return out

    def _wait_out(self, seconds: float, spool: Spool | None) -> list[threading.Event]:
        """Back off before the next attempt, but keep draining the buffer into the spool meanwhile:
        the overflow policy must only bite when the spool itself is full."""
        deadline = time.monotonic() + seconds
        markers: list[threading.Event] = []
        while not self._closing.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if spool is None:
                self._closing.wait(min(left, 0.25))
                continue
            batch, new_markers = self._take_batch(min(left, self.flush_interval))
            markers += new_markers
            if batch:
                self.stats.dropped += spool.push(batch, self.policy)
                self.stats.spooled += len(batch)
        return markers

    def _requeue(self, batch: list[dict[str, Any]]) -> None:
        """No spool: put the failed batch back in front of what arrived meanwhile (only this
        thread consumes, so order holds); if it does not all fit, the policy picks the victims."""
        pending: list[Any] = [*batch, *self._drain_buffer()]  # flush markers ride along, in order
        events = [e for e in pending if isinstance(e, dict)]
        room = self._buffer.maxsize
        if len(events) > room:
            excess = len(events) - room
            victims = set(map(id, events[:excess] if self.policy == "drop_oldest" else events[-excess:]))
            pending = [e for e in pending if id(e) not in victims]
            self.stats.dropped += excess
        for event in pending:
            try:
                self._buffer.put_nowait(event)
            except queue.Full:  # a producer raced us into the freed room
                if isinstance(event, dict):
                    self.stats.dropped += 1

    def _send(self, batch: list[dict[str, Any]]) -> None:
        while batch:
            try:
                response = self._http.post(self.endpoint, content=orjson.dumps(batch), headers=JSON_HEADERS)
            except httpx.HTTPError as exc:
                raise _Retry(0.5, f"cannot reach {self.url}: {type(exc).__name__}") from exc
            if response.status_code == 201:
                items = response.json().get("items", [])
                dup = sum(1 for i in items if i.get("duplicate"))
                self.stats.sent += len(items) - dup
                self.stats.duplicates += dup
                return
            if response.status_code in (429, 503, 502, 504) or response.status_code >= 500:
                try:
                    delay = float(response.headers.get("Retry-After", "1"))
                except ValueError:
                    delay = 1.0
                raise _Retry(delay, f"server busy ({response.status_code})")
            if response.status_code == 422:
                bad = _bad_indexes(response)
                if bad:
                    self.stats.rejected += len(bad)
                    self._note(f"server rejected {len(bad)} events: {response.text[:300]}")
                    batch = [item for i, item in enumerate(batch) if i not in bad]
                    continue
            self.stats.rejected += len(batch)
            self.stats.refused_status = response.status_code
            self._note(f"server refused a batch of {len(batch)} ({response.status_code}): {response.text[:300]}")
            return

    def _note(self, message: str) -> None:
        self.stats.last_error = message
        if len(self.stats.errors) < 100:
            self.stats.errors.append(message)


def _bad_indexes(response: httpx.Response) -> set[int]:
    try:
        details = response.json()["error"]["details"]
    except (ValueError, KeyError, TypeError):
        return set()
    return {d["index"] for d in details if isinstance(d, dict) and isinstance(d.get("index"), int)}
