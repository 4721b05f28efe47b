"""PostgreSQL writes: the ``rules.Txn`` statements on one pooled connection inside its
transaction, the migration runner's statements, and the row/value conversions both directions.

Each write batch takes a transaction-level advisory lock before assigning seqs, so batches commit
in seq order across replicas and a tailer never sees seq N+1 committed before N.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from ..errors import Overloaded, ValidationFailed
from ..models import format_ts
from .rules import COLUMNS, TABLES

CHANNEL = "orchlog_events"
LOCK_KEY = 0x6F72636C6F67  # "orclog": serialises seq assignment + commit across replicas
_UUID_COLS = frozenset({"id", "agent_id", "orchestrator_agent_id", "epoch"})
_TIME_COLS = frozenset({"timestamp", "created_at", "updated_at", "revoked_at"})
_JSON_COLS = frozenset({"payload", "metadata"})


def to_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def shape(record: asyncpg.Record) -> dict[str, Any]:
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


def _adapt(values: dict[str, Any]) -> dict[str, Any]:
    """Canonical text values (rules) → asyncpg's types for our columns."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is not None:
            if name in _UUID_COLS:
                value = uuid.UUID(str(value))
            elif name in _TIME_COLS:
                value = to_ts(value)
            elif name == "total_cost":
                value = Decimal(str(value))
        out[name] = value
    return out


def _uuid(ident: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(ident))
    except ValueError:
        return None


class Txn:
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
        records = [(*row[:-1], to_ts(row[-1])) for row in rows]  # the last column is the timestamp
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
        return shape(row)

    async def nth_newest_seq(self, table: str, offset: int) -> int:
        rows = await self._fetch(f"SELECT seq FROM {table} ORDER BY seq DESC LIMIT 1 OFFSET $1", offset)
        return int(rows[0][0]) if rows else 0

    async def oldest_seqs(self, table: str, upto: int, limit: int) -> list[int]:
        rows = await self._fetch(f"SELECT seq FROM {table} WHERE seq <= $1 ORDER BY seq LIMIT $2", upto, limit)
        return [int(r[0]) for r in rows]

    async def seqs_older_than(self, table: str, before: str, above: int, limit: int) -> list[int]:
        rows = await self._fetch(
            f"SELECT seq FROM {table} WHERE timestamp < $1 AND seq > $2 LIMIT $3", to_ts(before), above, limit
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


class MigrationConn:
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
