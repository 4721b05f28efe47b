"""Online backup of a SQLite database (consistent snapshot, safe while the server writes)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable

from ..errors import OrchlogError

STEP_PAGES = 4096  # 16 MiB at the default page size: a progress report per step


def backup_database(
    source: str, dest: str, progress: Callable[[int, int], None] | None = None, *, step_pages: int = STEP_PAGES
) -> int:
    """Copy ``source`` to ``dest`` atomically (written beside it, verified, then renamed).

    The source connection holds ONE read transaction for the whole copy, so the steps (each
    reported to ``progress(copied, total)``) all read the same snapshot, which concurrent writers
    (WAL) neither block nor restart. Returns the number of pages copied."""
    if not os.path.exists(source):
        raise OrchlogError(f"no database at {source}")
    tmp = dest + ".partial"
    for leftover in (tmp, tmp + "-wal", tmp + "-shm"):
        if os.path.exists(leftover):
            os.remove(leftover)
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30, isolation_level=None)
        dst = sqlite3.connect(tmp)
    except sqlite3.Error as exc:
        raise OrchlogError(f"backup failed: cannot open {source} or {tmp}: {exc}") from exc

    def report(_status: int, remaining: int, total: int) -> None:
        if progress is not None:
            progress(total - remaining, total)

    try:
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot starts here
        src.backup(dst, pages=step_pages, progress=report, sleep=0)
        src.execute("COMMIT")
        dst.execute("PRAGMA journal_mode = DELETE")
        result = dst.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise OrchlogError(f"the backup failed integrity_check: {result}")
        pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
    except sqlite3.Error as exc:
        raise OrchlogError(f"backup failed: {exc}") from exc
    finally:
        dst.close()
        src.close()
    os.replace(tmp, dest)
    return pages
