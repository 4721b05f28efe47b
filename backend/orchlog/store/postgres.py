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
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from ..auth import TokenRecord
from ..config import Settings
from ..errors import BadParameter, Overloaded, SchemaError, ValidationFailed
from ..filters import KINDS, EventFilter
from ..models import LEVEL_RANK, LEVELS, format_ts
from . import migrate as migrations
from .base import BatchResult, StoredEvent, StreamMeta, WriteOp
from .rules import COLUMNS, ENTITY_TABLES, TABLES, Rerun, apply_batch, read_both

log = logging.getLogger("orchlog.postgres")
CHANNEL = "orchlog_events"
LOCK_KEY = 0x6F72636C6F67  # "orclog": serialises seq assignment + commit across replicas
_UUID_COLS = frozenset({"id", "agent_id", "orchestrator_agent_id", "epoch"})
_TIME_COLS = frozenset({"timestamp", "created_at", "updated_at", "revoked_at"})
_JSON_COLS = frozenset({"payload", "metadata"})


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _shape(record: asyncpg.Record) -> dict[str, Any]:
    """A row as the SQLite driver returns it: ids and times as canonical text, JSON pre-serialised."""
    out: dict[str, Any] = {}
    for name, value in record.items():
        if value is None:
            out[name] = None
        elif name in _UUID_COLS:
            out[name] = str(value)
        elif name in _TIME_COLS:
            out[name] = format_ts(value)
        elif name in _JSON_COLS:
            out[name] = orjson.Fragment(value)
        elif name == "total_cost":
            out[name] = float(value)
        else:
            out[name] = value
    return out


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
        terms.append(f"timestamp >= {p(_ts(flt.since))}")
    if flt.until is not None:
        terms.append(f"timestamp < {p(_ts(flt.until))}")
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


def _adapt(values: dict[str, Any]) -> dict[str, Any]:
    """Canonical text values (rules) → asyncpg's types for our columns."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is not None:
            if name in _UUID_COLS:
                value = uuid.UUID(str(value))
            elif name in _TIME_COLS:
                value = _ts(value)
            elif name == "total_cost":
                value = Decimal(str(value))
        out[name] = value
    return out


def _uuid(ident: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(ident))
    except ValueError:
        return None


class _Txn:
    """The ``rules.Txn`` statements on one pooled connection inside its transaction."""

    integrity_errors: tuple[type[BaseException], ...] = (asyncpg.IntegrityConstraintViolationError,)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.dirty = False
        self._savepoint: Any = None

    async def _exec(self, sql: str, *args: Any) -> None:
        self.dirty = True
        await self.conn.execute(sql, *args)

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """A read; a failed statement spoils a PostgreSQL transaction, so a failure counts as dirty."""
        was, self.dirty = self.dirty, True
        rows: list[asyncpg.Record] = await self.conn.fetch(sql, *args)
        self.dirty = was
        return rows

    async def last_seq(self) -> int:
        await self.conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        last = await self.conn.fetchval(
            "SELECT greatest(last_seq, (SELECT coalesce(max(seq), 0) FROM agent_logs),"
            " (SELECT coalesce(max(seq), 0) FROM system_logs)) FROM stream_meta WHERE id = 1"
        )
        return int(last)

    async def set_last_seq(self, seq: int) -> None:
        await self._exec("UPDATE stream_meta SET last_seq = $1 WHERE id = 1", seq)
        await self.conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(seq))

    async def savepoint(self) -> None:
        self._savepoint = self.conn.transaction()
        await self._savepoint.start()

    async def release(self) -> None:
        await self._savepoint.commit()

    async def rollback_to(self) -> None:
        await self._savepoint.rollback()

    async def known_agents(self, ids: Sequence[str]) -> set[str]:
        rows = await self._fetch("SELECT id FROM agents WHERE id = ANY($1::uuid[])", list(ids))
        return {str(r[0]) for r in rows}

    async def log_ids(self, ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        rows = await self._fetch(
            "SELECT id, 'agent_logs', seq FROM agent_logs WHERE id = ANY($1::uuid[]) "
            "UNION ALL SELECT id, 'system_logs', seq FROM system_logs WHERE id = ANY($1::uuid[])",
            list(ids),
        )
        return {str(r[0]): (str(r[1]), int(r[2])) for r in rows}

    async def insert_logs(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        self.dirty = True
        records = [(*row[:-1], _ts(row[-1])) for row in rows]  # the last column is the timestamp
        await self.conn.copy_records_to_table(table, records=records, columns=list(COLUMNS[_KIND[table]]))

    async def row(self, table: str, ident: str, *, for_update: bool = False) -> dict[str, Any] | None:
        key = _uuid(ident)
        if key is None:
            return None
        lock = " FOR UPDATE" if for_update else ""
        rows = await self._fetch(f"SELECT * FROM {table} WHERE id = $1{lock}", key)
        return dict(rows[0].items()) if rows else None

    async def insert(self, table: str, values: dict[str, Any], *, ignore_existing: bool = False) -> None:
        values = _adapt(values)
        marks = ", ".join(f"${i + 1}" for i in range(len(values)))
        tail = " ON CONFLICT (id) DO NOTHING" if ignore_existing else ""
        await self._exec(f"INSERT INTO {table} ({', '.join(values)}) VALUES ({marks}){tail}", *values.values())

    async def update(self, table: str, ident: str, changes: dict[str, Any]) -> None:
        changes = _adapt(changes)
        sets = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(changes))
        await self._exec(f"UPDATE {table} SET {sets} WHERE id = $1", uuid.UUID(ident), *changes.values())

    def public(self, row: dict[str, Any]) -> dict[str, Any]:
        return _shape(row)

    async def nth_newest_seq(self, table: str, offset: int) -> int:
        rows = await self._fetch(f"SELECT seq FROM {table} ORDER BY seq DESC LIMIT 1 OFFSET $1", offset)
        return int(rows[0][0]) if rows else 0

    async def oldest_seqs(self, table: str, upto: int, limit: int) -> list[int]:
        rows = await self._fetch(f"SELECT seq FROM {table} WHERE seq <= $1 ORDER BY seq LIMIT $2", upto, limit)
        return [int(r[0]) for r in rows]

    async def seqs_older_than(self, table: str, before: str, above: int, limit: int) -> list[int]:
        rows = await self._fetch(
            f"SELECT seq FROM {table} WHERE timestamp < $1 AND seq > $2 LIMIT $3", _ts(before), above, limit
        )
        return [int(r[0]) for r in rows]

    async def delete_seqs(self, table: str, seqs: list[int]) -> None:
        await self._exec(f"DELETE FROM {table} WHERE seq = ANY($1::bigint[])", seqs)

    async def raise_floor(self, seq: int) -> None:
        await self._exec("UPDATE stream_meta SET floor_seq = greatest(floor_seq, $1) WHERE id = 1", seq)

    async def index_fulltext(self, chunk: int) -> int:
        return 0  # a generated tsvector column: always in step

    def client_error(self, exc: Exception) -> Exception:
        if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
            return ValidationFailed(f"rejected by a database constraint: {exc}", details=[{"message": str(exc)}])
        if isinstance(exc, asyncpg.DataError):
            return ValidationFailed(f"rejected by the database: {exc}", details=[{"message": str(exc)}])
        if isinstance(exc, asyncpg.PostgresError):
            return Overloaded(f"the database refused the write ({exc})", retry_after=1.0)
        return exc


_KIND = {table: kind for kind, table in TABLES.items()}


class _MigrationConn:
    """The migration runner's statements on PostgreSQL."""

    dialect = "postgres"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self._txn: Any = None

    async def ensure_table(self) -> None:
        await self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )

    async def begin_locked(self) -> None:
        self._txn = self.conn.transaction()
        await self._txn.start()
        await self.conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY + 1)

    async def applied(self) -> set[int]:
        return {int(r[0]) for r in await self.conn.fetch("SELECT version FROM schema_migrations")}

    async def apply(self, script: str) -> None:
        await self.conn.execute(script)

    async def record(self, version: int, name: str) -> None:
        await self.conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)

    async def commit(self) -> None:
        await self._txn.commit()
        self._txn = None

    async def rollback(self) -> None:
        if self._txn is not None:
            await self._txn.rollback()
            self._txn = None


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
        return [StoredEvent(kind, int(r["seq"]), _shape(r)) for r in rows]


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

    # -- lifecycle
    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=2, max_size=self.settings.read_connections + 4, command_timeout=60
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise SchemaError(f"cannot connect to PostgreSQL: {exc}") from exc
        await self.migrate()
        await self._listen()

    async def migrate(self) -> list[str]:
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            return await migrations.migrate(_MigrationConn(conn))

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
            return await apply_batch(_Txn(conn), ops, savepoints=savepoints)

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
        where: dict[str, tuple[list[str], list[Any]]] = {}
        for kind in KINDS:
            if flt.wants(kind):
                params: list[Any] = []
                where[kind] = (filter_sql(kind, flt, params), params)
        return await self._read(where, after, before, limit)

    # -- entities, tokens, maintenance
    async def get_entity(self, table: str, ident: str) -> dict[str, Any] | None:
        assert table in ENTITY_TABLES
        try:
            key = uuid.UUID(ident)
        except ValueError:
            return None
        rows = await self._fetch(f"SELECT * FROM {table} WHERE id = $1", key)
        return _shape(rows[0]) if rows else None

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
        return [_shape(r) for r in await self._fetch(sql, *params)]

    async def agent_log_counts(self, agent_ids: Sequence[str]) -> dict[str, int]:
        if not agent_ids:
            return {}
        rows = await self._fetch(
            "SELECT agent_id, count(*) FROM agent_logs WHERE agent_id = ANY($1::uuid[]) GROUP BY agent_id",
            list(agent_ids),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def load_tokens(self) -> list[TokenRecord]:
        rows = await self._fetch(
            "SELECT id, name, token_hash, scopes, agent_ids, created_at, revoked_at FROM api_tokens ORDER BY created_at"
        )
        return [
            TokenRecord(
                str(r["id"]),
                r["name"],
                r["token_hash"],
                tuple(orjson.loads(r["scopes"])),
                tuple(orjson.loads(r["agent_ids"])),
                format_ts(r["created_at"]),
                format_ts(r["revoked_at"]) if r["revoked_at"] else None,
            )
            for r in rows
        ]

    async def maintain(self) -> dict[str, int]:
        return {}  # autovacuum does PostgreSQL's housekeeping

    async def sizes(self) -> dict[str, int]:
        rows = await self._fetch("SELECT pg_database_size(current_database())")
        return {"db_bytes": int(rows[0][0]), "wal_bytes": 0}
