"""POST /api/v1/hooks/claude-code (Claude Code HTTP hooks, or ``orchlog hook``) and POST /v1/logs
(OTLP/HTTP logs, JSON or protobuf)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..errors import BadRequest, UnsupportedMediaType, ValidationFailed
from ..integrations import claude_code, otlp
from ..integrations.agents import agent_patches
from ..models import AgentLogIn, EntityPatch, canonical_uuid
from ..store.base import EnsureAgent, InsertLogs, UpdateEntity
from ..validation import validate_logs
from .body import media_type, read_bytes, read_items
from .responses import JSON, runtime
from .security import principal_of


async def claude_code_hook(request: Request) -> JSON:
    """One hook input object (or an array of them, as ``orchlog hook`` sends from its spool)."""
    rt = runtime(request)
    raw, _single = await read_items(request, rt.limits)
    explicit = request.query_params.get("agent")
    items: list[dict[str, Any]] = []
    agents: dict[str, str] = {}
    for index, hook in enumerate(raw):
        if not isinstance(hook, dict):
            raise ValidationFailed(
                f"item {index} is not a hook input object", details=[{"index": index, "field": "(item)"}]
            )
        envelope: dict[str, Any] = hook["orchlog"] if isinstance(hook.get("orchlog"), dict) else {}
        name = claude_code.agent_name(hook, str(envelope.get("agent") or explicit or "") or None)
        agent_id = claude_code.agent_id_for(name)
        agents[agent_id] = name
        items.append(
            {
                "kind": "agent_log",
                **claude_code.to_agent_log(hook, agent_id, max_field_chars=rt.settings.hook_max_field_chars),
            }
        )
    logs = validate_logs("event", items, rt.limits)
    principal = principal_of(request)
    principal.may_post_for(it.agent_id if isinstance(it, AgentLogIn) else None for it in logs)
    rt.quotas.charge(principal, len(logs))
    for agent_id, name in agents.items():
        await rt.writer.submit(
            EnsureAgent(claude_code.ORCHESTRATOR_ID, agent_id, name, "claude-code", {"source": "claude-code-hooks"})
        )
    acks = await rt.writer.submit(InsertLogs(logs))
    return JSON(
        {"count": len(acks), "items": [{"id": a.id, "seq": a.seq, "duplicate": a.duplicate} for a in acks]},
        status_code=201,
    )


async def otlp_logs(request: Request) -> Response:
    """OTLP/HTTP: 200 (with ``partialSuccess`` when some records were rejected) in the request's
    encoding; 400 on a bad payload; 429/503 with Retry-After when busy (exporters retry those).
    Claude Code and Codex events become agent logs of their session's agent (registered on first
    sight), and their tokens and cost are added to that agent's row."""
    rt = runtime(request)
    kind = media_type(request)
    limit = rt.settings.max_body_bytes
    body = otlp.decode_body(await read_bytes(request, limit), request.headers.get("content-encoding"), max_bytes=limit)
    protobuf = kind == "application/x-protobuf"
    if protobuf:
        payload = otlp.decode_protobuf(body)
    elif kind == "application/json":
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"malformed OTLP JSON: {exc.msg} at line {exc.lineno}") from None
    else:
        raise UnsupportedMediaType("OTLP/HTTP logs must be application/json or application/x-protobuf")
    export = otlp.map_export(payload)
    # generic records naming an agent orchlog does not know are rejected alone (partial success)
    unknown: set[str] = set()
    for agent_id in {
        str(e["agent_id"])
        for e, m in zip(export.items, export.mapped, strict=True)
        if m is None and e["kind"] == "agent_log"
    }:
        try:
            known = await rt.store.get_entity("agents", str(canonical_uuid(agent_id)))
        except ValueError:
            known = None
        if known is None:
            unknown.add(agent_id)
            export.reasons.append(f"unknown agent {agent_id} ({otlp.AGENT_ATTRIBUTE})")
    if unknown:
        export = export.keep(
            i
            for i, (e, m) in enumerate(zip(export.items, export.mapped, strict=True))
            if not (m is None and e["kind"] == "agent_log" and str(e["agent_id"]) in unknown)
        )
    logs: list[Any] = []
    if export.items:
        try:
            logs = validate_logs("event", export.items, rt.limits)
        except ValidationFailed as exc:
            bad = {d.get("index") for d in exc.details or [] if isinstance(d, dict)}
            export.reasons.append(exc.message)
            export = export.keep(i for i in range(len(export.items)) if i not in bad)
            logs = validate_logs("event", export.items, rt.limits) if export.items else []
    principal = principal_of(request)
    principal.may_post_for(it.agent_id if isinstance(it, AgentLogIn) else None for it in logs)
    if logs:
        rt.quotas.charge(principal, len(logs))
        # queued together, in order: the agents exist before their logs (one batch when it fits)
        ensure = [
            rt.writer.submit(EnsureAgent(a.orchestrator_id, a.agent_id, a.name, a.model, a.metadata))
            for a in export.agents.values()
        ]
        *_, acks = await asyncio.gather(*ensure, rt.writer.submit(InsertLogs(logs)))
        # usage only for events stored as new: a retried export is acked as duplicates, not re-added
        for agent_id, fields in agent_patches(export.mapped, [not a.duplicate for a in acks]).items():
            await rt.writer.submit(UpdateEntity("agents", agent_id, EntityPatch(**fields)))
    content, media = otlp.encode_response(export.rejected, "; ".join(export.reasons), protobuf=protobuf)
    return Response(content, media_type=media)
