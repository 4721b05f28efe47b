"""Online backup of a SQLite database (consistent snapshot, safe while the server writes)."""

from __future__ import annotations

import os
import sqlite3

from ..errors import OrchlogError


def backup_database(source: str, dest: str) -> int:
    """Copy ``source`` to ``dest`` atomically (written beside it, verified, then renamed).

    One backup step copies every page inside one read transaction: a consistent snapshot that
    concurrent writers (WAL) neither block nor restart. Returns the number of pages copied."""
    if not os.path.exists(source):
        raise OrchlogError(f"no database at {source}")
    tmp = dest + ".partial"
    for leftover in (tmp, tmp + "-wal", tmp + "-shm"):
        if os.path.exists(leftover):
            os.remove(leftover)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(tmp)
    try:
        src.backup(dst, pages=-1)
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
