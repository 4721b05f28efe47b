"""store/sqlite_write.py's multi-row INSERTs under the bound-parameter limit of older SQLite."""

from __future__ import annotations

import sqlite3

import pytest

from orchlog.store.sqlite_write import _RowInserts

COLS = [f"c{i}" for i in range(15)]


@pytest.mark.parametrize("limit", [999, 32_766])
def test_every_row_goes_in_whatever_the_connections_parameter_limit(limit: int) -> None:
    """Before SQLite 3.32 a statement took at most 999 parameters: a 1,024-row statement of 15
    columns would have failed every batch over 66 rows. The statements used fit the limit."""
    conn = sqlite3.connect(":memory:")
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
    conn.execute(f"CREATE TABLE t ({', '.join(COLS)})")
    rows = [tuple(f"{r}-{c}" for c in range(15)) for r in range(2900)]
    _RowInserts("t", COLS).run(conn, rows)
    assert conn.execute(f"SELECT {', '.join(COLS)} FROM t ORDER BY rowid").fetchall() == rows
