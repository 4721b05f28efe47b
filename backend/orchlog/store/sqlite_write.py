"""The SQLite write thread: the ``rules.Txn`` statements on the one write connection, and the
transaction around each batch (plus the two states that refuse writes beyond SQLite's own).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any

import orjson

from ..errors import Overloaded, ValidationFailed
from .base import BatchResult, WriteOp
from .rules import AGENT_COLS, SYSTEM_COLS, Rerun, apply_batch, run_now
from .sqlite_read import JSON_COLUMNS

log = logging.getLogger("orchlog.sqlite")

_IN_CHUNK = 500


def _plain_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {name: value for (name, *_), value in zip(cursor.description, row, strict=True)}


def _public_entity(row: dict[str, Any]) -> dict[str, Any]:
    """A row read on the write thread, shaped like the readers' rows."""
    out = dict(row)
    for name in JSON_COLUMNS & out.keys():
        out[name] = orjson.Fragment(out[name])
    if "archived" in out:
        out["archived"] = bool(out["archived"])
    if "total_cost" in out:
        out["total_cost"] = float(out["total_cost"])
    return out


# ---------------------------------------------------------------- the write thread


def insert_sql(table: str, cols: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"


_MAX_ROWS_PER_INSERT = 1024  # x 15 columns stays under SQLite's 32,766 bound parameters (3.32+; see _usable)


def insert_values_sql(table: str, cols: Sequence[str], rows: int) -> str:
    """One INSERT of ``rows`` rows: ``VALUES (?, ...), (?, ...), ...``."""
    row = f"({', '.join('?' for _ in cols)})"
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES {', '.join([row] * rows)}"


class _RowInserts:
    """The INSERTs of one table, a statement per power of two of rows (1 .. 1024).

    ``executemany`` steps its statement once per row and hands the GIL over around every step:
    with the event loop's thread runnable on the same core, each hand-over is a thread switch (an
    800-row batch under load took 39 µs of wall time per row against 12 alone). A multi-row
    ``VALUES`` statement is one step for many rows, and SQLite binds the values straight from the
    parameter list (no JSON to write and unpack: 2-3 µs less per row than one ``json_each``
    statement over the batch as a JSON array, and every string, NUL included, is bound whole).
    A batch of n rows runs as the statements of n's binary digits, at most 11 different ones per
    table, so the connection's statement cache keeps every one prepared."""

    def __init__(self, table: str, cols: Sequence[str]) -> None:
        self.sql = [insert_values_sql(table, cols, 1 << bit) for bit in range(_MAX_ROWS_PER_INSERT.bit_length())]
        self._cols = len(cols)

    def _usable(self, conn: sqlite3.Connection) -> int:
        """How many of the statements fit the connection's bound-parameter limit: 32,766 since
        SQLite 3.32, 999 before (there a 1,024-row statement would fail every large batch)."""
        limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        return max(1, min(_MAX_ROWS_PER_INSERT, limit // self._cols)).bit_length()

    def run(self, conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        start, left = 0, len(rows)
        usable = self._usable(conn)
        while left:
            bit = min(left.bit_length(), usable) - 1
            size = 1 << bit
            conn.execute(self.sql[bit], list(chain.from_iterable(rows[start : start + size])))
            start += size
            left -= size


_INSERT = {
    "agent_logs": _RowInserts("agent_logs", AGENT_COLS),
    "system_logs": _RowInserts("system_logs", SYSTEM_COLS),
}


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
        _INSERT[table].run(self.conn, rows)

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


class Writer:
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
