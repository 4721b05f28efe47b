"""SQLite driver: one write connection on its own thread, a small pool of reader threads.

Why threads with plain sqlite3 connections instead of aiosqlite: each aiosqlite call is a thread
hop (~80-100 µs of mostly CPU). A write batch is one transaction and a two-table read is three
statements; running each as ONE function on the connection's own thread costs one hop, the
pattern datasette uses. The hub gets its own reader so ``PRAGMA data_version`` tells it when
another process committed to the same file, and polling plus reading the new rows is a single
hop. The write rules themselves live in ``rules.py``; this module only has SQL and connections.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from ..auth import TokenRecord
from ..config import Settings
from ..errors import BadParameter, Overloaded, SchemaError, ValidationFailed
from ..filters import KINDS, EventFilter
from ..models import LEVEL_RANK, LEVELS, now_ts
from . import migrate as migrations
from .base import BatchResult, RawRow, StoredEvent, StreamMeta, WriteOp
from .rules import (
    AGENT_COLS,
    COLUMNS,
    ENTITY_TABLES,
    SYSTEM_COLS,
    TABLES,
    Rerun,
    apply_batch,
    read_both,
    run_now,
)
from .tokens import load_tokens

T = TypeVar("T")
log = logging.getLogger("orchlog.sqlite")

__all__ = ["AGENT_COLS", "COLUMNS", "SYSTEM_COLS", "SqliteStore", "connect", "insert_sql", "migrate", "migrate_path"]


def _json_row(cols: Sequence[str]) -> str:
    parts = [f"'{c}', json({c})" if c in ("payload", "metadata") else f"'{c}', {c}" for c in cols]
    return f"json_object({', '.join(parts)})"


JSON_ROW = {"agent_log": _json_row(AGENT_COLS), "system_log": _json_row(SYSTEM_COLS)}
_JSON_COLUMNS = frozenset({"payload", "metadata"})
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


class _MigrationConn:
    """The migration runner's statements on SQLite (synchronous underneath: see ``run_now``)."""

    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def ensure_table(self) -> None:
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT"
        )

    async def begin_locked(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    async def applied(self) -> set[int]:
        return {row[0] for row in self.conn.execute("SELECT version FROM schema_migrations")}

    async def apply(self, script: str) -> None:
        for statement in _statements(script):
            self.conn.execute(statement)

    async def record(self, version: int, name: str) -> None:
        self.conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", (version, name, now_ts())
        )

    async def commit(self) -> None:
        self.conn.execute("COMMIT")

    async def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations (see ``store/migrate.py``); returns what was applied."""
    return run_now(migrations.migrate(_MigrationConn(conn)))


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


def insert_sql(table: str, cols: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"


_INSERT = {"agent_logs": insert_sql("agent_logs", AGENT_COLS), "system_logs": insert_sql("system_logs", SYSTEM_COLS)}


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


class _Txn:
    """The ``rules.Txn`` statements on the write connection. Methods are coroutines only in
    form: each is synchronous, so ``run_now`` drives a whole batch in one call on this thread."""

    integrity_errors: tuple[type[BaseException], ...] = (sqlite3.IntegrityError,)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.dirty = False

    def _write(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        self.dirty = True
        return self.conn.execute(sql, params)

    async def last_seq(self) -> int:
        # max(seq) too: rows written by another tool without updating last_seq keep their seqs
        row = self.conn.execute(
            "SELECT max(last_seq, (SELECT coalesce(max(seq), 0) FROM agent_logs),"
            " (SELECT coalesce(max(seq), 0) FROM system_logs)) FROM stream_meta WHERE id = 1"
        ).fetchone()
        return int(row[0])

    async def set_last_seq(self, seq: int) -> None:
        self._write("UPDATE stream_meta SET last_seq = ? WHERE id = 1", (seq,))

    async def savepoint(self) -> None:
        self.conn.execute("SAVEPOINT op")

    async def release(self) -> None:
        self.conn.execute("RELEASE op")

    async def rollback_to(self) -> None:
        self.conn.execute("ROLLBACK TO op")
        self.conn.execute("RELEASE op")

    async def known_agents(self, ids: Sequence[str]) -> set[str]:
        out: set[str] = set()
        for chunk in _chunks(ids):
            rows = self.conn.execute(f"SELECT id FROM agents WHERE id IN ({_marks(chunk)})", chunk)
            out.update(row[0] for row in rows)
        return out

    async def log_ids(self, ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        found: dict[str, tuple[str, int]] = {}
        for chunk in _chunks(ids):
            marks = _marks(chunk)
            sql = (
                f"SELECT id, 'agent_logs', seq FROM agent_logs WHERE id IN ({marks}) "
                f"UNION ALL SELECT id, 'system_logs', seq FROM system_logs WHERE id IN ({marks})"
            )
            for ident, table, seq in self.conn.execute(sql, [*chunk, *chunk]):
                found[ident] = (table, seq)
        return found

    async def insert_logs(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        self.dirty = True
        self.conn.executemany(_INSERT[table], rows)

    async def row(self, table: str, ident: str, *, for_update: bool = False) -> dict[str, Any] | None:
        cur = self.conn.execute(f"SELECT * FROM {table} WHERE id = ?", (ident,))
        cur.row_factory = _plain_row
        row: Any = cur.fetchone()
        return dict(row) if row is not None else None

    async def insert(self, table: str, values: dict[str, Any], *, ignore_existing: bool = False) -> None:
        values = _adapt(values)
        verb = "INSERT OR IGNORE" if ignore_existing else "INSERT"
        self._write(f"{verb} INTO {table} ({', '.join(values)}) VALUES ({_marks(list(values))})", list(values.values()))

    async def update(self, table: str, ident: str, changes: dict[str, Any]) -> None:
        changes = _adapt(changes)
        sets = ", ".join(f"{name} = ?" for name in changes)
        self._write(f"UPDATE {table} SET {sets} WHERE id = ?", [*changes.values(), ident])

    def public(self, row: dict[str, Any]) -> dict[str, Any]:
        return _public_entity(row)

    async def nth_newest_seq(self, table: str, offset: int) -> int:
        row = self.conn.execute(f"SELECT seq FROM {table} ORDER BY seq DESC LIMIT 1 OFFSET ?", (offset,)).fetchone()
        return int(row[0]) if row else 0

    async def oldest_seqs(self, table: str, upto: int, limit: int) -> list[int]:
        sql = f"SELECT seq FROM {table} WHERE seq <= ? ORDER BY seq LIMIT ?"
        return [row[0] for row in self.conn.execute(sql, (upto, limit))]

    async def seqs_older_than(self, table: str, before: str, above: int, limit: int) -> list[int]:
        sql = f"SELECT seq FROM {table} WHERE timestamp < ? AND seq > ? LIMIT ?"
        return [row[0] for row in self.conn.execute(sql, (before, above, limit))]

    async def delete_seqs(self, table: str, seqs: list[int]) -> None:
        self.dirty = True
        for chunk in _chunks(seqs):
            self.conn.execute(f"DELETE FROM {table} WHERE seq IN ({_marks(chunk)})", chunk)

    async def raise_floor(self, seq: int) -> None:
        self._write("UPDATE stream_meta SET floor_seq = max(floor_seq, ?) WHERE id = 1", (seq,))

    async def index_fulltext(self, chunk: int) -> int:
        conn = self.conn
        upto = int(conn.execute("SELECT upto FROM fts_state WHERE id = 1").fetchone()[0])
        head = int(conn.execute("SELECT last_seq FROM stream_meta WHERE id = 1").fetchone()[0])
        if head <= upto:
            return 0
        end = min(head, upto + chunk)
        self._write(
            "INSERT INTO agent_logs_fts (rowid, content, summary, event_type) "
            "SELECT seq, content, summary, event_type FROM agent_logs WHERE seq > ? AND seq <= ?",
            (upto, end),
        )
        self._write(
            "INSERT INTO system_logs_fts (rowid, message, summary) "
            "SELECT seq, message, summary FROM system_logs WHERE seq > ? AND seq <= ?",
            (upto, end),
        )
        self._write("UPDATE fts_state SET upto = ? WHERE id = 1", (end,))
        return end - upto

    def client_error(self, exc: Exception) -> Exception:
        if isinstance(exc, sqlite3.IntegrityError):
            return ValidationFailed(f"rejected by a database constraint: {exc}", details=[{"message": str(exc)}])
        if isinstance(exc, sqlite3.OperationalError):
            return _busy(exc)
        return exc


def _adapt(values: dict[str, Any]) -> dict[str, Any]:
    if "archived" in values and values["archived"] is not None:
        values = {**values, "archived": int(values["archived"])}
    return values


class _Writer:
    """Runs on the write thread only; owns the one write connection.

    Two states refuse writes beyond what SQLite itself reports:
    - the file was deleted or replaced under us (its st_dev/st_ino changed, checked before every
      batch and on each maintenance tick): commits would go to an unlinked inode and vanish at
      the next restart, so writes get 503 and readiness fails until the server is restarted;
    - the disk quota is full: the last write failed for space and no space was freed since.
    """

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self.conn = conn
        self.path = path
        self.identity = _identity(path)
        self.lost: str | None = None  # why the file is no longer ours (logged once)
        self.full = False

    def _check_file(self) -> None:
        if self.lost is None and _identity(self.path) != self.identity:
            gone = not os.path.exists(self.path)
            self.lost = (
                f"the database file {self.path} was {'deleted' if gone else 'replaced'} while the server was "
                "running; writes are refused so nothing acked can vanish: restart the server"
            )
            log.error("%s", self.lost)
        if self.lost is not None:
            raise Overloaded(self.lost, retry_after=30.0)

    def batch(self, ops: Sequence[WriteOp]) -> BatchResult:
        """ONE transaction: without savepoints first; again with one per op if an op failed
        after writing (rules.apply_batch)."""
        self._check_file()
        try:
            try:
                result = self._transaction(ops, savepoints=False)
            except Rerun:
                result = self._transaction(ops, savepoints=True)
        except Overloaded as exc:
            self.full = self.full or exc.message.startswith(_FULL)
            raise
        self.full = any(isinstance(r, Overloaded) and r.message.startswith(_FULL) for r in result.results)
        return result

    def _transaction(self, ops: Sequence[WriteOp], *, savepoints: bool) -> BatchResult:
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _busy(exc) from exc
        try:
            result = run_now(apply_batch(_Txn(conn), ops, savepoints=savepoints))
            conn.execute("COMMIT")
            return result
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise _busy(exc) from exc
            raise

    def maintain(self) -> dict[str, int]:
        """PASSIVE checkpoint (never blocks readers or writers), then return freed pages."""
        self._check_file()
        busy, wal_pages, moved = self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.conn.execute("PRAGMA incremental_vacuum(1000)")
        return {"checkpoint_busy": busy, "wal_pages": wal_pages, "checkpointed_pages": moved}

    def check_writable(self) -> None:
        self._check_file()
        if self.full and not self._has_room():
            raise Overloaded(f"{_FULL} (the disk quota is used up): free space or let retention delete old events")
        self.full = False
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            raise _busy(exc) from exc

    def _has_room(self) -> bool:
        """Free pages under the quota again (retention or another process deleted rows)."""
        conn = self.conn
        free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
        room = int(conn.execute("PRAGMA max_page_count").fetchone()[0]) - int(
            conn.execute("PRAGMA page_count").fetchone()[0]
        )
        return free + room >= _ROOM_PAGES


_FULL = "the database is full"
_ROOM_PAGES = 8


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _busy(exc: sqlite3.OperationalError) -> Overloaded:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return Overloaded("the database is locked by another writer; retry shortly", retry_after=1.0)
    if "full" in text or "disk" in text.lower():
        return Overloaded(
            f"{_FULL} ({text}): free disk space or let retention delete old events; ingest resumes by itself",
            retry_after=5.0,
        )
    return Overloaded(f"the database refused the write ({text})", retry_after=1.0)


# ---------------------------------------------------------------- readers


def _fetch(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)
    cur.row_factory = _row_factory
    rows: list[dict[str, Any]] = cur.fetchall()
    return rows


class _Pages:
    """``rules.Pages`` on a reader connection (synchronous underneath: see ``run_now``)."""

    def __init__(self, conn: sqlite3.Connection, where: dict[str, tuple[list[str], list[Any]]]) -> None:
        self.conn = conn
        self.where = where

    async def head(self) -> int:
        return int(self.conn.execute("SELECT last_seq FROM stream_meta WHERE id = 1").fetchone()[0])

    async def page(
        self, kind: str, bounds: tuple[int, int | None, int | None], descending: bool, limit: int
    ) -> list[StoredEvent]:
        sql, params = page_sql(kind, self.where[kind], bounds, descending, limit)
        # SQLite renders each row as JSON: no per-column Python work on the hot read paths
        return [StoredEvent(kind, seq, RawRow(text)) for seq, text in self.conn.execute(sql, params)]


def page_sql(
    kind: str,
    where: tuple[list[str], list[Any]],
    bounds: tuple[int, int | None, int | None],
    descending: bool,
    limit: int,
) -> tuple[str, list[Any]]:
    """The one statement of a history/stream page of one table (tests EXPLAIN it)."""
    head, after, before = bounds
    terms, params = where
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
        f"ORDER BY seq {'DESC' if descending else 'ASC'} LIMIT {int(limit)}"
    )
    return sql, params


def _read(
    conn: sqlite3.Connection,
    where: dict[str, tuple[list[str], list[Any]]],
    after: int | None,
    before: int | None,
    limit: int,
) -> tuple[list[StoredEvent], bool]:
    return run_now(read_both(_Pages(conn, where), list(where), after, before, limit))


_EVERYTHING: dict[str, tuple[list[str], list[Any]]] = {kind: ([], []) for kind in KINDS}


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

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="orchlog-writer")
        conn = await self._on_writer(connect, self.path, self.settings)
        self._writer = _Writer(conn, self.path)
        await self._on_writer(migrate, conn)
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
        events, _ = await self._tail.run(lambda conn: _read(conn, _EVERYTHING, after, None, limit))
        return events

    async def poll_tail(self, after: int, limit: int) -> list[StoredEvent] | None:
        """One hop: None if nobody committed since the last poll, else ``tail(after, limit)``."""
        tail = self._tail
        assert tail is not None

        def poll(conn: sqlite3.Connection) -> list[StoredEvent] | None:
            if not tail.poll(conn):
                return None
            return _read(conn, _EVERYTHING, after, None, limit)[0]

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
        try:
            return await self._read(lambda conn: _read(conn, where, after, before, limit))
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
