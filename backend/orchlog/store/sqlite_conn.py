"""SQLite connections and migrations: the pragmas every connection gets, and the statements the
one migration runner (``store/migrate.py``) needs on SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from ..config import Settings
from ..errors import SchemaError
from ..models import now_ts
from . import migrate as migrations
from .rules import run_now


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
