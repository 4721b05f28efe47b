"""POST /api/v1/agent-logs, /api/v1/system-logs, /api/v1/events: one object, an array or NDJSON."""

from __future__ import annotations

from starlette.requests import Request

from ..models import AgentLogIn
from ..store.base import InsertLogs
from ..validation import validate_logs
from .body import read_items
from .responses import JSON, runtime
from .security import principal_of


async def _ingest(request: Request, kind: str) -> JSON:
    rt = runtime(request)
    limits = rt.limits
    raw, single = await read_items(request, limits)
    items = validate_logs(kind, raw, limits, single=single)
    principal = principal_of(request)
    principal.may_post_for(it.agent_id if isinstance(it, AgentLogIn) else None for it in items)
    rt.quotas.charge(principal, len(items))
    acks = await rt.writer.submit(InsertLogs(items))
    duplicates = sum(1 for a in acks if a.duplicate)
    counter = rt.metrics.ingest_events
    counter.labels(kind, "stored").inc(len(acks) - duplicates)
    if duplicates:
        counter.labels(kind, "duplicate").inc(duplicates)
    return JSON(
        {"count": len(acks), "items": [{"id": a.id, "seq": a.seq, "duplicate": a.duplicate} for a in acks]},
        status_code=201,
    )


async def post_agent_logs(request: Request) -> JSON:
    return await _ingest(request, "agent_log")


async def post_system_logs(request: Request) -> JSON:
    return await _ingest(request, "system_log")


async def post_events(request: Request) -> JSON:
    return await _ingest(request, "event")
