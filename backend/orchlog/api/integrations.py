"""POST /api/v1/hooks/claude-code (Claude Code HTTP hooks, or ``orchlog hook``) and POST /v1/logs
(OTLP/HTTP logs, JSON or protobuf)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..errors import BadRequest, UnsupportedMediaType, ValidationFailed
from ..ingest import accept, check_count
from ..integrations import claude_code, otlp
from ..integrations.agents import agent_patches
from ..models import EntityPatch, canonical_uuid
from ..runtime import Runtime
from ..store.base import EnsureAgent, UpdateEntity, WriteOp
from .body import media_type, read_bytes, read_items
from .ingest import ingest_reply
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
    ensure = [
        EnsureAgent(claude_code.ORCHESTRATOR_ID, agent_id, name, "claude-code", {"source": "claude-code-hooks"})
        for agent_id, name in agents.items()
    ]
    return ingest_reply(await accept(rt, principal_of(request), "event", items, before=ensure))


async def otlp_logs(request: Request) -> Response:
    """OTLP/HTTP: 200 (with ``partialSuccess`` when some records were rejected) in the request's
    encoding; 400 on a bad payload; 429/503 with Retry-After when busy (exporters retry those).
    Claude Code and Codex events become agent logs of their session's agent (registered on first
    sight), and their tokens and cost are added to that agent's row."""
    rt = runtime(request)
    kind = media_type(request)
    if kind not in ("application/json", "application/x-protobuf"):  # before reading (and inflating) the body
        raise UnsupportedMediaType("OTLP/HTTP logs must be application/json or application/x-protobuf")
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
    check_count(len(export.items), rt.limits.max_items)
    export = await _drop_unknown_agents(rt, export)

    def ensure(kept: Sequence[int]) -> list[WriteOp]:
        agents = export.keep(kept).agents.values()  # only the agents of records that passed validation
        return [EnsureAgent(a.orchestrator_id, a.agent_id, a.name, a.model, a.metadata) for a in agents]

    accepted = await accept(rt, principal_of(request), "event", export.items, partial=True, before=ensure)
    if accepted.rejected:
        first = accepted.rejected[0]
        export.reasons.append(f"record {first['index']}: {first['field']}: {first['message']}")
    export = export.keep(accepted.kept)
    # usage only for events stored as new: a retried export is acked as duplicates, not re-added
    for agent_id, fields in agent_patches(export.mapped, [not a.duplicate for a in accepted.acks]).items():
        await rt.writer.submit(UpdateEntity("agents", agent_id, EntityPatch(**fields)))
    content, media = otlp.encode_response(export.rejected, "; ".join(export.reasons), protobuf=protobuf)
    return Response(content, media_type=media)


async def _drop_unknown_agents(rt: Runtime, export: otlp.Export) -> otlp.Export:
    """Generic records naming an agent orchlog does not know are rejected alone (partial success)."""
    unknown: set[str] = set()
    named = {
        str(e["agent_id"])
        for e, m in zip(export.items, export.mapped, strict=True)
        if m is None and e["kind"] == "agent_log"
    }
    for agent_id in named:
        try:
            known = await rt.store.get_entity("agents", str(canonical_uuid(agent_id)))
        except ValueError:
            known = None
        if known is None:
            unknown.add(agent_id)
            export.reasons.append(f"unknown agent {agent_id} ({otlp.AGENT_ATTRIBUTE})")
    if not unknown:
        return export
    return export.keep(
        i
        for i, (e, m) in enumerate(zip(export.items, export.mapped, strict=True))
        if not (m is None and e["kind"] == "agent_log" and str(e["agent_id"]) in unknown)
    )
