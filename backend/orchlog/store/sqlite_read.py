"""SQLite reads: the WHERE terms of a filter, the one page statement, reader connections.

Each reader is one read-only connection on its own thread: a whole read is ONE hop off the event
loop (aiosqlite would make each statement a hop; a two-table read is three statements).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson

from ..config import Settings
from ..filters import KINDS, EventFilter, ascii_lower
from ..models import LEVEL_RANK, LEVELS
from .base import RawRow, StoredEvent
from .rules import AGENT_COLS, SYSTEM_COLS, TABLES, read_both, run_now
from .sqlite_conn import connect

T = TypeVar("T")
JSON_COLUMNS = frozenset({"payload", "metadata"})


def _json_row(cols: Sequence[str]) -> str:
    parts = [f"'{c}', json({c})" if c in ("payload", "metadata") else f"'{c}', {c}" for c in cols]
    return f"json_object({', '.join(parts)})"


JSON_ROW = {"agent_log": _json_row(AGENT_COLS), "system_log": _json_row(SYSTEM_COLS)}


def _row_factory(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    """Rows as JSON-ready dicts, built on the reader thread. JSON columns stay pre-serialised
    (``orjson.Fragment``): a row is encoded once on the way out, never parsed and re-dumped."""
    out: dict[str, Any] = {}
    for (name, *_), value in zip(cursor.description, row, strict=True):
        if name in JSON_COLUMNS and value is not None:
            value = orjson.Fragment(value)
        elif name == "archived":
            value = bool(value)
        elif name == "total_cost":
            value = float(value)
        out[name] = value
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
        if flt.tool_name is not None:  # a JSON string only: a number or object never matches its text
            terms.append("json_type(payload, '$.tool_name') = 'text' AND json_extract(payload, '$.tool_name') = ?")
            params.append(flt.tool_name)
    if flt.fts:
        terms.append(f"seq IN (SELECT rowid FROM {TABLES[kind]}_fts WHERE {TABLES[kind]}_fts MATCH ?)")
        params.append(flt.fts)
    if flt.q:
        terms.append(_substring(kind, flt.q, params))
    return terms, params


def _substring(kind: str, q: str, params: list[Any]) -> str:
    """ASCII-case-insensitive substring, exactly as ``EventFilter.matches`` does it. SQLite's LIKE
    stops at a NUL in the text or the pattern, so text holding ``\\u0000`` is searched with
    ``instr(lower())`` (which compares the whole value); LIKE stays the fast path for the rest."""
    fields = ("content", "summary", "event_type") if kind == "agent_log" else ("message", "summary")
    folded = ascii_lower(q)
    if "\0" in q:
        params.extend(folded for _ in fields)
        return "(" + " OR ".join(f"instr(lower({f}), ?) > 0" for f in fields) + ")"
    parts = []
    for f in fields:
        parts.append(f"({f} LIKE ? ESCAPE '\\' OR (instr({f}, char(0)) > 0 AND instr(lower({f}), ?) > 0))")
        params.extend((_like(q), folded))
    return "(" + " OR ".join(parts) + ")"


# whole seconds since the epoch, floored, from the canonical text (its first 19 characters are the
# UTC second itself, so no fraction or float enters); then a floored integer division by the bucket
_EPOCH_S = "CAST(strftime('%s', substr(timestamp, 1, 19)) AS INTEGER)"


def volume_sql(kind: str, where: tuple[list[str], list[Any]], bucket_s: int) -> tuple[str, list[Any]]:
    """Counts per (bucket, level) of one table's matching rows (see orchlog.volume)."""
    terms, params = where
    b = int(bucket_s)
    inner = f"SELECT {_EPOCH_S} AS e, level FROM {TABLES[kind]} WHERE {' AND '.join(terms) or '1'}"
    sql = f"SELECT (e - (((e % {b}) + {b}) % {b})) / {b} AS bucket, level, count(*) FROM ({inner}) GROUP BY 1, 2"
    return sql, list(params)


def span_sql(kind: str, where: tuple[list[str], list[Any]]) -> tuple[str, list[Any]]:
    """First and last matching timestamp. Two scalar subqueries, not one SELECT min(), max():
    SQLite answers a lone min() or max() from the timestamp index in O(log n), never the pair."""
    terms, params = where
    cond = " AND ".join(terms) or "1"
    sql = (
        f"SELECT (SELECT min(timestamp) FROM {TABLES[kind]} WHERE {cond}), "
        f"(SELECT max(timestamp) FROM {TABLES[kind]} WHERE {cond})"
    )
    return sql, [*params, *params]


def fetch_rows(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)
    cur.row_factory = _row_factory
    rows: list[dict[str, Any]] = cur.fetchall()
    return rows


class SqlitePages:
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


def read_pages(
    conn: sqlite3.Connection,
    where: dict[str, tuple[list[str], list[Any]]],
    after: int | None,
    before: int | None,
    limit: int,
) -> tuple[list[StoredEvent], bool]:
    return run_now(read_both(SqlitePages(conn, where), list(where), after, before, limit))


EVERYTHING: dict[str, tuple[list[str], list[Any]]] = {kind: ([], []) for kind in KINDS}


class Reader:
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
