"""The one ingest pipeline: every route that stores events (the three ingest routes, the Claude
Code hook, OTLP) hands its decoded items to ``accept()``, so limits, the agent binding, the quota
and the metrics are applied once, the same way, whatever the wire format.

Order matters: everything that can refuse the request (count, validation, binding, quota) runs
before anything is written, so a refused request writes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .auth import Principal
from .errors import PayloadTooLarge
from .models import Ack, AgentLogIn, LogIn
from .runtime import Runtime
from .store.base import InsertLogs, WriteOp
from .validation import validate_logs, validate_partial


@dataclass
class Accepted:
    acks: list[Ack]  # one per stored item, in order
    kept: list[int] = field(default_factory=list)  # the indexes (into the items posted) of those items
    rejected: list[dict[str, Any]] = field(default_factory=list)  # partial mode: why the others were left out


# write operations the stored items depend on, or a function of the kept indexes giving them
Before = Sequence[WriteOp] | Callable[[Sequence[int]], Sequence[WriteOp]]


def check_count(count: int, max_items: int) -> None:
    if count > max_items:
        raise PayloadTooLarge(f"{count} items in one request; the limit is {max_items}")


async def accept(
    rt: Runtime,
    principal: Principal,
    kind: str,
    items: Sequence[Any],
    *,
    single: bool = False,
    partial: bool = False,
    before: Before = (),
) -> Accepted:
    """Validate, authorize, charge and store ``items``; the acks come back after COMMIT.

    ``kind`` is the route's model (``agent_log``, ``system_log`` or ``event`` with a ``kind`` per
    item). ``partial`` (OTLP) stores the valid items and reports the others instead of refusing
    the whole request. ``before`` are write operations the items depend on (agents a hook or an
    exporter registers on first sight); they run only once everything above has passed.
    """
    limits = rt.limits
    check_count(len(items), limits.max_items)
    rejected: list[dict[str, Any]] = []
    if partial:
        logs, rejected = validate_partial(kind, list(items), limits)
        bad = {d["index"] for d in rejected}
        kept = [i for i in range(len(items)) if i not in bad]
    else:
        logs = validate_logs(kind, list(items), limits, single=single)
        kept = list(range(len(items)))
    principal.may_post_for(it.agent_id if isinstance(it, AgentLogIn) else None for it in logs)
    rt.quotas.charge(principal, len(logs))
    if not logs:
        return Accepted([], [], rejected)
    ops = before(kept) if callable(before) else before
    if ops:
        # queued together, in order: the agents exist before their logs (one group commit when it fits)
        *_, acks = await asyncio.gather(*(rt.writer.submit(op) for op in ops), rt.writer.submit(InsertLogs(logs)))
    else:
        acks = await rt.writer.submit(InsertLogs(logs))
    _count(rt, kind, logs, acks)
    return Accepted(acks, kept, rejected)


def _count(rt: Runtime, kind: str, logs: Sequence[LogIn], acks: Sequence[Ack]) -> None:
    """The ingested-events counters; item by item only on the mixed route (``event``)."""
    tally: dict[tuple[str, str], int] = {}
    if kind == "event":
        for item, ack in zip(logs, acks, strict=True):
            key = (
                "agent_log" if isinstance(item, AgentLogIn) else "system_log",
                "duplicate" if ack.duplicate else "stored",
            )
            tally[key] = tally.get(key, 0) + 1
    else:  # one kind: only the duplicates are counted
        duplicates = sum(1 for ack in acks if ack.duplicate)
        tally = {(kind, "duplicate"): duplicates, (kind, "stored"): len(acks) - duplicates}
    for (item_kind, result), n in tally.items():
        if n:
            rt.metrics.count_ingested(item_kind, result, n)
