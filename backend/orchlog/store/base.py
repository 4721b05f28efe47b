"""The Store interface and the write operations the writer hands to it.

Everything above the store (writer, hub, API) talks to this interface only, so the SQLite and
PostgreSQL drivers are interchangeable. Write operations are plain data; a driver applies a
batch of them in ONE transaction with one savepoint per operation, so a failing operation is
rolled back alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import orjson

from ..auth import TokenRecord
from ..filters import EventFilter
from ..models import (
    Ack,
    AgentCreate,
    EntityPatch,
    LogIn,
    OrchestratorAgentCreate,
    PromptCreate,
)


class RawRow(Mapping[str, Any]):
    """A row the database already rendered as JSON: sent on as is (``fragment``), parsed only if
    someone looks inside (a live filter, the compat layer). Replay and history never parse it."""

    __slots__ = ("_parsed", "_text", "fragment")

    def __init__(self, text: str | bytes) -> None:
        self._text = text
        self.fragment = orjson.Fragment(text)
        self._parsed: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """The row's JSON as the database rendered it (spliced into frames without re-encoding)."""
        return self._text if isinstance(self._text, str) else self._text.decode()

    def _row(self) -> dict[str, Any]:
        if self._parsed is None:
            parsed: dict[str, Any] = orjson.loads(self._text)
            self._parsed = parsed
        return self._parsed

    def __getitem__(self, key: str) -> Any:
        return self._row()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._row())

    def __len__(self) -> int:
        return len(self._row())


def jsonable(value: Any) -> Any:
    """``orjson`` default hook: RawRow goes out as its pre-rendered JSON."""
    if isinstance(value, RawRow):
        return value.fragment
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class StoredEvent(NamedTuple):
    """One committed event: its kind, its global seq and its row (JSON-ready)."""

    kind: str
    seq: int
    data: Mapping[str, Any]


def min_max(rows: Sequence[Sequence[Any]]) -> tuple[str | None, str | None]:
    """One (min, max) from per-table (min, max) rows, either of which may be NULL."""
    lows = [str(r[0]) for r in rows if r[0] is not None]
    highs = [str(r[1]) for r in rows if r[1] is not None]
    return (min(lows) if lows else None, max(highs) if highs else None)


class StreamMeta(NamedTuple):
    epoch: str
    head_seq: int
    floor_seq: int


# ---------------------------------------------------------------- write operations


@dataclass(frozen=True)
class InsertLogs:
    """One ingest request: atomic, acked with a seq per item (``duplicate`` for a known id)."""

    items: Sequence[LogIn]

    @property
    def size(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class CreateOrchestrator:
    spec: OrchestratorAgentCreate
    size: int = 1


@dataclass(frozen=True)
class CreateAgent:
    spec: AgentCreate
    size: int = 1


@dataclass(frozen=True)
class UpdateEntity:
    """Patch an agent or orchestrator; the result is ``(old_row, new_row)``."""

    table: str  # "agents" | "orchestrator_agents"
    id: str
    patch: EntityPatch
    size: int = 1


@dataclass(frozen=True)
class ArchiveAgent:
    """Soft delete (``archived = 1``), like the original: its logs stay in the stream."""

    id: str
    size: int = 1


@dataclass(frozen=True)
class EnsureAgent:
    """Get-or-create an agent (and its orchestrator) with known ids: integrations register agents
    by a stable key without a lookup round trip. Result: the agent row (``created`` added)."""

    orchestrator_id: str
    agent_id: str
    name: str
    model: str
    metadata: dict[str, Any] | None = None
    size: int = 1


@dataclass(frozen=True)
class IndexFulltext:
    """Add committed rows not yet in the full-text index, up to ``chunk`` of them (oldest first).
    Result: how many were indexed (less than ``chunk`` means caught up)."""

    chunk: int = 20_000
    size: int = 1


@dataclass(frozen=True)
class PruneLogs:
    """Retention: delete up to ``chunk`` of the oldest rows of one table that are older than
    ``before`` (a timestamp) or beyond the newest ``keep_rows``. Small chunks, each its own op in
    the writer's queue, so ingest keeps flowing between them. Result: rows deleted."""

    table: str  # "agent_logs" | "system_logs"
    before: str | None
    keep_rows: int | None
    chunk: int = 2000
    size: int = 1


@dataclass(frozen=True)
class CreatePrompt:
    spec: PromptCreate
    size: int = 1


WriteOp = (
    InsertLogs
    | CreateOrchestrator
    | CreateAgent
    | UpdateEntity
    | ArchiveAgent
    | CreatePrompt
    | PruneLogs
    | EnsureAgent
    | IndexFulltext
)


class BatchResult(NamedTuple):
    """Per-op result (or the exception that rolled that op back) and the head seq after commit."""

    results: list[Any]
    head_seq: int


class Store(Protocol):
    """What orchlog needs from a database."""

    migrations_applied: list[str]  # what ``open()`` applied (``orchlog migrate`` reports it)

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    # writes (only the writer calls this)
    async def write_batch(self, ops: Sequence[WriteOp]) -> BatchResult: ...

    # the stream
    async def meta(self) -> StreamMeta: ...

    async def head_seq(self) -> int: ...

    async def tail(self, after: int, limit: int) -> list[StoredEvent]:
        """Every event with seq > after, ascending, at most ``limit`` (the hub's one read)."""
        ...

    async def poll_tail(self, after: int, limit: int) -> list[StoredEvent] | None:
        """``None`` if nothing was committed since the last poll, else ``tail(after, limit)``."""
        ...

    async def read_events(
        self,
        flt: EventFilter,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> tuple[list[StoredEvent], bool]:
        """Matching events ascending by seq, and whether more exist in the paging direction
        (after → newer ones; ``before`` without ``after`` → older ones)."""
        ...

    async def time_span(self, flt: EventFilter) -> tuple[str | None, str | None]:
        """The earliest and the latest timestamp of the matching events (``None`` if none match)."""
        ...

    async def volume(self, flt: EventFilter, bucket_s: int) -> dict[int, dict[str, int]]:
        """Matching events counted per level in each ``bucket_s``-second bucket, keyed by the
        bucket's index ``floor(epoch seconds / bucket_s)`` (orchlog.volume); computed in SQL."""
        ...

    # entities
    async def get_entity(self, table: str, ident: str) -> dict[str, Any] | None: ...

    async def list_entities(
        self, table: str, where: dict[str, Any], *, limit: int, offset: int
    ) -> list[dict[str, Any]]: ...

    async def agent_log_counts(self, agent_ids: Sequence[str]) -> dict[str, int]: ...

    async def check_writable(self) -> None: ...

    async def load_tokens(self) -> list[TokenRecord]: ...

    # token lifecycle (``orchlog token``): the SQL is in store/tokens.py for both dialects
    async def create_token(self, record: TokenRecord) -> None: ...

    async def revoke_token(self, ref: str) -> TokenRecord:
        """Mark a token (by id or name) revoked; its row stays, so auth stays on."""
        ...

    async def delete_token(self, ref: str) -> TokenRecord:
        """Remove a token's row (the way back to dev mode once no row is left)."""
        ...

    async def maintain(self) -> dict[str, int]:
        """Checkpoint the WAL and give freed pages back; returns file sizes (for metrics)."""
        ...

    async def sizes(self) -> dict[str, int]: ...


__all__ = [
    "Ack",
    "ArchiveAgent",
    "BatchResult",
    "CreateAgent",
    "CreateOrchestrator",
    "CreatePrompt",
    "EnsureAgent",
    "IndexFulltext",
    "InsertLogs",
    "PruneLogs",
    "Store",
    "StoredEvent",
    "StreamMeta",
    "UpdateEntity",
    "WriteOp",
]
