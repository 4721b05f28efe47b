"""One migration runner for both dialects: ``schema/<dialect>/NNNN_name.sql`` applied in order.

Each migration runs in its own transaction that first takes the dialect's write lock (SQLite
``BEGIN IMMEDIATE``, a PostgreSQL advisory lock), then re-reads what is applied, so two
processes migrating at once apply each migration exactly once. A database whose schema is newer
than this code is refused. The driver supplies only the statements (``MigrationConn``).
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import NamedTuple, Protocol

from ..errors import SchemaError
from ..paths import schema_dir

log = logging.getLogger("orchlog.migrate")

_NAME = re.compile(r"^(\d+)_([\w-]+)\.sql$")


class Migration(NamedTuple):
    version: int
    name: str
    path: Path

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


class MigrationConn(Protocol):
    dialect: str

    async def ensure_table(self) -> None: ...
    async def begin_locked(self) -> None: ...
    async def applied(self) -> set[int]: ...
    async def apply(self, script: str) -> None: ...
    async def record(self, version: int, name: str) -> None: ...
    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...


def available(dialect: str) -> list[Migration]:
    found = []
    for path in sorted(schema_dir(dialect).glob("*.sql")):
        match = _NAME.match(path.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), path))
    if not found:
        raise SchemaError(f"no migrations found in {schema_dir(dialect)}; is the installation complete?")
    return found


async def migrate(conn: MigrationConn) -> list[str]:
    """Apply pending migrations in order, each in its own transaction; returns what was applied."""
    await conn.ensure_table()
    migrations = available(conn.dialect)
    newest_known = migrations[-1].version
    applied_now: list[str] = []
    level = logging.INFO if await conn.applied() else logging.DEBUG  # read unlocked: only for the log
    for migration in migrations:
        await conn.begin_locked()
        try:
            applied = await conn.applied()
            newest_applied = max(applied, default=0)
            if newest_applied > newest_known:
                raise SchemaError(
                    f"this database has schema version {newest_applied}, newer than this orchlog knows "
                    f"({newest_known}); upgrade orchlog, or point --db at another database"
                )
            if migration.version in applied:
                await conn.rollback()
                continue
            # An upgrade is said before and after: a migration that rebuilds a table takes seconds
            # per million rows, and a start that sits silent that long looks hung. A new database
            # (nothing applied yet, every table empty) is created quietly.
            log.log(level, "applying schema migration %s", migration.label)
            started = time.monotonic()
            await conn.apply(migration.path.read_text(encoding="utf-8"))
            await conn.record(migration.version, migration.name)
            await conn.commit()
            log.log(level, "applied schema migration %s in %.1f s", migration.label, time.monotonic() - started)
            applied_now.append(migration.label)
        except BaseException:
            await conn.rollback()
            raise
    return applied_now
