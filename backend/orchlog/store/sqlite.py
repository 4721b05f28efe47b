"""SQLite driver: one write connection on its own thread, a small pool of reader threads
(``sqlite_read``), connections and migrations in ``sqlite_conn``.

Why threads with plain sqlite3 connections instead of aiosqlite: each aiosqlite call is a thread
hop (~80-100 µs of mostly CPU). A write batch is one transaction and a two-table read is three
statements; running each as ONE function on the connection's own thread costs one hop, the
pattern datasette uses. The hub gets its own reader so ``PRAGMA data_version`` tells it when
another process committed to the same file, and polling plus reading the new rows is a single
hop. The write rules themselves live in ``rules.py``; the statements of a write batch in
``sqlite_write``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..auth import TokenRecord
from ..config import Settings
from ..errors import BadParameter
from ..filters import KINDS, EventFilter
from . import tokens as token_sql
from .base import BatchResult, StoredEvent, StreamMeta, WriteOp, min_max
from .rules import AGENT_COLS, COLUMNS, ENTITY_TABLES, SYSTEM_COLS
from .sqlite_conn import connect, migrate, migrate_path
from .sqlite_read import EVERYTHING, Reader, fetch_rows, filter_sql, page_sql, read_pages, span_sql, volume_sql
from .sqlite_write import Writer, insert_sql
from .tokens import load_tokens

T = TypeVar("T")
_IN_CHUNK = 500
log = logging.getLogger("orchlog.sqlite")

__all__ = [
    "AGENT_COLS",
    "COLUMNS",
    "SYSTEM_COLS",
    "SqliteStore",
    "connect",
    "filter_sql",
    "insert_sql",
    "migrate",
    "migrate_path",
    "page_sql",
]

# ---------------------------------------------------------------- the async store


class SqliteStore:
    """The ``Store`` for one SQLite file."""

    def __init__(self, path: str, settings: Settings) -> None:
        self.path = path
        self.settings = settings
        self._executor: ThreadPoolExecutor | None = None
        self._writer: Writer | None = None
        self._free: asyncio.Queue[Reader] = asyncio.Queue()
        self._readers: list[Reader] = []
        self._tail: Reader | None = None
        self.migrations_applied: list[str] = []

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="orchlog-writer")
        conn = await self._on_writer(connect, self.path, self.settings)
        self._writer = Writer(conn, self.path)
        self.migrations_applied = await self._on_writer(migrate, conn)
        for i in range(self.settings.read_connections):
            reader = Reader(self.path, self.settings, f"orchlog-reader-{i}")
            await reader.open()
            self._readers.append(reader)
            self._free.put_nowait(reader)
        self._tail = Reader(self.path, self.settings, "orchlog-tail")
        await self._tail.open()

    async def close(self) -> None:
        for reader in [*self._readers, *([self._tail] if self._tail else [])]:
            await reader.close()
        self._readers.clear()
        self._tail = None
        if self._writer is not None:
            writer = self._writer
            self._writer = None

            def _close() -> None:
                try:
                    writer.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                finally:
                    writer.conn.close()

            await self._on_writer(_close)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def _on_writer(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._executor is not None, "store is not open"
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        reader = await self._free.get()
        try:
            return await reader.run(fn)
        finally:
            self._free.put_nowait(reader)

    async def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return await self._read(lambda conn: fetch_rows(conn, sql, params))

    # -- writes
    async def write_batch(self, ops: Sequence[WriteOp]) -> BatchResult:
        assert self._writer is not None, "store is not open"
        return await self._on_writer(self._writer.batch, ops)

    async def check_writable(self) -> None:
        assert self._writer is not None, "store is not open"
        await self._on_writer(self._writer.check_writable)

    # -- stream
    async def meta(self) -> StreamMeta:
        rows = await self._query("SELECT epoch, last_seq, floor_seq FROM stream_meta WHERE id = 1")
        row = rows[0]
        return StreamMeta(row["epoch"], row["last_seq"], row["floor_seq"])

    async def head_seq(self) -> int:
        rows = await self._query("SELECT last_seq FROM stream_meta WHERE id = 1")
        return int(rows[0]["last_seq"])

    async def tail(self, after: int, limit: int) -> list[StoredEvent]:
        assert self._tail is not None
        events, _ = await self._tail.run(lambda conn: read_pages(conn, EVERYTHING, after, None, limit))
        return events

    async def poll_tail(self, after: int, limit: int) -> list[StoredEvent] | None:
        """One hop: None if nobody committed since the last poll, else ``tail(after, limit)``."""
        tail = self._tail
        assert tail is not None

        def poll(conn: sqlite3.Connection) -> list[StoredEvent] | None:
            if not tail.poll(conn):
                return None
            return read_pages(conn, EVERYTHING, after, None, limit)[0]

        return await tail.run(poll)

    async def read_events(
        self,
        flt: EventFilter,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> tuple[list[StoredEvent], bool]:
        where = {kind: filter_sql(kind, flt) for kind in KINDS if flt.wants(kind)}
        return await self._read_filtered(flt, lambda conn: read_pages(conn, where, after, before, limit))

    async def time_span(self, flt: EventFilter) -> tuple[str | None, str | None]:
        where = {kind: filter_sql(kind, flt) for kind in KINDS if flt.wants(kind)}

        def span(conn: sqlite3.Connection) -> tuple[str | None, str | None]:
            rows = [conn.execute(*span_sql(kind, w)).fetchone() for kind, w in where.items()]
            return min_max(rows)

        return await self._read_filtered(flt, span)

    async def volume(self, flt: EventFilter, bucket_s: int) -> dict[int, dict[str, int]]:
        where = {kind: filter_sql(kind, flt) for kind in KINDS if flt.wants(kind)}

        def count(conn: sqlite3.Connection) -> dict[int, dict[str, int]]:
            out: dict[int, dict[str, int]] = {}
            for kind, w in where.items():
                for bucket, level, n in conn.execute(*volume_sql(kind, w, bucket_s)):
                    levels = out.setdefault(int(bucket), {})
                    levels[level] = levels.get(level, 0) + int(n)
            return out

        return await self._read_filtered(flt, count)

    async def _read_filtered(self, flt: EventFilter, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A read whose full-text term may be malformed: that is the client's 400, not a 500."""
        try:
            return await self._read(fn)
        except sqlite3.OperationalError as exc:
            if flt.fts and not any(word in str(exc) for word in ("locked", "busy", "disk")):
                raise BadParameter(
                    "q", f"not a valid full-text query ({exc}); quote phrases, use word* for prefixes, AND/OR/NOT"
                ) from None
            raise

    # -- maintenance
    async def maintain(self) -> dict[str, int]:
        assert self._writer is not None, "store is not open"
        return await self._on_writer(self._writer.maintain)

    async def sizes(self) -> dict[str, int]:
        def _sizes() -> dict[str, int]:
            out = {}
            for name, suffix in (("db_bytes", ""), ("wal_bytes", "-wal")):
                try:
                    out[name] = os.path.getsize(self.path + suffix)
                except OSError:
                    out[name] = 0
            return out

        assert self._tail is not None
        return await self._tail.run(lambda _conn: _sizes())

    # -- tokens
    async def load_tokens(self) -> list[TokenRecord]:
        return await self._read(load_tokens)

    async def create_token(self, record: TokenRecord) -> None:
        assert self._writer is not None, "store is not open"
        await self._on_writer(token_sql.insert_token, self._writer.conn, record)

    async def revoke_token(self, ref: str) -> TokenRecord:
        assert self._writer is not None, "store is not open"
        return await self._on_writer(token_sql.revoke_token, self._writer.conn, ref)

    async def delete_token(self, ref: str) -> TokenRecord:
        assert self._writer is not None, "store is not open"
        return await self._on_writer(token_sql.delete_token, self._writer.conn, ref)

    # -- entities
    async def get_entity(self, table: str, ident: str) -> dict[str, Any] | None:
        assert table in ENTITY_TABLES
        rows = await self._query(f"SELECT * FROM {table} WHERE id = ?", (ident,))
        return rows[0] if rows else None

    async def list_entities(
        self, table: str, where: dict[str, Any], *, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        assert table in ENTITY_TABLES
        terms = [f"{name} = ?" for name in where]
        order = "timestamp" if table == "prompts" else "created_at"
        sql = f"SELECT * FROM {table} WHERE {' AND '.join(terms) or '1'} ORDER BY {order} DESC, id LIMIT ? OFFSET ?"
        return await self._query(sql, [*where.values(), limit, offset])

    async def agent_log_counts(self, agent_ids: Sequence[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        ids = list(agent_ids)
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            rows = await self._query(
                "SELECT agent_id, count(*) AS n FROM agent_logs "
                f"WHERE agent_id IN ({', '.join('?' for _ in chunk)}) GROUP BY agent_id",
                chunk,
            )
            counts.update({row["agent_id"]: row["n"] for row in rows})
        return counts
