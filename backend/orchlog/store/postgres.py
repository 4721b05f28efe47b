"""PostgreSQL driver (asyncpg): several orchlog replicas on one database.

The table is the log; NOTIFY is only a wake-up. Each write batch is one transaction that takes a
transaction-level advisory lock before assigning seqs, so batches commit in seq order across
replicas and a tailer never sees seq N+1 committed before N. The hub is woken by LISTEN (the new
head as payload) and polls slowly as a fallback; a lost listener connection is re-opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from ..auth import TokenRecord
from ..config import Settings
from ..errors import BadParameter, Overloaded, SchemaError
from ..filters import KINDS, EventFilter
from ..models import LEVEL_RANK, LEVELS, format_ts
from . import migrate as migrations
from . import tokens as token_sql
from .base import BatchResult, StoredEvent, StreamMeta, WriteOp, min_max
from .postgres_write import CHANNEL, MigrationConn, Txn, shape, to_ts
from .rules import COLUMNS, ENTITY_TABLES, TABLES, Rerun, apply_batch, read_both

log = logging.getLogger("orchlog.postgres")


def filter_sql(kind: str, flt: EventFilter, params: list[Any]) -> list[str]:
    """WHERE terms ($n placeholders appended to params): the PostgreSQL twin of the SQLite SQL."""

    def p(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    terms: list[str] = []
    if flt.levels:
        terms.append(f"level = ANY({p(list(flt.levels))}::text[])")
    if flt.min_level is not None:
        allowed = [lv for lv in LEVELS if LEVEL_RANK[lv] >= LEVEL_RANK[flt.min_level]]
        terms.append(f"level = ANY({p(allowed)}::text[])")
    if flt.adw_id is not None:
        terms.append(f"adw_id = {p(flt.adw_id)}")
    if flt.since is not None:
        terms.append(f"timestamp >= {p(to_ts(flt.since))}")
    if flt.until is not None:
        terms.append(f"timestamp < {p(to_ts(flt.until))}")
    if kind == "agent_log":
        if flt.agent_ids:
            terms.append(f"agent_id = ANY({p(list(flt.agent_ids))}::uuid[])")
        if flt.event_categories:
            terms.append(f"event_category = ANY({p(list(flt.event_categories))}::text[])")
        if flt.event_types:
            terms.append(f"event_type = ANY({p(list(flt.event_types))}::text[])")
        if flt.task_slug is not None:
            terms.append(f"task_slug = {p(flt.task_slug)}")
        if flt.session_id is not None:
            terms.append(f"session_id = {p(flt.session_id)}")
        if flt.tool_name is not None:  # ->> of a non-string is its JSON text: compare strings only
            value = p(flt.tool_name)
            terms.append(f"jsonb_typeof(payload->'tool_name') = 'string' AND payload->>'tool_name' = {value}")
    if flt.fts:
        terms.append(f"fts @@ websearch_to_tsquery('simple', {p(flt.fts)})")
    if flt.q:
        # ASCII-only case folding, exactly like SQLite's LIKE and EventFilter.matches
        fields = ("content", "summary", "event_type") if kind == "agent_log" else ("message", "summary")
        needle = p(flt.q.translate(str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")))
        upper, lower = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"
        folded = [f"strpos(translate(coalesce({f}, ''), '{upper}', '{lower}'), {needle}) > 0" for f in fields]
        terms.append("(" + " OR ".join(folded) + ")")
    return terms


class _Pages:
    """``rules.Pages`` on one pooled connection."""

    def __init__(self, conn: asyncpg.Connection, where: dict[str, tuple[list[str], list[Any]]]) -> None:
        self.conn = conn
        self.where = where

    async def head(self) -> int:
        return int(await self.conn.fetchval("SELECT last_seq FROM stream_meta WHERE id = 1"))

    async def page(
        self, kind: str, bounds: tuple[int, int | None, int | None], descending: bool, limit: int
    ) -> list[StoredEvent]:
        head, after, before = bounds
        terms, params = self.where[kind]
        params = [*params, head]
        terms = [*terms, f"seq <= ${len(params)}"]
        if after is not None:
            params.append(after)
            terms.append(f"seq > ${len(params)}")
        if before is not None:
            params.append(before)
            terms.append(f"seq < ${len(params)}")
        sql = (
            f"SELECT {', '.join(COLUMNS[kind])} FROM {TABLES[kind]} WHERE {' AND '.join(terms)} "
            f"ORDER BY seq {'DESC' if descending else 'ASC'} LIMIT {int(limit)}"
        )
        try:
            rows = await self.conn.fetch(sql, *params)
        except asyncpg.PostgresSyntaxError as exc:
            raise BadParameter("q", f"not a valid full-text query ({exc})") from None
        return [StoredEvent(kind, int(r["seq"]), shape(r)) for r in rows]


_LAST_INSTANT = "'9999-12-31 23:59:59.999999+00'::timestamptz"
_EVERYTHING: dict[str, tuple[list[str], list[Any]]] = {kind: ([], []) for kind in KINDS}


class PostgresStore:
    """The ``Store`` for one PostgreSQL database."""

    def __init__(self, dsn: str, settings: Settings) -> None:
        self.dsn = dsn
        self.settings = settings
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._notified = asyncio.Event()
        self._last_poll = 0.0
        self.fallback_poll_s = 1.0
        self.migrations_applied: list[str] = []

    # -- lifecycle
    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=2, max_size=self.settings.read_connections + 4, command_timeout=60
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise SchemaError(f"cannot connect to PostgreSQL: {exc}") from exc
        self.migrations_applied = await self.migrate()
        await self._listen()

    async def migrate(self) -> list[str]:
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            return await migrations.migrate(MigrationConn(conn))

    async def _listen(self) -> None:
        """A dedicated LISTEN connection; if it dies, poll_tail notices and opens a new one."""
        with contextlib.suppress(Exception):
            if self._listener is not None:
                await self._listener.close()
        try:
            self._listener = await asyncpg.connect(self.dsn)
            await self._listener.add_listener(CHANNEL, self._on_notify)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("LISTEN connection failed (%s); polling until it is back", exc)
            self._listener = None
        self._notified.set()  # read once after (re)listening: commits may have happened meanwhile

    def _on_notify(self, *_args: Any) -> None:
        self._notified.set()

    async def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # -- writes
    async def write_batch(self, ops: Sequence[WriteOp]) -> BatchResult:
        """ONE transaction under the seq lock; again with a savepoint per op if an op failed
        after writing (rules.apply_batch)."""
        try:
            try:
                return await self._transaction(ops, savepoints=False)
            except Rerun:
                return await self._transaction(ops, savepoints=True)
        except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as exc:
            raise Overloaded(f"PostgreSQL is unreachable ({exc}); retry", retry_after=1.0) from exc

    async def _transaction(self, ops: Sequence[WriteOp], *, savepoints: bool) -> BatchResult:
        assert self._pool is not None
        async with self._pool.acquire() as conn, conn.transaction():
            return await apply_batch(Txn(conn), ops, savepoints=savepoints)

    async def check_writable(self) -> None:
        assert self._pool is not None
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT 1 FROM stream_meta FOR UPDATE")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise Overloaded(f"PostgreSQL is not writable ({exc})") from exc

    # -- reads
    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
            return rows

    async def meta(self) -> StreamMeta:
        row = (await self._fetch("SELECT epoch, last_seq, floor_seq FROM stream_meta WHERE id = 1"))[0]
        return StreamMeta(str(row["epoch"]), int(row["last_seq"]), int(row["floor_seq"]))

    async def head_seq(self) -> int:
        return int((await self._fetch("SELECT last_seq FROM stream_meta WHERE id = 1"))[0][0])

    async def _read(
        self, where: dict[str, tuple[list[str], list[Any]]], after: int | None, before: int | None, limit: int
    ) -> tuple[list[StoredEvent], bool]:
        """Head-bounded (rules.read_both); the advisory lock makes commit order seq order."""
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            return await read_both(_Pages(conn, where), list(where), after, before, limit)

    async def tail(self, after: int, limit: int) -> list[StoredEvent]:
        return (await self._read(_EVERYTHING, after, None, limit))[0]

    async def poll_tail(self, after: int, limit: int) -> list[StoredEvent] | None:
        """None unless a NOTIFY arrived, or the fallback poll is due (NOTIFY can be lost)."""
        if self._listener is None or self._listener.is_closed():
            await self._listen()
        now = time.monotonic()
        if not self._notified.is_set() and now - self._last_poll < self.fallback_poll_s:
            return None
        self._notified.clear()
        self._last_poll = now
        events = await self.tail(after, limit)
        return events

    async def read_events(
        self, flt: EventFilter, *, after: int | None = None, before: int | None = None, limit: int = 100
    ) -> tuple[list[StoredEvent], bool]:
        return await self._read(self._where(flt), after, before, limit)

    def _where(self, flt: EventFilter) -> dict[str, tuple[list[str], list[Any]]]:
        where: dict[str, tuple[list[str], list[Any]]] = {}
        for kind in KINDS:
            if flt.wants(kind):
                params: list[Any] = []
                where[kind] = (filter_sql(kind, flt, params), params)
        return where

    async def _fetch_filtered(self, sql: str, params: list[Any]) -> list[asyncpg.Record]:
        try:
            return await self._fetch(sql, *params)
        except asyncpg.PostgresSyntaxError as exc:
            raise BadParameter("q", f"not a valid full-text query ({exc})") from None

    async def time_span(self, flt: EventFilter) -> tuple[str | None, str | None]:
        rows = []
        for kind, (terms, params) in self._where(flt).items():
            sql = f"SELECT min(timestamp), max(timestamp) FROM {TABLES[kind]} WHERE {' AND '.join(terms) or 'true'}"
            for low, high in await self._fetch_filtered(sql, params):
                rows.append((low and format_ts(low), high and format_ts(high)))
        return min_max(rows)

    async def volume(self, flt: EventFilter, bucket_s: int) -> dict[int, dict[str, int]]:
        """As the SQLite twin: floored whole epoch seconds, then a floored integer division."""
        b = int(bucket_s)
        out: dict[int, dict[str, int]] = {}
        for kind, (terms, params) in self._where(flt).items():
            inner = (  # asyncpg stores 9999-12-31T23:59:59.999999Z (datetime.max) as 'infinity': clamp it back
                f"SELECT floor(extract(epoch FROM least(timestamp, {_LAST_INSTANT})))::bigint AS e, level "
                f"FROM {TABLES[kind]} "
                f"WHERE {' AND '.join(terms) or 'true'}"
            )
            sql = f"SELECT (e - (((e % {b}) + {b}) % {b})) / {b}, level, count(*) FROM ({inner}) AS t GROUP BY 1, 2"
            for bucket, level, n in await self._fetch_filtered(sql, params):
                levels = out.setdefault(int(bucket), {})
                levels[level] = levels.get(level, 0) + int(n)
        return out

    # -- entities, tokens, maintenance
    async def get_entity(self, table: str, ident: str) -> dict[str, Any] | None:
        assert table in ENTITY_TABLES
        try:
            key = uuid.UUID(ident)
        except ValueError:
            return None
        rows = await self._fetch(f"SELECT * FROM {table} WHERE id = $1", key)
        return shape(rows[0]) if rows else None

    async def list_entities(
        self, table: str, where: dict[str, Any], *, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        assert table in ENTITY_TABLES
        terms, params = [], []
        for name, value in where.items():
            if name == "archived":
                value = bool(value)
            elif name.endswith("_id") and name not in ("session_id", "adw_id"):
                value = uuid.UUID(str(value))
            params.append(value)
            terms.append(f"{name} = ${len(params)}")
        order = "timestamp" if table == "prompts" else "created_at"
        params += [limit, offset]
        sql = (
            f"SELECT * FROM {table} WHERE {' AND '.join(terms) or 'true'} ORDER BY {order} DESC, id "
            f"LIMIT ${len(params) - 1} OFFSET ${len(params)}"
        )
        return [shape(r) for r in await self._fetch(sql, *params)]

    async def agent_log_counts(self, agent_ids: Sequence[str]) -> dict[str, int]:
        if not agent_ids:
            return {}
        rows = await self._fetch(
            "SELECT agent_id, count(*) FROM agent_logs WHERE agent_id = ANY($1::uuid[]) GROUP BY agent_id",
            list(agent_ids),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def load_tokens(self) -> list[TokenRecord]:
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            return await token_sql.pg_load_tokens(conn)

    async def create_token(self, record: TokenRecord) -> None:
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            await token_sql.pg_insert_token(conn, record)

    async def revoke_token(self, ref: str) -> TokenRecord:
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            return await token_sql.pg_revoke_token(conn, ref)

    async def delete_token(self, ref: str) -> TokenRecord:
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            return await token_sql.pg_delete_token(conn, ref)

    async def maintain(self) -> dict[str, int]:
        return {}  # autovacuum does PostgreSQL's housekeeping

    async def sizes(self) -> dict[str, int]:
        rows = await self._fetch("SELECT pg_database_size(current_database())")
        return {"db_bytes": int(rows[0][0]), "wal_bytes": 0}
