"""SQLite connections and migrations: the pragmas every connection gets, and the statements the
one migration runner (``store/migrate.py``) needs on SQLite."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..config import Settings
from ..errors import SchemaError
from ..models import now_ts
from . import migrate as migrations
from .rules import run_now

log = migrations.log  # the runner's own logger: one name for everything a migration says

_DROP_TABLE = re.compile(r"^\s*DROP TABLE (?:IF EXISTS )?(\w+)\s*;", re.IGNORECASE | re.MULTILINE)
_CREATED = re.compile(
    r"^\s*CREATE (?:UNIQUE )?(?:INDEX|TRIGGER) (?:IF NOT EXISTS )?(\w+)", re.IGNORECASE | re.MULTILINE
)
_LOCK_WAIT_MS = 30 * 60 * 1000  # another process's migration of a large database takes minutes
_NO_QUOTA = 4294967294  # SQLite's largest max_page_count


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
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            # held past the busy timeout: most likely another process in a long migration
            log.info("the database is locked by another process (a migration?); waiting up to 30 minutes")
            busy = self.conn.execute("PRAGMA busy_timeout").fetchone()[0]
            self.conn.execute(f"PRAGMA busy_timeout = {_LOCK_WAIT_MS}")
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            finally:
                self.conn.execute(f"PRAGMA busy_timeout = {int(busy)}")

    async def applied(self) -> set[int]:
        return {row[0] for row in self.conn.execute("SELECT version FROM schema_migrations")}

    async def apply(self, script: str) -> None:
        self._warn_about_dropped(script)
        for statement in _statements(script):
            self.conn.execute(statement)

    def _warn_about_dropped(self, script: str) -> None:
        """A migration that rebuilds a table drops it and makes again the indexes and triggers
        orchlog put on it; any other (a user's own) goes with the old table: said, not silent."""
        recreated = {name.lower() for name in _CREATED.findall(script)}
        for table in _DROP_TABLE.findall(script):
            lost = [
                f"{kind} {name}"
                for kind, name in self.conn.execute(
                    "SELECT type, name FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger') "
                    "AND sql IS NOT NULL ORDER BY name",
                    (table,),
                )
                if name.lower() not in recreated
            ]
            if lost:
                log.warning(
                    "this migration rebuilds %s: %s on it (not orchlog's) will not be kept; re-create it after",
                    table,
                    ", ".join(lost),
                )

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
    with _for_migrations(conn):
        applied = run_now(migrations.migrate(_MigrationConn(conn)))
    if applied:
        _report_orphans(conn)
    return applied


@contextlib.contextmanager
def _for_migrations(conn: sqlite3.Connection) -> Iterator[None]:
    """The connection as SQLite's documented way to rebuild a table needs it, for the migrations
    only, then as it was:
    - foreign keys off: the copy must take every row the old table held (a raw writer with
      SQLite's default, foreign keys off, can have left rows naming a missing parent), and
      DROP TABLE must not delete through them (``_report_orphans`` says what is there);
    - no disk quota: until it commits, a rebuild holds two copies of its table (a database
      near its ``max_db_pages`` could otherwise never be upgraded)."""
    foreign_keys = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    quota = conn.execute("PRAGMA max_page_count").fetchone()[0]
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute(f"PRAGMA max_page_count = {_NO_QUOTA}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA foreign_keys = {int(foreign_keys)}")
        conn.execute(f"PRAGMA max_page_count = {int(quota)}")  # never below the file's size (SQLite)


def _report_orphans(conn: sqlite3.Connection) -> None:
    """Rows naming a parent that does not exist are kept as they were, and said."""
    rows = conn.execute("PRAGMA foreign_key_check")
    first = rows.fetchmany(5)
    if first:
        total = len(first) + sum(1 for _ in rows)
        where = ", ".join(f"{table} rowid {rowid} (-> {parent})" for table, rowid, parent, _fk in first)
        log.warning(
            "%d rows name a parent row that does not exist (written with foreign keys off?), e.g. %s; "
            "kept as they were: `PRAGMA foreign_key_check` lists them",
            total,
            where,
        )


def migrate_path(path: str, settings: Settings) -> list[str]:
    conn = connect(path, settings)
    try:
        return migrate(conn)
    finally:
        conn.close()
