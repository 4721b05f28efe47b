"""SQLite driver: one write connection on its own thread, a small pool of reader threads.

Why threads with plain sqlite3 connections instead of aiosqlite: each aiosqlite call is a thread
hop (~80-100 µs of mostly CPU). A write batch is one transaction with a savepoint per request and
a two-table read is three statements; running each as ONE function on the connection's own
thread costs one hop, the pattern datasette uses. The hub gets its own reader so
``PRAGMA data_version`` tells it when another process committed to the same file, and polling
plus reading the new rows is a single hop.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import orjson

from ..auth import TokenRecord
from ..config import Settings
from ..errors import BadParameter, NotFound, Overloaded, SchemaError, ValidationFailed
from ..filters import KINDS, EventFilter
from ..models import LEVEL_RANK, LEVELS, Ack, AgentLogIn, EntityPatch, SystemLogIn, now_ts
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
    RawRow,
    StoredEvent,
    StreamMeta,
    UpdateEntity,
    WriteOp,
)
from .tokens import load_tokens

T = TypeVar("T")

AGENT_COLS = (
    "seq",
    "id",
    "agent_id",
    "session_id",
    "task_slug",
    "adw_id",
    "adw_step",
    "entry_index",
    "event_category",
    "event_type",
    "level",
    "content",
    "payload",
    "summary",
    "timestamp",
)
SYSTEM_COLS = (
    "seq",
    "id",
    "level",
    "message",
    "file_path",
    "adw_id",
    "adw_step",
    "summary",
    "metadata",
    "timestamp",
)
COLUMNS = {"agent_log": AGENT_COLS, "system_log": SYSTEM_COLS}


def _json_row(cols: Sequence[str]) -> str:
    parts = [f"'{c}', json({c})" if c in ("payload", "metadata") else f"'{c}', {c}" for c in cols]
    return f"json_object({', '.join(parts)})"


JSON_ROW = {"agent_log": _json_row(AGENT_COLS), "system_log": _json_row(SYSTEM_COLS)}
TABLES = {"agent_log": "agent_logs", "system_log": "system_logs"}
ENTITY_TABLES = ("orchestrator_agents", "agents", "prompts")
_JSON_COLUMNS = frozenset({"payload", "metadata"})
_MIGRATION_NAME = re.compile(r"^(\d+)_([\w-]+)\.sql$")
_IN_CHUNK = 500


# ---------------------------------------------------------------- connections and migrations


def configure(conn: sqlite3.Connection, settings: Settings) -> None:
    """The pragmas every connection gets (WAL, foreign keys, busy timeout, synchronous)."""
    conn.execute(f"PRAGMA busy_timeout = {int(settings.busy_timeout_ms)}")
    if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
        # a brand-new file: let retention give pages back (settable only before the header is written)
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA synchronous = {settings.synchronous}")
    if settings.max_db_pages:
        conn.execute(f"PRAGMA max_page_count = {int(settings.max_db_pages)}")


def connect(path: str, settings: Settings) -> sqlite3.Connection:
    """A configured synchronous connection in autocommit mode (we issue BEGIN ourselves)."""
    Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=settings.busy_timeout_ms / 1000)
    configure(conn, settings)
    return conn


def _statements(script: str) -> Iterable[str]:
    """Split a migration into statements (triggers included) without executescript's COMMIT."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer
            buffer = ""
    if buffer.strip() and not all(ln.strip().startswith("--") or not ln.strip() for ln in buffer.splitlines()):
        raise SchemaError(f"incomplete SQL statement at the end of a migration: {buffer.strip()[:80]!r}")


def available_migrations() -> list[tuple[int, str, Path]]:
    found = []
    for path in sorted(schema_dir("sqlite").glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), match.group(2), path))
    if not found:
        raise SchemaError(f"no migrations found in {schema_dir('sqlite')}; is the installation complete?")
    return found


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations in order, each in its own transaction; returns what was applied.

    Safe against a second process migrating at the same time (``BEGIN IMMEDIATE``, then re-check)
    and refuses a database whose schema is newer than this code knows.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT"
    )
    migrations = available_migrations()
    newest_known = migrations[-1][0]
    applied_now: list[str] = []
    for version, name, path in migrations:
        conn.execute("BEGIN IMMEDIATE")
        try:
            applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            newest_applied = max(applied, default=0)
            if newest_applied > newest_known:
                raise SchemaError(
                    f"this database has schema version {newest_applied}, newer than this orchlog knows "
                    f"({newest_known}); upgrade orchlog, or point --db at another database"
                )
            if version in applied:
                conn.execute("ROLLBACK")
                continue
            for statement in _statements(path.read_text(encoding="utf-8")):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, now_ts()),
            )
            conn.execute("COMMIT")
            applied_now.append(f"{version:04d}_{name}")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return applied_now


def migrate_path(path: str, settings: Settings) -> list[str]:
    conn = connect(path, settings)
    try:
        return migrate(conn)
    finally:
        conn.close()


# ---------------------------------------------------------------- row shaping


def _row_factory(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    """Rows as JSON-ready dicts, built on the reader thread. JSON columns stay pre-serialised
    (``orjson.Fragment``): a row is encoded once on the way out, never parsed and re-dumped."""
    out: dict[str, Any] = {}
    for (name, *_), value in zip(cursor.description, row, strict=True):
        if name in _JSON_COLUMNS and value is not None:
            value = orjson.Fragment(value)
        elif name == "archived":
            value = bool(value)
        elif name == "total_cost":
            value = float(value)
        out[name] = value
    return out


def _plain_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {name: value for (name, *_), value in zip(cursor.description, row, strict=True)}


def _public_entity(row: dict[str, Any]) -> dict[str, Any]:
    """A row read on the write thread, shaped like the readers' rows."""
    out = dict(row)
    for name in _JSON_COLUMNS & out.keys():
        out[name] = orjson.Fragment(out[name])
    if "archived" in out:
        out["archived"] = bool(out["archived"])
    if "total_cost" in out:
        out["total_cost"] = float(out["total_cost"])
    return out


def _money(value: Decimal) -> str:
    """Exact decimal text, no exponent, no trailing zeros ('0.0012', '3')."""
    text = format(value.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _like(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _in(column: str, values: Sequence[Any], params: list[Any]) -> str:
    params.extend(values)
    return f"{column} IN ({', '.join('?' for _ in values)})"


def filter_sql(kind: str, flt: EventFilter) -> tuple[list[str], list[Any]]:
    """WHERE terms for one table: the SQL twin of ``EventFilter.matches``."""
    terms: list[str] = []
    params: list[Any] = []
    if flt.levels:
        terms.append(_in("level", flt.levels, params))
    if flt.min_level is not None:
        allowed = [lv for lv in LEVELS if LEVEL_RANK[lv] >= LEVEL_RANK[flt.min_level]]
        terms.append(_in("level", allowed, params))
    if flt.adw_id is not None:
        terms.append("adw_id = ?")
        params.append(flt.adw_id)
    if flt.since is not None:
        terms.append("timestamp >= ?")
        params.append(flt.since)
    if flt.until is not None:
        terms.append("timestamp < ?")
        params.append(flt.until)
    if kind == "agent_log":
        if flt.agent_ids:
            terms.append(_in("agent_id", flt.agent_ids, params))
        if flt.event_categories:
            terms.append(_in("event_category", flt.event_categories, params))
        if flt.event_types:
            terms.append(_in("event_type", flt.event_types, params))
        if flt.task_slug is not None:
            terms.append("task_slug = ?")
            params.append(flt.task_slug)
        if flt.session_id is not None:
            terms.append("session_id = ?")
            params.append(flt.session_id)
    if flt.fts:
        terms.append(f"seq IN (SELECT rowid FROM {TABLES[kind]}_fts WHERE {TABLES[kind]}_fts MATCH ?)")
        params.append(flt.fts)
    if flt.q:
        fields = ("content", "summary", "event_type") if kind == "agent_log" else ("message", "summary")
        pattern = _like(flt.q)
        terms.append("(" + " OR ".join(f"{f} LIKE ? ESCAPE '\\'" for f in fields) + ")")
        params.extend(pattern for _ in fields)
    return terms, params


# ---------------------------------------------------------------- the write thread


class _SeqCounter:
    def __init__(self, start: int) -> None:
        self.value = start

    def take(self) -> int:
        self.value += 1
        return self.value


def _agent_row(item: AgentLogIn, seq: int) -> tuple[Any, ...]:
    return (
        seq,
        item.id,
        item.agent_id,
        item.session_id,
        item.task_slug,
        item.adw_id,
        item.adw_step,
        item.entry_index,
        item.event_category,
        item.event_type,
        item.level,
        item.content,
        orjson.dumps(item.payload).decode(),
        item.summary,
        item.timestamp,
    )


def _system_row(item: SystemLogIn, seq: int) -> tuple[Any, ...]:
    return (
        seq,
        item.id,
        item.level,
        item.message,
        item.file_path,
        item.adw_id,
        item.adw_step,
        item.summary,
        orjson.dumps(item.metadata).decode(),
        item.timestamp,
    )


def _insert_sql(table: str, cols: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"


_INSERT = {
    "agent_logs": _insert_sql("agent_logs", AGENT_COLS),
    "system_logs": _insert_sql("system_logs", SYSTEM_COLS),
}


class _Writer:
    """Runs on the write thread only; owns the one write connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def batch(self, ops: Sequence[WriteOp]) -> BatchResult:
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _busy(exc) from exc
        try:
            last = conn.execute(
                "SELECT max(last_seq, (SELECT coalesce(max(seq), 0) FROM agent_logs),"
                " (SELECT coalesce(max(seq), 0) FROM system_logs)) FROM stream_meta WHERE id = 1"
            ).fetchone()[0]
            counter = _SeqCounter(last)
            results: list[Any] = []
            for op in ops:
                mark = counter.value
                conn.execute("SAVEPOINT op")
                try:
                    results.append(self._apply(op, counter))
                    conn.execute("RELEASE op")
                except Exception as exc:  # noqa: BLE001 - the op fails alone, the batch goes on
                    try:
                        conn.execute("ROLLBACK TO op")
                        conn.execute("RELEASE op")
                    except sqlite3.Error:
                        # SQLite rolled the whole transaction back (disk full, I/O error): the
                        # batch fails as a whole, nothing half-written, every request gets 503
                        raise exc from None
                    counter.value = mark
                    results.append(_as_client_error(exc))
            if counter.value != last:
                conn.execute("UPDATE stream_meta SET last_seq = ? WHERE id = 1", (counter.value,))
            conn.execute("COMMIT")
            return BatchResult(results, counter.value)
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise _busy(exc) from exc
            raise

    def _apply(self, op: WriteOp, counter: _SeqCounter) -> Any:
        if isinstance(op, InsertLogs):
            return self._insert_logs(op.items, counter)
        if isinstance(op, CreateOrchestrator):
            return self._create_orchestrator(op)
        if isinstance(op, CreateAgent):
            return self._create_agent(op)
        if isinstance(op, UpdateEntity):
            return self._update(op.table, op.id, op.patch)
        if isinstance(op, ArchiveAgent):
            return self._update("agents", op.id, EntityPatch(archived=True))
        if isinstance(op, CreatePrompt):
            return self._create_prompt(op)
        if isinstance(op, PruneLogs):
            return self._prune(op)
        if isinstance(op, EnsureAgent):
            return self._ensure_agent(op)
        if isinstance(op, IndexFulltext):
            return self._index_fulltext(op.chunk)
        raise TypeError(f"unknown write op {op!r}")

    def _index_fulltext(self, chunk: int) -> int:
        conn = self.conn
        upto = int(conn.execute("SELECT upto FROM fts_state WHERE id = 1").fetchone()[0])
        head = int(conn.execute("SELECT last_seq FROM stream_meta WHERE id = 1").fetchone()[0])
        if head <= upto:
            return 0
        end = min(head, upto + chunk)
        conn.execute(
            "INSERT INTO agent_logs_fts (rowid, content, summary, event_type) "
            "SELECT seq, content, summary, event_type FROM agent_logs WHERE seq > ? AND seq <= ?",
            (upto, end),
        )
        conn.execute(
            "INSERT INTO system_logs_fts (rowid, message, summary) "
            "SELECT seq, message, summary FROM system_logs WHERE seq > ? AND seq <= ?",
            (upto, end),
        )
        conn.execute("UPDATE fts_state SET upto = ? WHERE id = 1", (end,))
        return end - upto

    def _ensure_agent(self, op: EnsureAgent) -> dict[str, Any]:
        now = now_ts()
        meta = orjson.dumps(op.metadata or {}).decode()
        self.conn.execute(
            "INSERT OR IGNORE INTO orchestrator_agents (id, status, metadata, created_at, updated_at) "
            "VALUES (?, 'idle', ?, ?, ?)",
            (op.orchestrator_id, meta, now, now),
        )
        existing = self._row("agents", op.agent_id)
        if existing is not None:
            return {**_public_entity(existing), "created": False}
        try:
            self.conn.execute(
                "INSERT INTO agents (id, orchestrator_agent_id, name, model, status, metadata, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, 'executing', ?, ?, ?)",
                (op.agent_id, op.orchestrator_id, op.name, op.model, meta, now, now),
            )
        except sqlite3.IntegrityError as exc:
            raise _integrity("agent", exc) from exc
        row = self._row("agents", op.agent_id)
        assert row is not None
        return {**_public_entity(row), "created": True}

    def _prune(self, op: PruneLogs) -> int:
        assert op.table in ("agent_logs", "system_logs")
        conn = self.conn
        cutoff = 0
        if op.keep_rows is not None:
            row = conn.execute(
                f"SELECT seq FROM {op.table} ORDER BY seq DESC LIMIT 1 OFFSET ?", (op.keep_rows,)
            ).fetchone()
            cutoff = row[0] if row else 0
        if op.before is not None:
            row = conn.execute(
                f"SELECT max(seq) FROM (SELECT seq FROM {op.table} WHERE timestamp < ? ORDER BY seq LIMIT ?)",
                (op.before, op.chunk),
            ).fetchone()
            cutoff = max(cutoff, row[0] or 0)
        if not cutoff:
            return 0
        victims = conn.execute(
            f"SELECT max(seq), count(*) FROM (SELECT seq FROM {op.table} WHERE seq <= ? ORDER BY seq LIMIT ?)",
            (cutoff, op.chunk),
        ).fetchone()
        upto, count = victims[0], victims[1]
        if not count:
            return 0
        conn.execute(f"DELETE FROM {op.table} WHERE seq <= ?", (upto,))
        # everything at or below the floor may be gone: resuming below it gets a `reset`
        conn.execute("UPDATE stream_meta SET floor_seq = max(floor_seq, ?) WHERE id = 1", (upto,))
        return int(count)

    def maintain(self) -> dict[str, int]:
        """PASSIVE checkpoint (never blocks readers or writers), then return freed pages."""
        busy, wal_pages, moved = self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.conn.execute("PRAGMA incremental_vacuum(1000)")
        return {"checkpoint_busy": busy, "wal_pages": wal_pages, "checkpointed_pages": moved}

    def _existing(self, table: str, ids: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            sql = f"SELECT id, seq FROM {table} WHERE id IN ({', '.join('?' for _ in chunk)})"
            found.update(self.conn.execute(sql, chunk).fetchall())
        return found

    def _insert_logs(self, items: Sequence[AgentLogIn | SystemLogIn], counter: _SeqCounter) -> list[Ack]:
        agent_ids = sorted({it.agent_id for it in items if isinstance(it, AgentLogIn)})
        if agent_ids:
            known = set(self._existing_agents(agent_ids))
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
        existing = {
            "agent_logs": self._existing("agent_logs", [str(it.id) for it in items if isinstance(it, AgentLogIn)]),
            "system_logs": self._existing("system_logs", [str(it.id) for it in items if isinstance(it, SystemLogIn)]),
        }
        rows: dict[str, list[tuple[Any, ...]]] = {"agent_logs": [], "system_logs": []}
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
            rows[table].append(_agent_row(it, seq) if isinstance(it, AgentLogIn) else _system_row(it, seq))
            acks.append(Ack.model_construct(id=ident, seq=seq, duplicate=False))
        for table, values in rows.items():
            if values:
                self.conn.executemany(_INSERT[table], values)
        return acks

    def _existing_agents(self, ids: list[str]) -> list[str]:
        out: list[str] = []
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            sql = f"SELECT id FROM agents WHERE id IN ({', '.join('?' for _ in chunk)})"
            out.extend(row[0] for row in self.conn.execute(sql, chunk))
        return out

    def _row(self, table: str, ident: str) -> dict[str, Any] | None:
        cur = self.conn.execute(f"SELECT * FROM {table} WHERE id = ?", (ident,))
        cur.row_factory = _plain_row
        row: Any = cur.fetchone()
        return dict(row) if row is not None else None

    def _insert_entity(self, table: str, values: dict[str, Any]) -> dict[str, Any]:
        cols = list(values)
        self.conn.execute(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
            [values[c] for c in cols],
        )
        row = self._row(table, values["id"])
        assert row is not None
        return _public_entity(row)

    @staticmethod
    def _entity_values(spec: Any) -> dict[str, Any]:
        values: dict[str, Any] = spec.model_dump()
        values["id"] = values.get("id") or str(uuid.uuid4())
        if "metadata" in values:
            values["metadata"] = orjson.dumps(values["metadata"]).decode()
        if "total_cost" in values:
            values["total_cost"] = _money(values["total_cost"])
        if "archived" in values:
            values["archived"] = int(values["archived"])
        return values

    def _create_orchestrator(self, op: CreateOrchestrator) -> dict[str, Any]:
        values = self._entity_values(op.spec)
        values["created_at"] = values["updated_at"] = now_ts()
        try:
            return self._insert_entity("orchestrator_agents", values)
        except sqlite3.IntegrityError as exc:
            raise _integrity("orchestrator agent", exc) from exc

    def _create_agent(self, op: CreateAgent) -> dict[str, Any]:
        values = self._entity_values(op.spec)
        if self._row("orchestrator_agents", values["orchestrator_agent_id"]) is None:
            raise ValidationFailed(
                f"orchestrator_agent_id {values['orchestrator_agent_id']} is not a known orchestrator agent",
                details=[{"field": "orchestrator_agent_id", "message": "unknown orchestrator agent"}],
            )
        values["created_at"] = values["updated_at"] = now_ts()
        try:
            return self._insert_entity("agents", values)
        except sqlite3.IntegrityError as exc:
            raise _integrity("agent", exc) from exc

    def _create_prompt(self, op: CreatePrompt) -> dict[str, Any]:
        values = self._entity_values(op.spec)
        values["timestamp"] = values.get("timestamp") or now_ts()
        if values.get("agent_id") and self._row("agents", values["agent_id"]) is None:
            raise ValidationFailed(
                f"agent_id {values['agent_id']} is not a known agent",
                details=[{"field": "agent_id", "message": "unknown agent"}],
            )
        return self._insert_entity("prompts", values)

    def _update(self, table: str, ident: str, patch: EntityPatch) -> tuple[dict[str, Any], dict[str, Any]]:
        old = self._row(table, ident)
        if old is None:
            raise NotFound(f"no {table[:-1].replace('_', ' ')} with id {ident}")
        changes: dict[str, Any] = {}
        given = patch.model_dump(exclude_unset=True)
        allowed = set(old)
        for name, value in given.items():
            if name.startswith("add_"):
                continue
            if name not in allowed:
                raise ValidationFailed(
                    f"{name} cannot be set on {table}",
                    details=[{"field": name, "message": "not a column here"}],
                )
            if name == "metadata":
                value = orjson.dumps(value).decode()
            elif name == "total_cost":
                value = _money(value)
            elif name == "archived":
                value = int(value)
            changes[name] = value
        if patch.add_input_tokens:
            changes["input_tokens"] = int(changes.get("input_tokens", old["input_tokens"])) + patch.add_input_tokens
        if patch.add_output_tokens:
            changes["output_tokens"] = int(changes.get("output_tokens", old["output_tokens"])) + patch.add_output_tokens
        if patch.add_cost:
            base = Decimal(str(changes.get("total_cost", old["total_cost"])))
            changes["total_cost"] = _money(base + patch.add_cost)
        changes["updated_at"] = now_ts()
        sets = ", ".join(f"{name} = ?" for name in changes)
        try:
            self.conn.execute(f"UPDATE {table} SET {sets} WHERE id = ?", [*changes.values(), ident])
        except sqlite3.IntegrityError as exc:
            raise _integrity(table[:-1], exc) from exc
        new = self._row(table, ident)
        assert new is not None
        return _public_entity(old), _public_entity(new)

    def check_writable(self) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            raise _busy(exc) from exc


def _busy(exc: sqlite3.OperationalError) -> Overloaded:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return Overloaded("the database is locked by another writer; retry shortly", retry_after=1.0)
    if "full" in text or "disk" in text.lower():
        return Overloaded(
            f"the database is full ({text}): free disk space or let retention delete old events; "
            "ingest resumes by itself",
            retry_after=5.0,
        )
    return Overloaded(f"the database refused the write ({text})", retry_after=1.0)


def _integrity(what: str, exc: sqlite3.IntegrityError) -> ValidationFailed:
    text = str(exc)
    field = "id"
    if "session_id" in text:
        field = "session_id"
    elif "name" in text:
        field = "name"
    elif "FOREIGN KEY" in text:
        field = "foreign_key"
    return ValidationFailed(
        f"the {what} conflicts with an existing row ({text})",
        details=[{"field": field, "message": text, "type": "integrity"}],
    )


def _as_client_error(exc: Exception) -> Exception:
    if isinstance(exc, sqlite3.IntegrityError):
        return ValidationFailed(f"rejected by a database constraint: {exc}", details=[{"message": str(exc)}])
    if isinstance(exc, sqlite3.OperationalError):
        return _busy(exc)
    return exc


# ---------------------------------------------------------------- readers


def _fetch(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)
    cur.row_factory = _row_factory
    rows: list[dict[str, Any]] = cur.fetchall()
    return rows


def read_both(
    conn: sqlite3.Connection,
    where: dict[str, tuple[list[str], list[Any]]],
    after: int | None,
    before: int | None,
    limit: int,
) -> list[StoredEvent]:
    """Up to limit+1 events from each wanted table, merged by seq (runs on a reader thread).

    The two tables are read by two statements, i.e. two snapshots: a commit between them
    could show a newer row of one table without an older row of the other, and a reader
    that advanced its cursor past it would skip that row forever. So every read is bounded
    by the head seq read FIRST: all rows at or below it were committed with it, so both
    statements see all of them, and nothing above it is returned until the next read.
    """
    head = int(conn.execute("SELECT last_seq FROM stream_meta WHERE id = 1").fetchone()[0])
    descending = before is not None and after is None
    events: list[StoredEvent] = []
    for kind, (terms, params) in where.items():
        terms = [*terms, "seq <= ?"]
        params = [*params, head]
        if after is not None:
            terms.append("seq > ?")
            params.append(after)
        if before is not None:
            terms.append("seq < ?")
            params.append(before)
        sql = (
            f"SELECT seq, {JSON_ROW[kind]} FROM {TABLES[kind]} WHERE {' AND '.join(terms)} "
            f"ORDER BY seq {'DESC' if descending else 'ASC'} LIMIT {int(limit) + 1}"
        )
        # SQLite renders each row as JSON: no per-column Python work on the hot read paths
        events.extend(StoredEvent(kind, seq, RawRow(text)) for seq, text in conn.execute(sql, params))
    events.sort(key=lambda e: e.seq, reverse=descending)
    return events


class _Reader:
    """One read-only connection on its own thread: a whole read is ONE hop off the event loop
    (aiosqlite would make each statement a hop; a two-table read is three statements)."""

    def __init__(self, path: str, settings: Settings, name: str) -> None:
        self.path = path
        self.settings = settings
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.conn: sqlite3.Connection | None = None
        self.data_version: int | None = None

    async def open(self) -> None:
        def _open() -> None:
            conn = connect(self.path, self.settings)
            conn.execute("PRAGMA query_only = ON")
            self.conn = conn

        await self.run(lambda _conn: None, opening=_open)

    async def run(self, fn: Callable[[sqlite3.Connection], T], *, opening: Callable[[], None] | None = None) -> T:
        def call() -> T:
            if opening is not None:
                opening()
            assert self.conn is not None
            return fn(self.conn)

        return await asyncio.get_running_loop().run_in_executor(self.executor, call)

    async def close(self) -> None:
        def _close(conn: sqlite3.Connection) -> None:
            conn.close()

        if self.conn is not None:
            await self.run(_close)
            self.conn = None
        self.executor.shutdown(wait=True)

    def poll(self, conn: sqlite3.Connection) -> bool:
        """True if any connection committed since the last poll (``PRAGMA data_version``)."""
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        before, self.data_version = self.data_version, version
        return before is not None and before != version


# ---------------------------------------------------------------- the async store


class SqliteStore:
    """The ``Store`` for one SQLite file."""

    def __init__(self, path: str, settings: Settings) -> None:
        self.path = path
        self.settings = settings
        self._executor: ThreadPoolExecutor | None = None
        self._writer: _Writer | None = None
        self._free: asyncio.Queue[_Reader] = asyncio.Queue()
        self._readers: list[_Reader] = []
        self._tail: _Reader | None = None
        self.migrations_applied: list[str] = []

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="orchlog-writer")
        conn = await self._on_writer(connect, self.path, self.settings)
        self._writer = _Writer(conn)
        self.migrations_applied = await self._on_writer(migrate, conn)
        for i in range(self.settings.read_connections):
            reader = _Reader(self.path, self.settings, f"orchlog-reader-{i}")
            await reader.open()
            self._readers.append(reader)
            self._free.put_nowait(reader)
        self._tail = _Reader(self.path, self.settings, "orchlog-tail")
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
        return await self._read(lambda conn: _fetch(conn, sql, params))

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
        everything: dict[str, tuple[list[str], list[Any]]] = {kind: ([], []) for kind in KINDS}
        events = await self._tail.run(lambda conn: read_both(conn, everything, after, None, limit))
        return events[:limit]

    async def poll_tail(self, after: int, limit: int) -> list[StoredEvent] | None:
        """One hop: None if nobody committed since the last poll, else ``tail(after, limit)``."""
        tail = self._tail
        assert tail is not None
        everything: dict[str, tuple[list[str], list[Any]]] = {kind: ([], []) for kind in KINDS}

        def poll(conn: sqlite3.Connection) -> list[StoredEvent] | None:
            if not tail.poll(conn):
                return None
            return read_both(conn, everything, after, None, limit)[:limit]

        return await tail.run(poll)

    async def read_events(
        self,
        flt: EventFilter,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> tuple[list[StoredEvent], bool]:
        descending = before is not None and after is None
        where = {kind: filter_sql(kind, flt) for kind in KINDS if flt.wants(kind)}
        try:
            events = await self._read(lambda conn: read_both(conn, where, after, before, limit))
        except sqlite3.OperationalError as exc:
            if flt.fts and not any(word in str(exc) for word in ("locked", "busy", "disk")):
                raise BadParameter(
                    "q", f"not a valid full-text query ({exc}); quote phrases, use word* for prefixes, AND/OR/NOT"
                ) from None
            raise
        has_more = len(events) > limit
        events = events[:limit]
        if descending:
            events.reverse()
        return events, has_more

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
