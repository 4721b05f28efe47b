"""Retention: delete old events in small chunks through the writer, so ingest latency stays flat.

Each chunk is one ``PruneLogs`` op in the writer's queue (interleaved with ingest requests, never
one long transaction). Deleting raises the stream's floor: a subscriber resuming below it gets a
``reset``. Afterwards the WAL is checkpointed and freed pages are returned (incremental vacuum).
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Settings
from .filters import parse_time
from .store.base import PruneLogs
from .writer import Writer

TABLES = ("agent_logs", "system_logs")


@dataclass(frozen=True)
class Policy:
    table: str
    age: str | None  # "30d", "12h", ... or None
    rows: int | None

    def op(self, chunk: int) -> PruneLogs:
        before = parse_time(f"retention {self.table} age", self.age) if self.age else None
        return PruneLogs(self.table, before, self.rows, chunk)


def policies(settings: Settings) -> list[Policy]:
    out = []
    for table in TABLES:
        age = getattr(settings, f"retention_{table}_age")
        rows = getattr(settings, f"retention_{table}_rows")
        age = settings.retention_age if age is None else age
        rows = settings.retention_rows if rows is None else rows
        if age or rows:
            out.append(Policy(table, age or None, rows or None))
    return out


async def enforce(writer: Writer, rules: list[Policy], chunk: int = 2000) -> dict[str, int]:
    """Delete everything the policies say, chunk by chunk; returns rows deleted per table."""
    deleted = {}
    for rule in rules:
        total = 0
        while True:
            n = int(await writer.submit(rule.op(chunk)))
            total += n
            if n < chunk:
                break
        deleted[rule.table] = total
    return deleted
