"""OpenAPI 3.1 (``/openapi.json``) and AsyncAPI 3.0 (``/asyncapi.json``) documents, generated
from the Pydantic models so they cannot drift from what the server validates and returns."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from .. import __version__
from ..errors import NotFound
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
from .schemas import CompatReply, EntityList, Error, Health, HistoryPage, IngestReply, Readiness, Ticket, Volume
from .table import Operation, Route, Table

REF = "#/components/schemas/{model}"


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


def _schemas() -> dict[str, Any]:
    models: list[Any] = [
        AgentLogIn,
        SystemLogIn,
        Ack,
        IngestReply,
        HistoryPage,
        Volume,
        Error,
        EntityList,
        Ticket,
        Health,
        Readiness,
        CompatReply,
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
        if isinstance(model, type) and issubclass(model, BaseModel):
            schema = model.model_json_schema(ref_template=REF, mode="serialization")
        else:  # a dataclass (Ack)
            schema = TypeAdapter(model).json_schema(ref_template=REF, mode="serialization")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    out["ClaudeCodeHook"] = {"type": "object", "description": "a Claude Code hook input (its stdin JSON)"}
    out["OtlpLogs"] = {"type": "object", "description": "an OTLP ExportLogsServiceRequest (JSON encoding)"}
    event = TypeAdapter(EventIn).json_schema(ref_template=REF)
    out.update(event.pop("$defs", {}))
    out["EventIn"] = event
    return out


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


ERROR_REASONS = {
    400: "malformed body or parameter",
    401: "no or bad token",
    403: "token lacks the scope or the agent; or a foreign Origin or Host",
    404: "not found",
    413: "body or batch too large",
    415: "unsupported content type",
    422: "validation failed (names item index and field)",
    429: "rate limited (Retry-After)",
    503: "overloaded, locked or full (Retry-After)",
}


def _content(model: type[BaseModel] | str | None, media: str, *, many: bool = False) -> dict[str, Any]:
    if model is None:
        schema: dict[str, Any] = {"type": "string"} if media != "application/json" else {"type": "object"}
    else:
        schema = _ref(model if isinstance(model, str) else model.__name__)
        if many:
            schema = {"oneOf": [schema, {"type": "array", "items": schema}]}
    return {media: {"schema": schema}}


def _operation(route: Route, op: Operation) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(op.reply.status): {
            "description": op.reply.description,
            **({} if op.reply.status == 101 else {"content": _content(op.reply.model, op.reply.media)}),
        }
    }
    for code in op.errors:
        responses[str(code)] = {
            "description": ERROR_REASONS.get(code, "error"),
            "content": _content(Error, "application/json"),
        }
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "responses": responses,
        "x-orchlog-scope": op.scope,
    }
    if op.scope == "open":
        out["security"] = [{}]
    if op.params:
        out["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required or p.where == "path",
                "description": p.description,
                "schema": p.schema(),
            }
            for p in op.params
        ]
    if op.body is not None:
        content: dict[str, Any] = {}
        for media in op.body.media:
            if media == "application/json":
                content.update(_content(op.body.model, media, many=op.body.many))
            else:
                content[media] = {"schema": {"type": "string", "description": op.body.description or media}}
        if op.body.many:
            name = op.body.model if isinstance(op.body.model, str) else getattr(op.body.model, "__name__", "item")
            content["application/x-ndjson"] = {
                "schema": {"type": "string", "description": f"one {name} JSON object per line"}
            }
        out["requestBody"] = {"content": content, "required": True}
    if op.method == "WEBSOCKET":
        out["description"] = "A WebSocket: send GET with Upgrade: websocket. Frames are in /asyncapi.json."
    return out


def openapi_document(table: Table) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``table``: every route and method, nothing else."""
    paths: dict[str, Any] = {}
    for route in table:
        item: dict[str, Any] = {}
        for op in route.operations:
            item["get" if op.method == "WEBSOCKET" else op.method.lower()] = _operation(route, op)
        paths[route.path] = item
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
        "security": [{"bearer": []}],
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
    return JSON(request.app.state.openapi)


async def asyncapi(request: Request) -> JSON:
    return JSON(asyncapi_document())


SWAGGER_DIR = Path(__file__).resolve().parent / "swagger"
SWAGGER_FILES = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8", "swagger-ui.css": "text/css; charset=utf-8"}
DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>orchlog API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});</script>
</body></html>
"""


async def docs(request: Request) -> Response:
    """Swagger UI's standard bundle, served from the package (no CDN)."""
    return HTMLResponse(DOCS_PAGE)


async def docs_file(request: Request) -> Response:
    name = request.path_params["file"]
    media = SWAGGER_FILES.get(name)
    if media is None:
        raise NotFound(f"no such file: {request.url.path}")
    return FileResponse(SWAGGER_DIR / name, media_type=media, headers={"Cache-Control": "public, max-age=86400"})
