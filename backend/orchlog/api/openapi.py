"""OpenAPI 3.1 (``/openapi.json``) and AsyncAPI 3.0 (``/asyncapi.json``) documents, generated
from the Pydantic models so they cannot drift from what the server validates and returns."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter
from starlette.requests import Request

from .. import __version__
from ..models import (
    Ack,
    Agent,
    AgentCreate,
    AgentLog,
    AgentLogIn,
    EntityPatch,
    EventIn,
    OrchestratorAgent,
    OrchestratorAgentCreate,
    Prompt,
    PromptCreate,
    SystemLog,
    SystemLogIn,
)
from .responses import JSON

REF = "#/components/schemas/{model}"


class IngestReply(BaseModel):
    count: int
    items: list[Ack]


class HistoryItem(BaseModel):
    kind: Literal["agent_log", "system_log"]
    seq: int
    data: AgentLog | SystemLog


class HistoryPage(BaseModel):
    items: list[HistoryItem]
    has_more: bool
    next_after: int | None
    next_before: int | None
    head_seq: int
    floor_seq: int


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class Error(BaseModel):
    error: ErrorBody


class EntityList(BaseModel):
    items: list[dict[str, Any]]
    count: int


class Ticket(BaseModel):
    ticket: str
    expires_in: float


# ---------------------------------------------------------------- stream frames (AsyncAPI)


class HelloFrame(BaseModel):
    type: Literal["hello"]
    epoch: str
    head_seq: int
    floor_seq: int
    after: int
    filter: dict[str, Any]


class EventFrame(BaseModel):
    type: Literal["agent_log", "system_log"]
    seq: int
    data: AgentLog | SystemLog


class EventsFrame(BaseModel):
    type: Literal["events"]
    items: list[EventFrame]


class LiveFrame(BaseModel):
    type: Literal["live"]
    seq: int


class ResetFrame(BaseModel):
    type: Literal["reset"]
    floor_seq: int
    reason: Literal["below_floor", "epoch_changed", "cursor_ahead_of_head"]
    after: int


class HeartbeatFrame(BaseModel):
    type: Literal["heartbeat"]
    head_seq: int


class AgentFrame(BaseModel):
    type: Literal["agent"]
    op: Literal["created", "updated", "deleted"]
    data: dict[str, Any]


class PongFrame(BaseModel):
    type: Literal["pong"]


class PingFrame(BaseModel):
    type: Literal["ping"]


FRAMES: list[type[BaseModel]] = [
    HelloFrame,
    EventFrame,
    EventsFrame,
    LiveFrame,
    ResetFrame,
    HeartbeatFrame,
    AgentFrame,
    PongFrame,
]

FILTER_PARAMS: list[tuple[str, str]] = [
    ("kind", "agent_log or system_log (comma list or repeated)"),
    ("agent_id", "agent ids (comma list or repeated); excludes system logs"),
    ("level", "exact levels (comma list)"),
    ("min_level", "this level and worse"),
    ("event_category", "hook, response, adw_step; excludes system logs"),
    ("event_type", "event types (comma list); excludes system logs"),
    ("task_slug", "exact; excludes system logs"),
    ("session_id", "exact; excludes system logs"),
    ("adw_id", "exact"),
    ("since", "ISO-8601 time or a duration ago (10m, 2h, 1d)"),
    ("until", "same forms as since; exclusive"),
]


def _schemas() -> dict[str, Any]:
    models: list[Any] = [
        AgentLogIn,
        SystemLogIn,
        Ack,
        IngestReply,
        HistoryPage,
        Error,
        EntityList,
        Ticket,
        OrchestratorAgent,
        OrchestratorAgentCreate,
        Agent,
        AgentCreate,
        EntityPatch,
        Prompt,
        PromptCreate,
        *FRAMES,
        PingFrame,
    ]
    out: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=REF, mode="serialization")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    event = TypeAdapter(EventIn).json_schema(ref_template=REF)
    out.update(event.pop("$defs", {}))
    out["EventIn"] = event
    return out


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _one_or_many(name: str) -> dict[str, Any]:
    return {
        "content": {
            "application/json": {"schema": {"oneOf": [_ref(name), {"type": "array", "items": _ref(name)}]}},
            "application/x-ndjson": {"schema": {"type": "string", "description": f"one {name} JSON object per line"}},
        },
        "required": True,
    }


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "malformed body or parameter",
        401: "no or bad token",
        403: "token lacks the scope or the agent",
        404: "not found",
        413: "body or batch too large",
        415: "unsupported content type",
        422: "validation failed (names item index and field)",
        429: "rate limited (Retry-After)",
        503: "overloaded, locked or full (Retry-After)",
    }
    return {
        str(c): {"description": reasons[c], "content": {"application/json": {"schema": _ref("Error")}}} for c in codes
    }


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _params(names: list[tuple[str, str]], *, where: str = "query") -> list[dict[str, Any]]:
    return [
        {"name": n, "in": where, "required": False, "description": d, "schema": {"type": "string"}} for n, d in names
    ]


def _ingest(name: str, summary: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "requestBody": _one_or_many(name),
            "responses": {"201": _json("IngestReply", "committed"), **_errors(400, 401, 403, 413, 415, 422, 429, 503)},
        }
    }


def _entity(collection: str, row: str, create: str, *, delete: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {
        "get": {"summary": f"one {row}", "responses": {"200": _json(row, row), **_errors(401, 404)}},
        "patch": {
            "summary": f"update a {row} (add_* fields are exact increments)",
            "requestBody": {"content": {"application/json": {"schema": _ref("EntityPatch")}}, "required": True},
            "responses": {"200": _json(row, "the updated row"), **_errors(400, 401, 403, 404, 422, 503)},
        },
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}],
    }
    if delete:
        item["delete"] = {
            "summary": "archive (soft delete)",
            "responses": {"200": _json(row, "archived"), **_errors(401, 404)},
        }
    if row == "Prompt":
        item.pop("patch")
    return {
        collection: {
            "get": {
                "summary": f"list {row}s (newest first)",
                "parameters": _params([("limit", "≤ 1000"), ("offset", "rows to skip")]),
                "responses": {"200": _json("EntityList", "rows"), **_errors(400, 401)},
            },
            "post": {
                "summary": f"create a {row}",
                "requestBody": {"content": {"application/json": {"schema": _ref(create)}}, "required": True},
                "responses": {"201": _json(row, "created"), **_errors(400, 401, 403, 422, 503)},
            },
        },
        collection + "/{id}": item,
    }


def openapi_document() -> dict[str, Any]:
    stream_params = _params(
        [
            ("after", "resume after this seq (0 = from the start)"),
            ("tail", "the last N matching events, then live"),
            ("batch", "1: several events per frame"),
            ("epoch", "the epoch from an earlier hello (reset if it differs)"),
            ("q", "case-insensitive substring"),
            *FILTER_PARAMS,
        ]
    )
    plain = {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}}
    paths: dict[str, Any] = {
        "/api/v1/agent-logs": _ingest("AgentLogIn", "post agent logs (object, array or NDJSON; atomic)"),
        "/api/v1/system-logs": _ingest("SystemLogIn", "post system logs"),
        "/api/v1/events": {
            **_ingest("EventIn", "post mixed events (each with kind)"),
            "get": {
                "summary": "history: keyset pages by seq, ascending",
                "parameters": _params(
                    [
                        ("after", "seqs above this"),
                        ("before", "the page just below this seq"),
                        ("limit", "default 100, max 1000"),
                        ("q", "full-text query (FTS5: phrases, prefix*, AND/OR/NOT)"),
                        ("contains", "case-insensitive substring"),
                        *FILTER_PARAMS,
                    ]
                ),
                "responses": {"200": _json("HistoryPage", "a page"), **_errors(400, 401, 403)},
            },
        },
        "/api/v1/stream": {
            "get": {
                "summary": "live stream over WebSocket (upgrade); frames in /asyncapi.json",
                "parameters": stream_params,
                "responses": {"101": {"description": "switching protocols"}, **_errors(400, 401, 403)},
            }
        },
        "/api/v1/stream/sse": {
            "get": {
                "summary": "live stream as Server-Sent Events (Last-Event-ID resumes)",
                "parameters": stream_params,
                "responses": {
                    "200": {
                        "description": "event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_errors(400, 401, 403),
                },
            }
        },
        "/api/v1/stream/ticket": {
            "post": {
                "summary": "a single-use stream ticket",
                "responses": {"201": _json("Ticket", "ticket"), **_errors(401, 403)},
            }
        },
        "/api/v1/hooks/claude-code": {
            "post": {
                "summary": "a Claude Code hook input (or an array of them)",
                "parameters": _params([("agent", "agent name (default claude-<session>)")]),
                "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}, "required": True},
                "responses": {"201": _json("IngestReply", "committed"), **_errors(400, 401, 403, 413, 415, 422, 503)},
            }
        },
        "/v1/logs": {
            "post": {
                "summary": "OTLP/HTTP logs (JSON or protobuf)",
                "requestBody": {
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                    },
                    "required": True,
                },
                "responses": {
                    "200": {"description": "ExportLogsServiceResponse (partialSuccess when rejected)"},
                    **_errors(400, 401, 415, 429, 503),
                },
            }
        },
        **_entity("/api/v1/orchestrator-agents", "OrchestratorAgent", "OrchestratorAgentCreate"),
        **_entity("/api/v1/agents", "Agent", "AgentCreate", delete=True),
        **_entity("/api/v1/prompts", "Prompt", "PromptCreate"),
        "/healthz": {"get": {"summary": "liveness", "responses": plain}},
        "/readyz": {
            "get": {
                "summary": "readiness (writer, hub, database writable)",
                "responses": {**plain, "503": {"description": "not ready"}},
            }
        },
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text format"}}}},
        "/openapi.json": {"get": {"summary": "this document", "responses": plain}},
        "/asyncapi.json": {"get": {"summary": "the stream frames (AsyncAPI 3.0)", "responses": plain}},
        "/ws": {
            "get": {
                "summary": "orchestrator_3_stream WebSocket (compat)",
                "responses": {"101": {"description": "switching protocols"}},
            }
        },
        "/health": {"get": {"summary": "compat: health", "responses": plain}},
        "/get_orchestrator": {"get": {"summary": "compat: the orchestrator", "responses": {**plain, **_errors(404)}}},
        "/get_headers": {"get": {"summary": "compat: cwd", "responses": plain}},
        "/list_agents": {"get": {"summary": "compat: agents with log_count", "responses": plain}},
        "/get_events": {
            "get": {
                "summary": "compat: newest events, oldest first, with sourceType",
                "parameters": _params(
                    [("agent_id", ""), ("task_slug", ""), ("event_types", "all or CSV"), ("limit", ""), ("offset", "")]
                ),
                "responses": {**plain, **_errors(400)},
            }
        },
        "/load_chat": {"post": {"summary": "compat: chat history (orchlog keeps none)", "responses": plain}},
        "/": {"get": {"summary": "the dashboard", "responses": {"200": {"description": "HTML"}}}},
        "/{name}": {
            "get": {
                "summary": "the dashboard's files (app.js, style.css)",
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "file"}, **_errors(404)},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "orchlog",
            "version": __version__,
            "description": "Durable, gapless, live event log for fleets of AI agents. Protocol: docs/protocol.md.",
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
        "paths": paths,
    }


def asyncapi_document() -> dict[str, Any]:
    schemas = _schemas()
    every: list[type[BaseModel]] = [*FRAMES, PingFrame]
    messages = {m.__name__: {"name": m.__name__, "payload": _ref(m.__name__)} for m in every}
    server_frames = [{"$ref": f"#/channels/stream/messages/{m.__name__}"} for m in FRAMES]
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "orchlog live stream", "version": __version__, "description": "Frames of /api/v1/stream"},
        "channels": {
            "stream": {
                "address": "/api/v1/stream",
                "messages": messages,
                "description": "hello first; events ascending, exactly once; live once caught up.",
            }
        },
        "operations": {
            "receiveFrames": {"action": "receive", "channel": {"$ref": "#/channels/stream"}, "messages": server_frames},
            "sendPing": {
                "action": "send",
                "channel": {"$ref": "#/channels/stream"},
                "messages": [{"$ref": "#/channels/stream/messages/PingFrame"}],
            },
        },
        "components": {"schemas": schemas},
    }


async def openapi(request: Request) -> JSON:
    return JSON(openapi_document())


async def asyncapi(request: Request) -> JSON:
    return JSON(asyncapi_document())
