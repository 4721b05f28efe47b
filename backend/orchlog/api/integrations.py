"""POST /api/v1/hooks/claude-code (Claude Code HTTP hooks, or ``orchlog hook``) and POST /v1/logs
(OTLP/HTTP logs, JSON or protobuf)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..errors import BadRequest, UnsupportedMediaType, ValidationFailed
from ..ingest import accept, check_count
from ..integrations import claude_code, otlp
from ..models import canonical_uuid
from ..store.base import EnsureAgent
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
    encoding; 400 on a bad payload; 429/503 with Retry-After when busy (exporters retry those)."""
    rt = runtime(request)
    kind = media_type(request)
    body = await read_bytes(request, rt.settings.max_body_bytes)
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
    events = otlp.to_events(payload)
    check_count(len(events), rt.limits.max_items)
    rejected, reasons = 0, []
    # records naming an agent orchlog does not know are rejected alone (partial success)
    for agent_id in {str(e["agent_id"]) for e in events if e["kind"] == "agent_log"}:
        try:
            known = await rt.store.get_entity("agents", str(canonical_uuid(agent_id)))
        except ValueError:
            known = None
        if known is None:
            before = len(events)
            events = [e for e in events if not (e["kind"] == "agent_log" and str(e["agent_id"]) == agent_id)]
            rejected += before - len(events)
            reasons.append(f"unknown agent {agent_id} ({otlp.AGENT_ATTRIBUTE})")
    accepted = await accept(rt, principal_of(request), "event", events, partial=True)
    if accepted.rejected:
        rejected += len({d["index"] for d in accepted.rejected})
        first = accepted.rejected[0]
        reasons.append(f"record {first['index']}: {first['field']}: {first['message']}")
    content, media = otlp.encode_response(rejected, "; ".join(reasons), protobuf=protobuf)
    return Response(content, media_type=media)
