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
import re
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from ..auth import TokenRecord
from ..config import Settings
from ..errors import BadParameter, NotFound, Overloaded, SchemaError, ValidationFailed
from ..filters import KINDS, EventFilter
from ..models import LEVEL_RANK, LEVELS, Ack, AgentLogIn, EntityPatch, SystemLogIn, format_ts, now_ts
from ..paths import schema_dir
from . import tokens as token_sql
from .base import (
    ArchiveAgent,
    BatchResult,
    CreateAgent,
    CreateOrchestrator,
    CreatePrompt,
    EnsureAgent,
    IndexFulltext,
    InsertLogs,
    PruneLogs,
    StoredEvent,
    StreamMeta,
    UpdateEntity,
    WriteOp,
)
from .sqlite import AGENT_COLS, COLUMNS, SYSTEM_COLS, TABLES, _money

log = logging.getLogger("orchlog.postgres")
CHANNEL = "orchlog_events"
LOCK_KEY = 0x6F72636C6F67  # "orclog": serialises seq assignment + commit across replicas
_MIGRATION = re.compile(r"^(\d+)_([\w-]+)\.sql$")
ENTITY_TABLES = ("orchestrator_agents", "agents", "prompts")
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


class _Counter:
    def __init__(self, start: int) -> None:
        self.value = start

    def take(self) -> int:
        self.value += 1
        return self.value


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
        found = []
        for path in sorted(schema_dir("postgres").glob("*.sql")):
            match = _MIGRATION.match(path.name)
            if match:
                found.append((int(match.group(1)), match.group(2), path))
        newest_known = found[-1][0]
        applied_now = []
        async with self._pool.acquire() as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            for version, name, path in found:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY + 1)
                    applied = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
                    if applied and max(applied) > newest_known:
                        raise SchemaError(
                            f"this database has schema version {max(applied)}, newer than this orchlog knows "
                            f"({newest_known}); upgrade orchlog"
                        )
                    if version in applied:
                        continue
                    await conn.execute(path.read_text(encoding="utf-8"))
                    await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
                    applied_now.append(f"{version:04d}_{name}")
        return applied_now

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
        assert self._pool is not None
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
                last = await conn.fetchval(
                    "SELECT greatest(last_seq, (SELECT coalesce(max(seq), 0) FROM agent_logs),"
                    " (SELECT coalesce(max(seq), 0) FROM system_logs)) FROM stream_meta WHERE id = 1"
                )
                counter = _Counter(int(last))
                results: list[Any] = []
                for op in ops:
                    mark = counter.value
                    savepoint = conn.transaction()
                    await savepoint.start()
                    try:
                        results.append(await self._apply(conn, op, counter))
                        await savepoint.commit()
                    except Exception as exc:  # noqa: BLE001 - the op fails alone
                        await savepoint.rollback()
                        counter.value = mark
                        results.append(_client_error(exc))
                if counter.value != last:
                    await conn.execute("UPDATE stream_meta SET last_seq = $1 WHERE id = 1", counter.value)
                    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(counter.value))
                return BatchResult(results, counter.value)
        except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as exc:
            raise Overloaded(f"PostgreSQL is unreachable ({exc}); retry", retry_after=1.0) from exc

    async def _apply(self, conn: asyncpg.Connection, op: WriteOp, counter: _Counter) -> Any:
        if isinstance(op, InsertLogs):
            return await self._insert_logs(conn, op.items, counter)
        if isinstance(op, CreateOrchestrator):
            return await self._insert_entity(conn, "orchestrator_agents", _values(op.spec))
        if isinstance(op, CreateAgent):
            values = _values(op.spec)
            if await self._row(conn, "orchestrator_agents", values["orchestrator_agent_id"]) is None:
                raise ValidationFailed(
                    f"orchestrator_agent_id {values['orchestrator_agent_id']} is not a known orchestrator agent",
                    details=[{"field": "orchestrator_agent_id", "message": "unknown orchestrator agent"}],
                )
            return await self._insert_entity(conn, "agents", values)
        if isinstance(op, CreatePrompt):
            values = _values(op.spec)
            values["timestamp"] = _ts(values.get("timestamp") or now_ts())
            if values.get("agent_id") and await self._row(conn, "agents", values["agent_id"]) is None:
                raise ValidationFailed(
                    f"agent_id {values['agent_id']} is not a known agent",
                    details=[{"field": "agent_id", "message": "unknown agent"}],
                )
            return await self._insert_entity(conn, "prompts", values)
        if isinstance(op, UpdateEntity):
            return await self._update(conn, op.table, op.id, op.patch)
        if isinstance(op, ArchiveAgent):
            return await self._update(conn, "agents", op.id, EntityPatch(archived=True))
        if isinstance(op, EnsureAgent):
            return await self._ensure_agent(conn, op)
        if isinstance(op, PruneLogs):
            return await self._prune(conn, op)
        if isinstance(op, IndexFulltext):
            return 0  # a generated tsvector column: always in step
        raise TypeError(f"unknown write op {op!r}")

    async def _insert_logs(self, conn: asyncpg.Connection, items: Sequence[Any], counter: _Counter) -> list[Ack]:
        agent_ids = sorted({it.agent_id for it in items if isinstance(it, AgentLogIn)})
        if agent_ids:
            known = {str(r[0]) for r in await conn.fetch("SELECT id FROM agents WHERE id = ANY($1::uuid[])", agent_ids)}
            for index, it in enumerate(items):
                if isinstance(it, AgentLogIn) and it.agent_id not in known:
                    raise ValidationFailed(
                        f"item {index}: agent_id {it.agent_id} is not a known agent; create it first "
                        "with POST /api/v1/agents",
                        details=[
                            {
                                "index": index,
                                "field": "agent_id",
                                "message": f"unknown agent {it.agent_id}",
                                "type": "foreign_key",
                            }
                        ],
                    )
        existing: dict[str, dict[str, int]] = {}
        for table, cls in (("agent_logs", AgentLogIn), ("system_logs", SystemLogIn)):
            ids = [str(it.id) for it in items if isinstance(it, cls)]
            rows = await conn.fetch(f"SELECT id, seq FROM {table} WHERE id = ANY($1::uuid[])", ids) if ids else []
            existing[table] = {str(r[0]): int(r[1]) for r in rows}
        agent_rows: list[tuple[Any, ...]] = []
        system_rows: list[tuple[Any, ...]] = []
        acks: list[Ack] = []
        for it in items:
            table = "agent_logs" if isinstance(it, AgentLogIn) else "system_logs"
            ident = str(it.id)
            known_seq = existing[table].get(ident)
            if known_seq is not None:
                acks.append(Ack.model_construct(id=ident, seq=known_seq, duplicate=True))
                continue
            seq = counter.take()
            existing[table][ident] = seq
            if isinstance(it, AgentLogIn):
                agent_rows.append(
                    (
                        seq,
                        ident,
                        it.agent_id,
                        it.session_id,
                        it.task_slug,
                        it.adw_id,
                        it.adw_step,
                        it.entry_index,
                        it.event_category,
                        it.event_type,
                        it.level,
                        it.content,
                        orjson.dumps(it.payload).decode(),
                        it.summary,
                        _ts(str(it.timestamp)),
                    )
                )
            else:
                system_rows.append(
                    (
                        seq,
                        ident,
                        it.level,
                        it.message,
                        it.file_path,
                        it.adw_id,
                        it.adw_step,
                        it.summary,
                        orjson.dumps(it.metadata).decode(),
                        _ts(str(it.timestamp)),
                    )
                )
            acks.append(Ack.model_construct(id=ident, seq=seq, duplicate=False))
        for table, cols, rows in (("agent_logs", AGENT_COLS, agent_rows), ("system_logs", SYSTEM_COLS, system_rows)):
            if rows:
                await conn.copy_records_to_table(table, records=rows, columns=list(cols))
        return acks

    async def _row(self, conn: asyncpg.Connection, table: str, ident: str) -> dict[str, Any] | None:
        try:
            record = await conn.fetchrow(f"SELECT * FROM {table} WHERE id = $1", uuid.UUID(str(ident)))
        except ValueError:
            return None
        return _shape(record) if record is not None else None

    async def _insert_entity(self, conn: asyncpg.Connection, table: str, values: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC)
        if table != "prompts":
            values.setdefault("created_at", now)
            values.setdefault("updated_at", now)
        cols = list(values)
        placeholders = ", ".join(f"${i + 1}" for i in range(len(cols)))
        try:
            record = await conn.fetchrow(
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({placeholders}) RETURNING *", *values.values()
            )
        except asyncpg.UniqueViolationError as exc:
            field = "session_id" if "session_id" in str(exc) else ("name" if "name" in str(exc) else "id")
            raise ValidationFailed(
                f"conflicts with an existing row ({exc.detail or exc})",
                details=[{"field": field, "message": str(exc), "type": "integrity"}],
            ) from exc
        assert record is not None
        return _shape(record)

    async def _update(
        self, conn: asyncpg.Connection, table: str, ident: str, patch: EntityPatch
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        old_rec = await conn.fetchrow(f"SELECT * FROM {table} WHERE id = $1 FOR UPDATE", uuid.UUID(ident))
        if old_rec is None:
            raise NotFound(f"no {table[:-1].replace('_', ' ')} with id {ident}")
        old: dict[str, Any] = dict(old_rec.items())
        changes: dict[str, Any] = {}
        for name, value in patch.model_dump(exclude_unset=True).items():
            if name.startswith("add_"):
                continue
            if name not in old:
                raise ValidationFailed(
                    f"{name} cannot be set on {table}", details=[{"field": name, "message": "not a column here"}]
                )
            changes[name] = orjson.dumps(value).decode() if name == "metadata" else value
        if patch.add_input_tokens:
            changes["input_tokens"] = int(changes.get("input_tokens", old["input_tokens"])) + patch.add_input_tokens
        if patch.add_output_tokens:
            changes["output_tokens"] = int(changes.get("output_tokens", old["output_tokens"])) + patch.add_output_tokens
        if patch.add_cost:
            changes["total_cost"] = Decimal(str(changes.get("total_cost", old["total_cost"]))) + patch.add_cost
        changes["updated_at"] = datetime.now(UTC)
        sets = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(changes))
        try:
            new_rec = await conn.fetchrow(
                f"UPDATE {table} SET {sets} WHERE id = $1 RETURNING *", uuid.UUID(ident), *changes.values()
            )
        except asyncpg.UniqueViolationError as exc:
            raise ValidationFailed(
                f"conflicts with an existing row ({exc})", details=[{"field": "name", "message": str(exc)}]
            ) from exc
        assert new_rec is not None
        return _shape(old_rec), _shape(new_rec)

    async def _ensure_agent(self, conn: asyncpg.Connection, op: EnsureAgent) -> dict[str, Any]:
        meta = orjson.dumps(op.metadata or {}).decode()
        await conn.execute(
            "INSERT INTO orchestrator_agents (id, status, metadata) VALUES ($1, 'idle', $2) "
            "ON CONFLICT (id) DO NOTHING",
            uuid.UUID(op.orchestrator_id),
            meta,
        )
        existing = await self._row(conn, "agents", op.agent_id)
        if existing is not None:
            return {**existing, "created": False}
        record = await conn.fetchrow(
            "INSERT INTO agents (id, orchestrator_agent_id, name, model, status, metadata) "
            "VALUES ($1, $2, $3, $4, 'executing', $5) RETURNING *",
            uuid.UUID(op.agent_id),
            uuid.UUID(op.orchestrator_id),
            op.name,
            op.model,
            meta,
        )
        assert record is not None
        return {**_shape(record), "created": True}

    async def _prune(self, conn: asyncpg.Connection, op: PruneLogs) -> int:
        assert op.table in ("agent_logs", "system_logs")
        cutoff = 0
        if op.keep_rows is not None:
            row = await conn.fetchval(f"SELECT seq FROM {op.table} ORDER BY seq DESC LIMIT 1 OFFSET $1", op.keep_rows)
            cutoff = int(row or 0)
        if op.before is not None:
            row = await conn.fetchval(
                f"SELECT max(seq) FROM (SELECT seq FROM {op.table} WHERE timestamp < $1 ORDER BY seq LIMIT $2) s",
                _ts(op.before),
                op.chunk,
            )
            cutoff = max(cutoff, int(row or 0))
        if not cutoff:
            return 0
        upto, count = await conn.fetchrow(
            f"SELECT max(seq), count(*) FROM (SELECT seq FROM {op.table} WHERE seq <= $1 ORDER BY seq LIMIT $2) s",
            cutoff,
            op.chunk,
        )
        if not count:
            return 0
        await conn.execute(f"DELETE FROM {op.table} WHERE seq <= $1", upto)
        await conn.execute("UPDATE stream_meta SET floor_seq = greatest(floor_seq, $1) WHERE id = 1", upto)
        return int(count)

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

    async def _read_both(
        self, where: dict[str, tuple[list[str], list[Any]]], after: int | None, before: int | None, limit: int
    ) -> list[StoredEvent]:
        """Bounded by the head read first (same reasoning as SQLite: every row at or below it
        committed with it; the advisory lock makes commit order seq order)."""
        assert self._pool is not None
        descending = before is not None and after is None
        events: list[StoredEvent] = []
        async with self._pool.acquire() as conn:
            head = int(await conn.fetchval("SELECT last_seq FROM stream_meta WHERE id = 1"))
            for kind, (terms, params) in where.items():
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
                    f"ORDER BY seq {'DESC' if descending else 'ASC'} LIMIT {int(limit) + 1}"
                )
                try:
                    rows = await conn.fetch(sql, *params)
                except asyncpg.PostgresSyntaxError as exc:
                    raise BadParameter("q", f"not a valid full-text query ({exc})") from None
                events.extend(StoredEvent(kind, int(r["seq"]), _shape(r)) for r in rows)
        events.sort(key=lambda e: e.seq, reverse=descending)
        return events

    async def tail(self, after: int, limit: int) -> list[StoredEvent]:
        everything: dict[str, tuple[list[str], list[Any]]] = {kind: ([], []) for kind in KINDS}
        return (await self._read_both(everything, after, None, limit))[:limit]

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
        events = await self._read_both(where, after, before, limit)
        has_more = len(events) > limit
        events = events[:limit]
        if before is not None and after is None:
            events.reverse()
        return events, has_more

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


def _values(spec: Any) -> dict[str, Any]:
    values: dict[str, Any] = spec.model_dump()
    values["id"] = uuid.UUID(values.get("id") or str(uuid.uuid4()))
    for key in ("orchestrator_agent_id", "agent_id"):
        if values.get(key):
            values[key] = uuid.UUID(values[key])
    if "metadata" in values:
        values["metadata"] = orjson.dumps(values["metadata"]).decode()
    if "total_cost" in values:
        values["total_cost"] = Decimal(_money(values["total_cost"]))
    return values


def _client_error(exc: Exception) -> Exception:
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return ValidationFailed(f"rejected by a database constraint: {exc}", details=[{"message": str(exc)}])
    if isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, asyncpg.DataError):
        return Overloaded(f"the database refused the write ({exc})", retry_after=1.0)
    if isinstance(exc, asyncpg.DataError):
        return ValidationFailed(f"rejected by the database: {exc}", details=[{"message": str(exc)}])
    return exc
