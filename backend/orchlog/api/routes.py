"""THE route table: every route of orchlog, declared once.

Each entry says its path, its methods, the handler, the scope a token needs (``open`` = no token),
and its documentation. ``api/app.py`` builds the Starlette routes from it, ``api/gate.py``
authorizes every request against it (anything not here is refused), ``api/openapi.py`` documents
it, and the metric labels are its paths. To add a route, add it here; nothing else lists routes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from ..models import (
    LEVELS,
    AgentCreate,
    AgentLogIn,
    EntityPatch,
    OrchestratorAgentCreate,
    PromptCreate,
    SystemLogIn,
)
from ..volume import MAX_BUCKET_S
from . import compat, dashboard, entities, health, history, ingest, integrations, openapi, stats, stream
from .schemas import CompatReply, EntityList, Health, HistoryPage, IngestReply, Readiness, Ticket, Volume
from .table import Body, Operation, Param, Reply, Route, Scope, Table

Handler = Callable[..., Any]

INGEST_ERRORS = (400, 401, 403, 413, 415, 422, 429, 503)

FILTERS = (
    Param("kind", "agent_log or system_log (system is accepted too); comma list or repeated"),
    Param("agent_id", "agent ids (comma list or repeated); excludes system logs"),
    Param("level", "exact levels (comma list)"),
    Param("min_level", "this level and worse", enum=tuple(level.lower() for level in LEVELS)),
    Param("event_category", "hook, response, adw_step; excludes system logs"),
    Param("event_type", "event types (comma list); excludes system logs"),
    Param("task_slug", "exact; excludes system logs"),
    Param("session_id", "exact; excludes system logs"),
    Param("adw_id", "exact"),
    Param("tool_name", "payload.tool_name, exact (a string); excludes system logs"),
    Param("since", "ISO-8601 time or a duration ago (10m, 2h, 1d)"),
    Param("until", "same forms as since; exclusive"),
)
STREAM_PARAMS = (
    Param("after", "resume after this seq (0 = from the start)", "integer", minimum=0, maximum=2**63 - 1),
    Param("tail", "the last N matching events, then live", "integer", minimum=0, maximum=100_000),
    Param("batch", "1: several events per frame", "boolean"),
    Param("epoch", "the epoch from an earlier hello (reset if it differs)"),
    Param("q", "case-insensitive substring"),
    *FILTERS,
)
ID = Param("id", "the row's id", where="path", required=True, format="uuid")
PAGE = (
    Param("limit", "rows per page", "integer", minimum=1, maximum=1000),
    Param("offset", "rows to skip", "integer", minimum=0, maximum=2**63 - 1),
)


def _ingest(kind: str, endpoint: Handler, model: type[BaseModel] | str, summary: str) -> Operation:
    return Operation(
        "POST",
        endpoint,
        "ingest",
        f"post{kind}",
        summary,
        Reply(201, "committed: one ack per item, in order", IngestReply),
        body=Body(model, many=True),
        errors=INGEST_ERRORS,
    )


def _entity(
    path: str, name: str, module_prefix: str, create: type[BaseModel], *, patch: bool, delete: bool
) -> list[Route]:
    """The CRUD-lite pair of routes of one table (list/create, and one row by id)."""
    list_op = getattr(entities, f"list_{module_prefix}s")
    one = [
        Operation(
            "GET",
            getattr(entities, f"get_{module_prefix}"),
            "read",
            f"get{name}",
            f"one {name}",
            Reply(200, name, name),
            params=(ID,),
            errors=(401, 403, 404),
        )
    ]
    if patch:
        one.append(
            Operation(
                "PATCH",
                getattr(entities, f"patch_{module_prefix}"),
                "ingest",
                f"patch{name}",
                f"update a {name} (add_* fields are exact increments)",
                Reply(200, "the updated row", name),
                params=(ID,),
                body=Body(EntityPatch),
                errors=(400, 401, 403, 404, 415, 422, 503),
            )
        )
    if delete:
        one.append(
            Operation(
                "DELETE",
                getattr(entities, f"delete_{module_prefix}"),
                "ingest",
                f"archive{name}",
                "archive (soft delete)",
                Reply(200, "archived", name),
                params=(ID,),
                errors=(401, 403, 404),
            )
        )
    return [
        Route(
            path,
            (
                Operation(
                    "GET",
                    list_op,
                    "read",
                    f"list{name}s",
                    f"list {name}s (newest first)",
                    Reply(200, "rows", EntityList),
                    params=PAGE,
                    errors=(400, 401, 403),
                ),
                Operation(
                    "POST",
                    getattr(entities, f"create_{module_prefix}"),
                    "ingest",
                    f"create{name}",
                    f"create a {name}",
                    Reply(201, "created", name),
                    body=Body(create),
                    errors=(400, 401, 403, 413, 415, 422, 503),
                ),
            ),
        ),
        Route(path + "/{id}", tuple(one)),
    ]


def _compat(
    path: str, endpoint: Handler, op_id: str, summary: str, *params: Param, unbound_only: bool = False
) -> Route:
    return Route(
        path,
        (
            Operation(
                "GET",
                endpoint,
                "read",
                op_id,
                f"compat: {summary}",
                Reply(200, "ok", CompatReply),
                params=params,
                errors=(400, 401, 403),
                unbound_only=unbound_only,
            ),
        ),
    )


def _get(
    path: str,
    endpoint: Handler,
    scope: Scope,
    op_id: str,
    summary: str,
    reply: Reply,
    *,
    errors: tuple[int, ...] = (),
    unbound_only: bool = False,
) -> Route:
    return Route(
        path, (Operation("GET", endpoint, scope, op_id, summary, reply, errors=errors, unbound_only=unbound_only),)
    )


ROUTES = Table(
    [
        _get("/", dashboard.static, "open", "dashboard", "the dashboard", Reply(200, "HTML", media="text/html")),
        _get(
            "/closecodes.js",
            dashboard.closecodes,
            "open",
            "closeCodes",
            "the WebSocket close codes as an ES module (for the dashboard)",
            Reply(200, "JavaScript", media="text/javascript"),
        ),
        _get("/healthz", health.healthz, "open", "healthz", "liveness", Reply(200, "alive", Health)),
        _get(
            "/readyz",
            health.readyz,
            "open",
            "readyz",
            "readiness (writer, hub, database writable); 503 when not ready",
            Reply(200, "ready", Readiness),
            errors=(503,),
        ),
        _get(
            "/metrics",
            health.metrics,
            "read",
            "metrics",
            "Prometheus metrics (server-wide: not for agent-bound tokens)",
            Reply(200, "Prometheus text format", media="text/plain"),
            errors=(401, 403),
            unbound_only=True,
        ),
        _get("/openapi.json", openapi.openapi, "open", "openapi", "this document", Reply(200, "OpenAPI 3.1")),
        _get("/asyncapi.json", openapi.asyncapi, "open", "asyncapi", "the stream frames", Reply(200, "AsyncAPI 3.0")),
        _get("/docs", openapi.docs, "open", "docs", "interactive API docs", Reply(200, "HTML", media="text/html")),
        Route(
            "/docs/{file}",
            (
                Operation(
                    "GET",
                    openapi.docs_file,
                    "open",
                    "docsFile",
                    "the interactive docs' files (Swagger UI)",
                    Reply(200, "file", media="text/javascript"),
                    params=(Param("file", "file name", where="path", required=True),),
                    errors=(404,),
                ),
            ),
        ),
        Route("/api/v1/agent-logs", (_ingest("AgentLogs", ingest.post_agent_logs, AgentLogIn, "post agent logs"),)),
        Route(
            "/api/v1/system-logs", (_ingest("SystemLogs", ingest.post_system_logs, SystemLogIn, "post system logs"),)
        ),
        Route(
            "/api/v1/events",
            (
                _ingest("Events", ingest.post_events, "EventIn", "post mixed events (each with kind)"),
                Operation(
                    "GET",
                    history.get_events,
                    "read",
                    "getEvents",
                    "history: keyset pages by seq, ascending",
                    Reply(200, "a page", HistoryPage),
                    params=(
                        Param("after", "seqs above this", "integer", minimum=0, maximum=2**63 - 1),
                        Param("before", "the page just below this seq", "integer", minimum=0, maximum=2**63 - 1),
                        Param("limit", "page size (default 100)", "integer", minimum=1, maximum=1000),
                        Param("q", "full-text query (FTS5: phrases, prefix*, AND/OR/NOT)"),
                        Param("contains", "case-insensitive substring"),
                        *FILTERS,
                    ),
                    errors=(400, 401, 403),
                ),
            ),
        ),
        Route(
            "/api/v1/stats/volume",
            (
                Operation(
                    "GET",
                    stats.get_volume,
                    "read",
                    "getVolume",
                    "events per level over time (the histogram), counted over everything stored",
                    Reply(200, "buckets aligned to the epoch, empty ones included", Volume),
                    params=(
                        Param(
                            "bucket",
                            "bucket size in seconds (default: a round size giving at most 120 buckets; "
                            "at most 500 buckets are allowed)",
                            "integer",
                            minimum=1,
                            maximum=MAX_BUCKET_S,
                        ),
                        Param("q", "full-text query (FTS5: phrases, prefix*, AND/OR/NOT)"),
                        Param("contains", "case-insensitive substring"),
                        *FILTERS,
                    ),
                    errors=(400, 401, 403),
                ),
            ),
        ),
        Route(
            "/api/v1/stream",
            (
                Operation(
                    "WEBSOCKET",
                    stream.stream_ws,
                    "read",
                    "stream",
                    "live stream over WebSocket (upgrade); frames in /asyncapi.json",
                    Reply(101, "switching protocols"),
                    params=STREAM_PARAMS,
                    errors=(400, 401, 403),
                    stream=True,
                ),
            ),
        ),
        Route(
            "/api/v1/stream/ticket",
            (
                Operation(
                    "POST",
                    stream.ticket,
                    "read",
                    "streamTicket",
                    "a single-use stream ticket (for browsers)",
                    Reply(201, "ticket", Ticket),
                    errors=(401, 403),
                ),
            ),
        ),
        Route(
            "/api/v1/stream/sse",
            (
                Operation(
                    "GET",
                    stream.stream_sse,
                    "read",
                    "streamSse",
                    "live stream as Server-Sent Events (Last-Event-ID resumes)",
                    Reply(200, "event stream", media="text/event-stream"),
                    params=(*STREAM_PARAMS, Param("Last-Event-ID", "resume after this seq", where="header")),
                    errors=(400, 401, 403, 429),
                    stream=True,
                ),
            ),
        ),
        Route(
            "/api/v1/hooks/claude-code",
            (
                Operation(
                    "POST",
                    integrations.claude_code_hook,
                    "ingest",
                    "postClaudeCodeHook",
                    "a Claude Code hook input (or an array of them)",
                    Reply(201, "committed", IngestReply),
                    params=(Param("agent", "agent name (default claude-<session>)"),),
                    body=Body("ClaudeCodeHook", many=True, description="the hook's stdin JSON"),
                    errors=INGEST_ERRORS,
                ),
            ),
        ),
        Route(
            "/v1/logs",
            (
                Operation(
                    "POST",
                    integrations.otlp_logs,
                    "ingest",
                    "postOtlpLogs",
                    "OTLP/HTTP logs (JSON or protobuf); partialSuccess names rejected records",
                    Reply(200, "ExportLogsServiceResponse"),
                    body=Body("OtlpLogs", media=("application/json", "application/x-protobuf")),
                    errors=INGEST_ERRORS,
                ),
            ),
        ),
        *_entity(
            "/api/v1/orchestrator-agents",
            "OrchestratorAgent",
            "orchestrator",
            OrchestratorAgentCreate,
            patch=True,
            delete=False,
        ),
        *_entity("/api/v1/agents", "Agent", "agent", AgentCreate, patch=True, delete=True),
        *_entity("/api/v1/prompts", "Prompt", "prompt", PromptCreate, patch=False, delete=False),
        # orchestrator_3_stream compatibility (docs/protocol.md#compatibility)
        Route(
            "/ws",
            (
                Operation(
                    "WEBSOCKET",
                    compat.ws,
                    "read",
                    "compatWs",
                    "orchestrator_3_stream WebSocket (compat)",
                    Reply(101, "switching protocols"),
                    params=(Param("after", "resume after this seq", "integer", minimum=0, maximum=2**63 - 1),),
                    errors=(401, 403),
                    stream=True,
                ),
            ),
        ),
        _get("/health", compat.health, "open", "compatHealth", "compat: health", Reply(200, "ok", CompatReply)),
        _compat("/get_orchestrator", compat.get_orchestrator, "compatGetOrchestrator", "the orchestrator"),
        _compat(
            "/get_headers", compat.get_headers, "compatGetHeaders", "the server's cwd (server-wide)", unbound_only=True
        ),
        _compat("/list_agents", compat.list_agents, "compatListAgents", "agents with log_count"),
        _compat(
            "/get_events",
            compat.get_events,
            "compatGetEvents",
            "newest events, oldest first, with sourceType",
            Param("agent_id", "one agent", format="uuid"),
            Param("task_slug", "exact"),
            Param("event_types", "all or a CSV of agent_logs, system_logs, orchestrator_chat"),
            Param("limit", "newest N (default 50)", "integer", minimum=1, maximum=10_000),
            Param("offset", "skip the newest N", "integer", minimum=0, maximum=2**63 - 1),
        ),
        Route(
            "/load_chat",
            (
                Operation(
                    "POST",
                    compat.load_chat,
                    "read",
                    "compatLoadChat",
                    "compat: chat history (orchlog keeps none)",
                    Reply(200, "ok", CompatReply),
                    errors=(401, 403),
                ),
            ),
        ),
        # the dashboard's files (app.js, style.css, ...); last, so it never shadows a route above
        Route(
            "/{name}",
            (
                Operation(
                    "GET",
                    dashboard.static,
                    "open",
                    "dashboardFile",
                    "the dashboard's files (app.js, style.css, ...)",
                    Reply(200, "file"),
                    params=(Param("name", "file name", where="path", required=True),),
                    errors=(404,),
                ),
            ),
            name="dashboard-file",
        ),
    ]
)
