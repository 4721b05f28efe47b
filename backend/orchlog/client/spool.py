"""The sender's durable spool: a FIFO of pending events in a local SQLite file.

A module of its own because it is the only part of the client that touches the disk; the sender
thread is its only user, so it needs no locking beyond SQLite's own.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from typing import Any, Literal

import orjson

Policy = Literal["block", "drop_oldest", "drop_newest"]


class Spool:
    """A FIFO of pending events in a local SQLite file, so an outage loses nothing."""

    def __init__(self, path: str, max_events: int) -> None:
        path = os.path.expanduser(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.max_events = max_events
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS spool (n INTEGER PRIMARY KEY AUTOINCREMENT, item TEXT NOT NULL)")

    def __len__(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM spool").fetchone()[0])

    def push(self, items: Sequence[dict[str, Any]], policy: Policy) -> int:
        """Append; returns how many were dropped by the policy (block behaves as drop_newest here)."""
        room = self.max_events - len(self)
        dropped = 0
        if len(items) > room:
            if policy == "drop_oldest":
                excess = len(items) - room
                self.conn.execute("DELETE FROM spool WHERE n IN (SELECT n FROM spool ORDER BY n LIMIT ?)", (excess,))
                dropped = excess
            else:
                dropped = len(items) - max(room, 0)
                items = items[: max(room, 0)]
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT INTO spool (item) VALUES (?)", [(orjson.dumps(i).decode(),) for i in items])
        self.conn.execute("COMMIT")
        return dropped

    def peek(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        rows = self.conn.execute("SELECT n, item FROM spool ORDER BY n LIMIT ?", (limit,)).fetchall()
        return [(n, orjson.loads(item)) for n, item in rows]

    def remove_through(self, n: int) -> None:
        self.conn.execute("DELETE FROM spool WHERE n <= ?", (n,))

    def close(self) -> None:
        self.conn.close()
