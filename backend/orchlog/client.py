"""Python client for orchlog: HTTP calls, a resuming live follower, a background sender with an
optional durable spool, and a ``logging`` handler.

It imports nothing from the server, so agent processes can depend on it alone::

    from orchlog.client import Client, EventSender, OrchlogHandler

    with Client("http://127.0.0.1:8000") as c:
        c.post_system_logs([{"level": "INFO", "message": "hello"}])

    sender = EventSender("http://127.0.0.1:8000", spool_path="~/.orchlog/spool.db")
    sender.log_system("WARNING", "disk almost full")   # never blocks, never raises
    sender.close()                                       # flushes what it can

    async for event in AsyncClient(url).follow(after=0, kind="agent_log"):
        print(event["seq"], event["data"])
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import random
import sqlite3
import threading
import time
import traceback
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import orjson
import uuid_utils

from .closecodes import CloseCode

__all__ = [
    "AsyncClient",
    "AuthError",
    "Client",
    "EventSender",
    "OrchlogClientError",
    "OrchlogHandler",
    "SenderStats",
]

DEFAULT_URL = "http://127.0.0.1:8000"
Params = Mapping[str, Any]
Policy = Literal["block", "drop_oldest", "drop_newest"]


class OrchlogClientError(Exception):
    """The server refused a request (4xx/5xx) or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.body = body


class AuthError(OrchlogClientError):
    """No token, or a token the server refused (401/403, WebSocket close 4401/4403)."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    err = body.get("error", {}) if isinstance(body, dict) else {}
    message = err.get("message") if isinstance(err, dict) else None
    text = f"{response.status_code} {message or response.text[:200]}"
    cls = AuthError if response.status_code in (401, 403) else OrchlogClientError
    raise cls(text, status=response.status_code, code=err.get("code") if isinstance(err, dict) else None, body=body)


def _query(params: Params) -> list[tuple[str, str | int | float | bool | None]]:
    """Filters as query parameters; lists become repeated parameters, None is dropped."""
    out: list[tuple[str, str | int | float | bool | None]] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple, set)):
            out.extend((key, str(v)) for v in value)
        else:
            out.append((key, str(value)))
    return out


def ws_url(base: str, path: str, params: Params) -> str:
    scheme = "wss" if base.startswith("https") else "ws"
    host = base.split("://", 1)[-1].rstrip("/")
    query = httpx.QueryParams(_query(params))
    return f"{scheme}://{host}{path}" + (f"?{query}" if query else "")


# ---------------------------------------------------------------- async client


class AsyncClient:
    """Async HTTP + WebSocket client. Use as ``async with AsyncClient(url) as c: ...``."""

    def __init__(self, url: str | None = None, *, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = (url or os.environ.get("ORCHLOG_URL") or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("ORCHLOG_TOKEN")
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout, headers=_headers(self.token))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            response = await self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise OrchlogClientError(f"cannot reach {self.url}: {exc}") from exc
        _raise_for(response)
        body: dict[str, Any] = response.json()
        return body

    # -- ingest
    async def post_agent_logs(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return await self._request("POST", "/api/v1/agent-logs", content=orjson.dumps(list(items)), headers=_JSON)

    async def post_system_logs(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return await self._request("POST", "/api/v1/system-logs", content=orjson.dumps(list(items)), headers=_JSON)

    async def post_events(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Mixed items, each with ``kind`` = ``agent_log`` or ``system_log``."""
        return await self._request("POST", "/api/v1/events", content=orjson.dumps(list(items)), headers=_JSON)

    # -- history
    async def events(self, **params: Any) -> dict[str, Any]:
        """One page of GET /api/v1/events (``after``, ``before``, ``limit`` and the filters)."""
        return await self._request("GET", "/api/v1/events", params=_query(params))

    async def history(self, after: int = 0, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Every matching event after ``after``, ascending, paging until the current end."""
        cursor = after
        while True:
            page = await self.events(after=cursor, limit=1000, **filters)
            for item in page["items"]:
                yield item
            if not page["has_more"]:
                return
            cursor = page["next_after"]

    # -- entities
    async def create_orchestrator(self, **fields: Any) -> dict[str, Any]:
        return await self._request("POST", "/api/v1/orchestrator-agents", json=fields)

    async def create_agent(self, orchestrator_agent_id: str, name: str, model: str, **fields: Any) -> dict[str, Any]:
        body = {"orchestrator_agent_id": orchestrator_agent_id, "name": name, "model": model, **fields}
        return await self._request("POST", "/api/v1/agents", json=body)

    async def list_agents(self, **filters: Any) -> list[dict[str, Any]]:
        body = await self._request("GET", "/api/v1/agents", params=_query(filters))
        return list(body["items"])

    async def update_agent(self, agent_id: str, **patch: Any) -> dict[str, Any]:
        return await self._request("PATCH", f"/api/v1/agents/{agent_id}", json=patch)

    # -- live
    async def frames(
        self,
        *,
        after: int | None = None,
        tail: int | None = None,
        reconnect: bool = True,
        max_backoff: float = 10.0,
        batch: bool = True,
        **filters: Any,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every frame of the live stream, reconnecting by itself and resuming after the last seq.

        Besides the server's frames (hello, agent_log, system_log, live, reset, heartbeat,
        agent) it yields ``{"type": "disconnected", "error", "retry_in"}`` before each reconnect.
        Raises ``AuthError`` when the server refuses the token (no retry).
        """
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

        last: int | None = after
        first_tail = tail
        attempt = 0
        while True:
            params: dict[str, Any] = dict(filters)
            if batch:
                params["batch"] = 1  # several events per frame: far cheaper at high rates
            if last is not None:
                params["after"] = last
            elif first_tail is not None:
                params["tail"] = first_tail
            url = ws_url(self.url, "/api/v1/stream", params)
            error = ""
            try:
                async with connect(
                    url,
                    additional_headers=_headers(self.token),
                    max_size=2**25,
                    open_timeout=10,
                    ping_interval=20,
                ) as ws:
                    attempt = 0
                    async for raw in ws:
                        frame = orjson.loads(raw)
                        kind = frame.get("type")
                        if kind in ("agent_log", "system_log"):
                            last = frame["seq"]
                        elif kind == "events":
                            for item in frame.get("items", []):
                                last = item["seq"]
                                yield item
                            continue
                        elif kind == "hello" and last is None:
                            last = frame.get("after")  # only-new / tail: resume after what hello says
                            first_tail = None
                        elif kind == "reset":
                            last = frame.get("after", frame.get("floor_seq"))
                        yield frame
                    error = "connection closed"
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    raise AuthError(f"the server refused the stream ({status})", status=status) from exc
                if status == 400:
                    raise OrchlogClientError(f"bad stream parameters: {exc.response.body!r}", status=400) from exc
                error = f"HTTP {status}"
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else 1006
                if code in (CloseCode.UNAUTHORIZED, CloseCode.FORBIDDEN, CloseCode.POLICY):
                    raise AuthError(f"the server closed the stream: {exc.rcvd.reason if exc.rcvd else code}") from exc
                if code == CloseCode.BAD_REQUEST:
                    raise OrchlogClientError(f"bad stream parameters: {exc.rcvd.reason if exc.rcvd else ''}") from exc
                error = f"closed ({code})"
            except (OSError, TimeoutError, InvalidHandshake) as exc:  # e.g. the server died mid-handshake
                error = f"{type(exc).__name__}: {exc}"
            if not reconnect:
                raise OrchlogClientError(f"the stream from {self.url} ended early: {error}")
            attempt += 1
            delay = min(max_backoff, 0.2 * 2 ** min(attempt, 8)) * random.uniform(0.5, 1.0)
            yield {"type": "disconnected", "error": error, "retry_in": round(delay, 2), "after": last}
            await asyncio.sleep(delay)

    async def follow(
        self, *, after: int | None = None, tail: int | None = None, **filters: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """Only the events (``{"type", "seq", "data"}``), exactly once, in order, forever."""
        async for frame in self.frames(after=after, tail=tail, **filters):
            if frame.get("type") in ("agent_log", "system_log"):
                yield frame


_JSON = {"Content-Type": "application/json"}


# ---------------------------------------------------------------- sync client


class Client:
    """Blocking twin of the HTTP half of ``AsyncClient`` (for scripts and agent code)."""

    def __init__(self, url: str | None = None, *, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = (url or os.environ.get("ORCHLOG_URL") or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("ORCHLOG_TOKEN")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=_headers(self.token))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise OrchlogClientError(f"cannot reach {self.url}: {exc}") from exc
        _raise_for(response)
        body: dict[str, Any] = response.json()
        return body

    def post_agent_logs(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return self._request("POST", "/api/v1/agent-logs", content=orjson.dumps(list(items)), headers=_JSON)

    def post_system_logs(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return self._request("POST", "/api/v1/system-logs", content=orjson.dumps(list(items)), headers=_JSON)

    def post_events(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return self._request("POST", "/api/v1/events", content=orjson.dumps(list(items)), headers=_JSON)

    def events(self, **params: Any) -> dict[str, Any]:
        return self._request("GET", "/api/v1/events", params=_query(params))

    def history(self, after: int = 0, **filters: Any) -> Iterable[dict[str, Any]]:
        cursor = after
        while True:
            page = self.events(after=cursor, limit=1000, **filters)
            yield from page["items"]
            if not page["has_more"]:
                return
            cursor = page["next_after"]

    def create_orchestrator(self, **fields: Any) -> dict[str, Any]:
        return self._request("POST", "/api/v1/orchestrator-agents", json=fields)

    def create_agent(self, orchestrator_agent_id: str, name: str, model: str, **fields: Any) -> dict[str, Any]:
        body = {"orchestrator_agent_id": orchestrator_agent_id, "name": name, "model": model, **fields}
        return self._request("POST", "/api/v1/agents", json=body)

    def list_agents(self, **filters: Any) -> list[dict[str, Any]]:
        return list(self._request("GET", "/api/v1/agents", params=_query(filters))["items"])

    def update_agent(self, agent_id: str, **patch: Any) -> dict[str, Any]:
        return self._request("PATCH", f"/api/v1/agents/{agent_id}", json=patch)


# ---------------------------------------------------------------- background sender + spool


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


class _Spool:
    """A FIFO of pending events in a local SQLite file, so an outage loses nothing."""

    def __init__(self, path: str, max_events: int) -> None:
        path = os.path.expanduser(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.max_events = max_events
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS spool (n INTEGER PRIMARY KEY AUTOINCREMENT, item TEXT NOT NULL)")

    def __len__(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM spool").fetchone()[0])

    def push(self, items: Sequence[dict[str, Any]], policy: Policy) -> int:
        """Append; returns how many were dropped by the policy (block behaves as drop_newest here)."""
        room = self.max_events - len(self)
        dropped = 0
        if len(items) > room:
            if policy == "drop_oldest":
                excess = len(items) - room
                self.conn.execute("DELETE FROM spool WHERE n IN (SELECT n FROM spool ORDER BY n LIMIT ?)", (excess,))
                dropped = excess
            else:
                dropped = len(items) - max(room, 0)
                items = items[: max(room, 0)]
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT INTO spool (item) VALUES (?)", [(orjson.dumps(i).decode(),) for i in items])
        self.conn.execute("COMMIT")
        return dropped

    def peek(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        rows = self.conn.execute("SELECT n, item FROM spool ORDER BY n LIMIT ?", (limit,)).fetchall()
        return [(n, orjson.loads(item)) for n, item in rows]

    def remove_through(self, n: int) -> None:
        self.conn.execute("DELETE FROM spool WHERE n <= ?", (n,))

    def close(self) -> None:
        self.conn.close()


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
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=_headers(self.token))
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
            event.setdefault("timestamp", _now())
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
        spool = _Spool(self._spool_path, self._max_spool) if self._spool_path else None
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

    def _wait_out(self, seconds: float, spool: _Spool | None) -> list[threading.Event]:
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
                response = self._http.post(self.endpoint, content=orjson.dumps(batch), headers=_JSON)
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


# ---------------------------------------------------------------- logging handler

_LEVELS = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "taskName"}


def level_name(levelno: int) -> str:
    for number in sorted(_LEVELS, reverse=True):
        if levelno >= number:
            return _LEVELS[number]
    return "DEBUG"


class OrchlogHandler(logging.Handler):
    """stdlib ``logging`` → orchlog. System logs by default; agent logs when ``agent_id`` is set.

    ``extra={...}`` fields go into ``metadata`` (system) or ``payload`` (agent). Emitting never
    raises into the application and never blocks beyond the sender's ``block_timeout``.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        agent_id: str | None = None,
        event_type: str = "log",
        sender: EventSender | None = None,
        level: int = logging.NOTSET,
        shutdown_timeout: float = 2.0,
        **sender_options: Any,
    ) -> None:
        super().__init__(level)
        self.shutdown_timeout = shutdown_timeout
        self.agent_id = agent_id
        self.event_type = event_type
        self._own_sender = sender is None
        self.sender = sender or EventSender(url, **sender_options)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            extra = {k: _jsonable(v) for k, v in vars(record).items() if k not in _RECORD_FIELDS}
            extra.update({"logger": record.name, "line": record.lineno, "function": record.funcName})
            if record.exc_info:
                extra["exception"] = "".join(traceback.format_exception(*record.exc_info))[-8000:]
            level = level_name(record.levelno)
            timestamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            if self.agent_id:
                self.sender.submit(
                    {
                        "kind": "agent_log",
                        "agent_id": self.agent_id,
                        "event_category": "response",
                        "event_type": self.event_type,
                        "level": level,
                        "content": message,
                        "payload": extra,
                        "timestamp": timestamp,
                    }
                )
            else:
                self.sender.submit(
                    {
                        "kind": "system_log",
                        "level": level,
                        "message": message,
                        "file_path": record.pathname,
                        "metadata": extra,
                        "timestamp": timestamp,
                    }
                )
        except Exception:  # noqa: BLE001 - logging must never break the application
            self.handleError(record)

    def flush(self) -> None:
        self.sender.flush(timeout=self.shutdown_timeout)

    def close(self) -> None:
        """At interpreter exit (logging.shutdown) this waits at most ``shutdown_timeout`` for the
        server; what is not sent by then stays in the spool, if the sender has one."""
        try:
            if self._own_sender:
                self.sender.close(timeout=self.shutdown_timeout)
        finally:
            super().close()


def _jsonable(value: Any) -> Any:
    try:
        orjson.dumps(value)
        return value
    except TypeError:
        return repr(value)
