"""The process's moving parts, wired once: store → writer → hub, with a stop signal.

Made by the app's lifespan (never at import time) and reached by handlers through app state.
Shutdown order matters for the invariants: streams are told to finish first (they flush what
is committed and close with 1001), then the writer drains its queue and commits, then the hub
and the store close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .auth import Keyring, Principal, Quotas, Tickets, parse_seeded
from .config import Settings
from .metrics import Metrics, Stats
from .origins import allowed_hosts
from .retention import enforce, policies
from .slots import StreamSlots
from .store import open_store
from .store.base import ArchiveAgent, CreateAgent, EnsureAgent, IndexFulltext, Store, UpdateEntity, WriteOp
from .stream.follow import FollowConfig
from .stream.hub import Hub
from .writer import Writer

log = logging.getLogger("orchlog")
TOKEN_CHECK_S = 0.5  # tokens are reloaded this often: a revoked token's streams end within 2 s, with headroom


class Runtime:
    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.limits = settings.limits  # built once: it is read on every ingest request
        self.store: Store = store or open_store(settings)
        self.writer = Writer(
            self.store,
            queue_max=settings.queue_max_requests,
            max_batch_events=settings.max_batch_events,
            retry_after=settings.retry_after_s,
        )
        self.hub = Hub(
            self.store,
            poll_interval=settings.poll_interval_ms / 1000,
            page=settings.hub_page,
            queue_events=settings.subscriber_queue_events,
            queue_bytes=settings.subscriber_queue_bytes,
        )
        self.follow_config = FollowConfig(
            replay_page=settings.replay_page,
            heartbeat_s=settings.heartbeat_s,
            shutdown_flush_s=settings.shutdown_flush_s,
        )
        self.keyring = Keyring(parse_seeded(settings.tokens))
        self.quotas = Quotas(settings.ingest_rate, settings.ingest_burst)
        self.tickets = Tickets(settings.ticket_ttl_s)
        self.allowed_origins = frozenset(
            o.strip().rstrip("/").lower() for o in settings.allowed_origins.split(",") if o.strip()
        )
        self.slots = StreamSlots(
            settings.max_subscribers, settings.max_streams_per_token, settings.max_streams_per_client
        )
        self.stopping = asyncio.Event()
        self.started = False
        self.deleted: dict[str, int] = {}
        self.allowed_hosts = allowed_hosts(self.allowed_origins, settings.host)
        self.metrics = Metrics()
        self.metrics.attach(self.stats)
        self.writer.on_batch(self.metrics.observe_batch)
        self._maintenance: asyncio.Task[None] | None = None
        self._indexer: asyncio.Task[None] | None = None
        self._token_watch: asyncio.Task[None] | None = None

    def stats(self) -> Stats:
        """A snapshot for ``/metrics`` (read at scrape time)."""
        return Stats(
            writer_depth=self.writer.depth,
            failed_batches=self.writer.stats.failed_batches,
            streams={t: self.slots.by_transport[t] for t in ("websocket", "sse", "compat")},
            subscriptions=self.hub.subscribers,
            overflows=self.hub.overflows,
            resets=self.hub.resets,
            head_seq=self.writer.head_seq,
            hub_cursor=self.hub.cursor,
            deleted=dict(self.deleted),
        )

    async def start(self) -> None:
        await self.store.open()
        await self.refresh_tokens()
        self.writer.on_head(self.hub.announce)
        self.writer.on_commit(self._announce_entities)
        self.writer.head_seq = await self.store.head_seq()
        self.writer.start()
        await self.hub.start()
        self._maintenance = asyncio.create_task(
            self._every(self.settings.maintenance_interval_s, self.maintain, "retention/checkpoint"),
            name="orchlog-maintenance",
        )
        self._indexer = asyncio.create_task(
            self._every(self.settings.fulltext_interval_s, self.index_fulltext, "full-text indexing"),
            name="orchlog-fulltext",
        )
        self._token_watch = asyncio.create_task(
            self._every(TOKEN_CHECK_S, self.watch_tokens, "token refresh"), name="orchlog-tokens"
        )
        self.started = True

    async def refresh_tokens(self) -> None:
        """Reload tokens from the database (created/revoked by `orchlog token` in another process)."""
        self.keyring.loaded_at = time.monotonic()  # one refresh at a time, not one per request
        self.keyring.load(await self.store.load_tokens())

    async def watch_tokens(self) -> int:
        """Reload tokens and end the open streams of revoked ones; returns how many were ended."""
        await self.refresh_tokens()

        def refused(owner: object) -> bool:
            return isinstance(owner, Principal) and not self.keyring.allows(owner)

        return self.hub.revoke(refused)

    def begin_shutdown(self) -> None:
        """Tell every stream to flush and close (safe to call more than once, from the loop)."""
        self.stopping.set()
        self.hub.wake_all()

    async def index_fulltext(self) -> int:
        """Bring the full-text index up to the head (through the writer, in large chunks)."""
        total = 0
        while True:
            n = int(await self.writer.submit(IndexFulltext()))
            total += n
            if n < IndexFulltext.chunk:
                return total

    async def maintain(self) -> dict[str, int]:
        """Retention now, then a WAL checkpoint; returns rows deleted per table."""
        deleted = await enforce(self.writer, policies(self.settings))
        for table, n in deleted.items():
            self.deleted[table] = self.deleted.get(table, 0) + n
        await self.store.maintain()
        return deleted

    async def _every(self, seconds: float, job: Callable[[], Awaitable[Any]], what: str) -> None:
        """Run ``job`` every ``seconds`` until the runtime stops; a failure is logged and retried."""
        while not self.stopping.is_set():
            try:
                async with asyncio.timeout(seconds):
                    await self.stopping.wait()
            except TimeoutError:
                pass
            if self.stopping.is_set():
                return
            try:
                await job()
            except Exception:
                log.exception("%s failed; retrying in %ss", what, seconds)

    async def stop(self) -> None:
        self.begin_shutdown()
        for task in (self._maintenance, self._indexer, self._token_watch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.writer.stop()
        await self.hub.stop()
        await self.store.close()
        self.started = False

    def _announce_entities(self, ops: list[WriteOp], results: list[Any]) -> None:
        for op, result in zip(ops, results, strict=True):
            if isinstance(result, BaseException):
                continue
            if isinstance(op, CreateAgent) or (isinstance(op, EnsureAgent) and result.get("created")):
                data = {k: v for k, v in result.items() if k != "created"}
                self.hub.notify({"type": "agent", "op": "created", "data": data}, agent_id=data["id"])
            elif isinstance(op, UpdateEntity) and op.table == "agents":
                old, new = result
                self.hub.notify({"type": "agent", "op": "updated", "data": new, "old": old}, agent_id=new["id"])
            elif isinstance(op, ArchiveAgent):
                old, new = result
                self.hub.notify({"type": "agent", "op": "deleted", "data": new, "old": old}, agent_id=new["id"])
