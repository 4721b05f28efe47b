"""The write rules, written once for both stores, over a small transaction interface.

What a write means (dedupe by id and seq assignment, the unknown-agent 422, ``add_*`` arithmetic,
existence checks, the retention cutoff) lives here and in the modules below; a driver only says
how to run each statement (``Txn``) and how to read one bounded page (``Pages``). Values cross
the interface in their canonical text form (ids, times, JSON, money as exact decimal text); each
driver adapts them to its column types.

The rules are coroutines. On PostgreSQL the driver awaits them; SQLite's transaction methods are
plain synchronous calls wrapped as coroutines that never suspend, so ``run_now`` drives the same
rules to the end on the write thread, inside ONE thread hop per batch.

Savepoints only where a request can fail inside the transaction: a batch first runs without any;
an operation refused by a rule before it wrote anything fails alone as is. Only when an operation
failed after writing (a constraint, a full disk) is the batch rolled back and run again with a
savepoint per operation, so the failure stays that operation's own.

The rules are split by job: ``txn`` (the interface and what crosses it), ``log_rules`` (insert,
dedupe, seqs, prune), ``entity_rules`` (create, update, get-or-create) and ``read_rules`` (the
head-bounded read). This module runs a batch through them and re-exports every name, so
``from orchlog.store.rules import ...`` keeps working for the drivers and the benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..models import EntityPatch, now_ts
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
    UpdateEntity,
    WriteOp,
)
from .entity_rules import create, ensure_agent, entity_values, integrity, must_exist, update_entity
from .log_rules import agent_row, insert_logs, prune, system_row
from .read_rules import Pages, read_both
from .txn import (
    AGENT_COLS,
    COLUMNS,
    ENTITY_TABLES,
    LOG_TABLES,
    SYSTEM_COLS,
    TABLES,
    Counter,
    Rerun,
    T,
    Txn,
    money,
    run_now,
)

__all__ = [
    "AGENT_COLS",
    "COLUMNS",
    "ENTITY_TABLES",
    "LOG_TABLES",
    "SYSTEM_COLS",
    "TABLES",
    "Pages",
    "Rerun",
    "T",
    "Txn",
    "agent_row",
    "apply_batch",
    "ensure_agent",
    "insert_logs",
    "integrity",
    "money",
    "prune",
    "read_both",
    "run_now",
    "system_row",
    "update_entity",
]


async def apply_batch(tx: Txn, ops: Sequence[WriteOp], *, savepoints: bool) -> BatchResult:
    """Apply every op in the open transaction; per-op results (or the op's own error).

    Raises ``Rerun`` (savepoints=False) when an op failed after writing: the caller rolls back
    and calls again with savepoints=True.
    """
    last = await tx.last_seq()
    counter = Counter(last)
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


async def _apply(tx: Txn, op: WriteOp, counter: Counter) -> Any:
    if isinstance(op, InsertLogs):
        return await insert_logs(tx, op.items, counter)
    if isinstance(op, CreateOrchestrator):
        return await create(tx, "orchestrator_agents", entity_values(op.spec), "orchestrator agent")
    if isinstance(op, CreateAgent):
        values = entity_values(op.spec)
        await must_exist(tx, "orchestrator_agents", values["orchestrator_agent_id"], "orchestrator_agent_id")
        return await create(tx, "agents", values, "agent")
    if isinstance(op, CreatePrompt):
        values = entity_values(op.spec)
        values["timestamp"] = values.get("timestamp") or now_ts()
        if values.get("agent_id"):
            await must_exist(tx, "agents", values["agent_id"], "agent_id")
        return await create(tx, "prompts", values, "prompt")
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
