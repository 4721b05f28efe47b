"""The small transaction interface the write rules run over (``Txn``), and what crosses it: the
log tables and their column order, exact money text, the seq counter of a batch.

Apart from the rules so each group of rules (logs, entities, reads) can depend on the interface
without depending on the batch runner in ``rules`` that dispatches to them.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from decimal import Decimal
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

AGENT_COLS = (
    "seq",
    "id",
    "agent_id",
    "session_id",
    "task_slug",
    "adw_id",
    "adw_step",
    "entry_index",
    "event_category",
    "event_type",
    "level",
    "content",
    "payload",
    "summary",
    "timestamp",
)
SYSTEM_COLS = ("seq", "id", "level", "message", "file_path", "adw_id", "adw_step", "summary", "metadata", "timestamp")
COLUMNS = {"agent_log": AGENT_COLS, "system_log": SYSTEM_COLS}
TABLES = {"agent_log": "agent_logs", "system_log": "system_logs"}
LOG_TABLES = ("agent_logs", "system_logs")
ENTITY_TABLES = ("orchestrator_agents", "agents", "prompts")


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine that never suspends (every await is a synchronous call underneath)."""
    try:
        coro.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coro.close()
    raise RuntimeError("a synchronous transaction suspended: a driver awaited real I/O")


def money(value: Decimal) -> str:
    """Exact decimal text, no exponent, no trailing zeros ('0.0012', '3')."""
    text = format(value.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


class Txn(Protocol):
    """One open write transaction of a driver: statements only, no rules."""

    integrity_errors: tuple[type[BaseException], ...]
    dirty: bool  # set by the driver when a statement wrote (or a failed statement spoiled the txn)

    async def last_seq(self) -> int: ...
    async def set_last_seq(self, seq: int) -> None: ...
    async def savepoint(self) -> None: ...
    async def release(self) -> None: ...
    async def rollback_to(self) -> None: ...
    async def known_agents(self, ids: Sequence[str]) -> set[str]: ...
    async def log_ids(self, ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """id → (table, seq) for the ids already in agent_logs or system_logs."""
        ...

    async def insert_logs(self, table: str, rows: list[tuple[Any, ...]]) -> None: ...
    async def row(self, table: str, ident: str, *, for_update: bool = False) -> dict[str, Any] | None: ...
    async def insert(self, table: str, values: dict[str, Any], *, ignore_existing: bool = False) -> None: ...
    async def update(self, table: str, ident: str, changes: dict[str, Any]) -> None: ...
    def public(self, row: dict[str, Any]) -> dict[str, Any]: ...
    async def nth_newest_seq(self, table: str, offset: int) -> int: ...
    async def oldest_seqs(self, table: str, upto: int, limit: int) -> list[int]: ...
    async def seqs_older_than(self, table: str, before: str, above: int, limit: int) -> list[int]: ...
    async def delete_seqs(self, table: str, seqs: list[int]) -> None: ...
    async def raise_floor(self, seq: int) -> None: ...
    async def index_fulltext(self, chunk: int) -> int: ...
    def client_error(self, exc: Exception) -> Exception: ...


class Rerun(Exception):
    """An operation failed after it wrote, in a batch run without savepoints."""


class Counter:
    """The last seq handed out so far in the batch (rolled back with an op that failed)."""

    __slots__ = ("value",)

    def __init__(self, start: int) -> None:
        self.value = start
