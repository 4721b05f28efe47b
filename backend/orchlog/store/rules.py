"""The write rules, written once for both stores, over a small transaction interface.

What a write means (dedupe by id and seq assignment, the unknown-agent 422, ``add_*`` arithmetic,
existence checks, the retention cutoff) lives here; a driver only says how to run each statement
(``Txn``) and how to read one bounded page (``Pages``). Values cross the interface in their
canonical text form (ids, times, JSON, money as exact decimal text); each driver adapts them to
its column types.

The rules are coroutines. On PostgreSQL the driver awaits them; SQLite's transaction methods are
plain synchronous calls wrapped as coroutines that never suspend, so ``run_now`` drives the same
rules to the end on the write thread, inside ONE thread hop per batch.

Savepoints only where a request can fail inside the transaction: a batch first runs without any;
an operation refused by a rule before it wrote anything fails alone as is. Only when an operation
failed after writing (a constraint, a full disk) is the batch rolled back and run again with a
savepoint per operation, so the failure stays that operation's own.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import orjson

from ..errors import NotFound, ValidationFailed
from ..ids import new_id
from ..models import MAX_INT, Ack, AgentLogIn, EntityPatch, LogIn, now_ts
from .base import (
    ArchiveAgent,
    BatchResult,
    CreateAgent,
    CreateOrchestrator,
    CreatePrompt,
    EnsureAgent,
    IndexFulltext,
    InsertLogs,
    PruneLogs,
    StoredEvent,
    UpdateEntity,
    WriteOp,
)

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


# ---------------------------------------------------------------- the batch


async def apply_batch(tx: Txn, ops: Sequence[WriteOp], *, savepoints: bool) -> BatchResult:
    """Apply every op in the open transaction; per-op results (or the op's own error).

    Raises ``Rerun`` (savepoints=False) when an op failed after writing: the caller rolls back
    and calls again with savepoints=True.
    """
    last = await tx.last_seq()
    counter = _Counter(last)
    results: list[Any] = []
    for op in ops:
        mark = counter.value
        tx.dirty = False
        if savepoints:
            await tx.savepoint()
        try:
            results.append(await _apply(tx, op, counter))
        except Exception as exc:  # the op fails alone, the batch goes on
            if tx.dirty:
                if not savepoints:
                    raise Rerun from exc
                try:
                    await tx.rollback_to()
                except Exception:  # noqa: BLE001 - the database dropped the whole txn (disk full, I/O)
                    raise exc from None
            elif savepoints:
                await tx.release()
            counter.value = mark
            results.append(tx.client_error(exc))
            continue
        if savepoints:
            await tx.release()
    if counter.value != last:
        await tx.set_last_seq(counter.value)
    return BatchResult(results, counter.value)


class _Counter:
    __slots__ = ("value",)

    def __init__(self, start: int) -> None:
        self.value = start


async def _apply(tx: Txn, op: WriteOp, counter: _Counter) -> Any:
    if isinstance(op, InsertLogs):
        return await insert_logs(tx, op.items, counter)
    if isinstance(op, CreateOrchestrator):
        return await _create(tx, "orchestrator_agents", _entity_values(op.spec), "orchestrator agent")
    if isinstance(op, CreateAgent):
        values = _entity_values(op.spec)
        await _must_exist(tx, "orchestrator_agents", values["orchestrator_agent_id"], "orchestrator_agent_id")
        return await _create(tx, "agents", values, "agent")
    if isinstance(op, CreatePrompt):
        values = _entity_values(op.spec)
        values["timestamp"] = values.get("timestamp") or now_ts()
        if values.get("agent_id"):
            await _must_exist(tx, "agents", values["agent_id"], "agent_id")
        return await _create(tx, "prompts", values, "prompt")
    if isinstance(op, UpdateEntity):
        return await update_entity(tx, op.table, op.id, op.patch)
    if isinstance(op, ArchiveAgent):
        return await update_entity(tx, "agents", op.id, EntityPatch(archived=True))
    if isinstance(op, EnsureAgent):
        return await ensure_agent(tx, op)
    if isinstance(op, PruneLogs):
        return await prune(tx, op)
    if isinstance(op, IndexFulltext):
        return await tx.index_fulltext(op.chunk)
    raise TypeError(f"unknown write op {op!r}")


# ---------------------------------------------------------------- logs


def _unknown_agent(index: int, agent_id: str) -> ValidationFailed:
    return ValidationFailed(
        f"item {index}: agent_id {agent_id} is not a known agent; create it first with POST /api/v1/agents",
        details=[{"index": index, "field": "agent_id", "message": f"unknown agent {agent_id}", "type": "foreign_key"}],
    )


def _other_kind(index: int, ident: str, table: str) -> ValidationFailed:
    kind = "an agent log" if table == "agent_logs" else "a system log"
    return ValidationFailed(
        f"item {index}: id {ident} is already used by {kind}; an id names one event of one kind",
        details=[{"index": index, "field": "id", "message": f"already used by {kind}", "type": "conflict"}],
    )


def agent_row(item: AgentLogIn, seq: int) -> tuple[Any, ...]:
    """An agent log as the insert's parameter tuple (AGENT_COLS order, canonical text values)."""
    return (
        seq,
        item.id,
        item.agent_id,
        item.session_id,
        item.task_slug,
        item.adw_id,
        item.adw_step,
        item.entry_index,
        item.event_category,
        item.event_type,
        item.level,
        item.content,
        orjson.dumps(item.payload).decode(),
        item.summary,
        item.timestamp,
    )


def system_row(item: Any, seq: int) -> tuple[Any, ...]:
    return (
        seq,
        item.id,
        item.level,
        item.message,
        item.file_path,
        item.adw_id,
        item.adw_step,
        item.summary,
        orjson.dumps(item.metadata).decode(),
        item.timestamp,
    )


async def insert_logs(tx: Txn, items: Sequence[LogIn], counter: _Counter) -> list[Ack]:
    """One request: every agent known (one query), ids deduplicated across both tables (one
    query), seqs for the new rows in one step, one insert per table."""
    agent_ids = {it.agent_id for it in items if isinstance(it, AgentLogIn)}
    if agent_ids:
        known = await tx.known_agents(sorted(agent_ids))
        if len(known) < len(agent_ids):
            for index, it in enumerate(items):
                if isinstance(it, AgentLogIn) and it.agent_id not in known:
                    raise _unknown_agent(index, it.agent_id)
    seen = await tx.log_ids([str(it.id) for it in items])
    agent_rows: list[tuple[Any, ...]] = []
    system_rows: list[tuple[Any, ...]] = []
    acks: list[Ack] = []
    seq = counter.value
    for index, it in enumerate(items):
        ident = str(it.id)
        is_agent = isinstance(it, AgentLogIn)
        table = "agent_logs" if is_agent else "system_logs"
        known_row = seen.get(ident)
        if known_row is not None:
            if known_row[0] != table:
                raise _other_kind(index, ident, known_row[0])
            acks.append(Ack.model_construct(id=ident, seq=known_row[1], duplicate=True))
            continue
        seq += 1
        seen[ident] = (table, seq)
        if is_agent:
            agent_rows.append(agent_row(it, seq))  # type: ignore[arg-type]
        else:
            system_rows.append(system_row(it, seq))
        acks.append(Ack.model_construct(id=ident, seq=seq, duplicate=False))
    if agent_rows:
        await tx.insert_logs("agent_logs", agent_rows)
    if system_rows:
        await tx.insert_logs("system_logs", system_rows)
    counter.value = seq
    return acks


# ---------------------------------------------------------------- entities


def _entity_values(spec: Any) -> dict[str, Any]:
    values: dict[str, Any] = spec.model_dump()
    values["id"] = values.get("id") or new_id()
    if "metadata" in values:
        values["metadata"] = orjson.dumps(values["metadata"]).decode()
    if "total_cost" in values:
        values["total_cost"] = money(values["total_cost"])
    return values


async def _must_exist(tx: Txn, table: str, ident: str, field: str) -> None:
    if await tx.row(table, ident) is None:
        what = "orchestrator agent" if table == "orchestrator_agents" else "agent"
        raise ValidationFailed(
            f"{field} {ident} is not a known {what}", details=[{"field": field, "message": f"unknown {what}"}]
        )


def integrity(what: str, text: str) -> ValidationFailed:
    """A uniqueness or foreign-key refusal, naming the field it is about."""
    field = "id"
    if "session_id" in text:
        field = "session_id"
    elif "name" in text:
        field = "name"
    elif "FOREIGN KEY" in text or "foreign key" in text:
        field = "foreign_key"
    return ValidationFailed(
        f"the {what} conflicts with an existing row ({text})",
        details=[{"field": field, "message": text, "type": "integrity"}],
    )


async def _create(tx: Txn, table: str, values: dict[str, Any], what: str) -> dict[str, Any]:
    if table != "prompts":
        values["created_at"] = values["updated_at"] = now_ts()
    try:
        await tx.insert(table, values)
    except tx.integrity_errors as exc:
        raise integrity(what, str(exc)) from exc
    row = await tx.row(table, values["id"])
    assert row is not None
    return tx.public(row)


async def update_entity(tx: Txn, table: str, ident: str, patch: EntityPatch) -> tuple[dict[str, Any], dict[str, Any]]:
    """Set fields and apply increments with exact arithmetic; the result is (old, new)."""
    old = await tx.row(table, ident, for_update=True)
    if old is None:
        raise NotFound(f"no {table[:-1].replace('_', ' ')} with id {ident}")
    changes: dict[str, Any] = {}
    for name, value in patch.model_dump(exclude_unset=True).items():
        if name.startswith("add_"):
            continue
        if name not in old:
            raise ValidationFailed(
                f"{name} cannot be set on {table}", details=[{"field": name, "message": "not a column here"}]
            )
        if name == "metadata":
            value = orjson.dumps(value).decode()
        elif name == "total_cost":
            value = money(value)
        changes[name] = value
    for name, add in (("input_tokens", patch.add_input_tokens), ("output_tokens", patch.add_output_tokens)):
        if add:
            changes[name] = int(changes.get(name, old[name])) + add
            if changes[name] > MAX_INT:  # the column is a 64-bit integer on both stores
                raise ValidationFailed(
                    f"add_{name} would take {name} past {MAX_INT}",
                    details=[{"field": f"add_{name}", "message": f"the sum must stay <= {MAX_INT}"}],
                )
    if patch.add_cost:
        base = Decimal(str(changes.get("total_cost", old["total_cost"])))
        changes["total_cost"] = money(base + patch.add_cost)
    changes["updated_at"] = now_ts()
    try:
        await tx.update(table, ident, changes)
    except tx.integrity_errors as exc:
        raise integrity(table[:-1].replace("_", " "), str(exc)) from exc
    new = await tx.row(table, ident)
    assert new is not None
    return tx.public(old), tx.public(new)


async def ensure_agent(tx: Txn, op: EnsureAgent) -> dict[str, Any]:
    """Get-or-create an agent and its orchestrator by known ids."""
    now = now_ts()
    meta = orjson.dumps(op.metadata or {}).decode()
    orchestrator = {"id": op.orchestrator_id, "status": "idle", "metadata": meta, "created_at": now, "updated_at": now}
    await tx.insert("orchestrator_agents", orchestrator, ignore_existing=True)
    existing = await tx.row("agents", op.agent_id)
    if existing is not None:
        return {**tx.public(existing), "created": False}
    values = {
        "id": op.agent_id,
        "orchestrator_agent_id": op.orchestrator_id,
        "name": op.name,
        "model": op.model,
        "status": "executing",
        "metadata": meta,
        "created_at": now,
        "updated_at": now,
    }
    try:
        await tx.insert("agents", values)
    except tx.integrity_errors as exc:
        raise integrity("agent", str(exc)) from exc
    row = await tx.row("agents", op.agent_id)
    assert row is not None
    return {**tx.public(row), "created": True}


# ---------------------------------------------------------------- retention


async def prune(tx: Txn, op: PruneLogs) -> int:
    """Delete up to ``chunk`` rows: first the oldest beyond the newest ``keep_rows``, then rows
    whose own timestamp is older than ``before`` (exactly those: an old client timestamp on one
    row never drags newer rows with it). The floor rises to the highest seq deleted, so every
    deleted seq is at or below it and a subscriber resuming below it gets a ``reset``."""
    assert op.table in LOG_TABLES
    victims: list[int] = []
    cutoff = 0
    if op.keep_rows is not None:
        cutoff = await tx.nth_newest_seq(op.table, op.keep_rows)
        if cutoff:
            victims = await tx.oldest_seqs(op.table, cutoff, op.chunk)
    if op.before is not None and len(victims) < op.chunk:
        # every row at or below the cutoff is already a victim (fewer than a chunk of them)
        victims += await tx.seqs_older_than(op.table, op.before, cutoff, op.chunk - len(victims))
    if not victims:
        return 0
    await tx.delete_seqs(op.table, victims)
    await tx.raise_floor(max(victims))
    return len(victims)


# ---------------------------------------------------------------- the head-bounded read


class Pages(Protocol):
    """One read snapshot's statements (a driver's reader connection)."""

    async def head(self) -> int: ...
    async def page(
        self, kind: str, bounds: tuple[int, int | None, int | None], descending: bool, limit: int
    ) -> list[StoredEvent]:
        """Rows of one kind with ``after < seq < before`` and ``seq <= head`` (bounds =
        (head, after, before)), in seq order (descending if asked), at most ``limit``."""
        ...


async def read_both(
    rd: Pages, kinds: Sequence[str], after: int | None, before: int | None, limit: int
) -> tuple[list[StoredEvent], bool]:
    """Matching events ascending by seq and whether more exist in the paging direction.

    The two tables are read by two statements, i.e. two snapshots: a commit between them could
    show a newer row of one table without an older row of the other, and a reader that advanced
    its cursor past it would skip that row forever. So every read is bounded by the head seq
    read FIRST: all rows at or below it were committed with it, so both statements see all of
    them, and nothing above it is returned until the next read.
    """
    head = await rd.head()
    descending = before is not None and after is None
    events: list[StoredEvent] = []
    for kind in kinds:
        events.extend(await rd.page(kind, (head, after, before), descending, limit + 1))
    if len(kinds) > 1:
        events.sort(key=lambda e: e.seq, reverse=descending)
    has_more = len(events) > limit
    events = events[:limit]
    if descending:
        events.reverse()
    return events, has_more
