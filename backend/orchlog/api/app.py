"""create_app(): routes in one list, resources in the lifespan, one error shape for everything."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Settings
from ..errors import OrchlogError
from ..logs import new_request_id, request_id
from ..metrics import Metrics, route_label
from ..runtime import Runtime
from . import compat, dashboard, entities, health, history, ingest, integrations, openapi, stream
from .responses import JSON, error_response
from .security import AuthMiddleware

log = logging.getLogger("orchlog.api")

# the orchestrator_3_stream frontend runs on another local port; loopback origins are allowed
LOOPBACK_ORIGINS = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?"

ROUTES = [
    Route("/", dashboard.static),
    Route("/healthz", health.healthz),
    Route("/readyz", health.readyz),
    Route("/metrics", health.metrics),
    Route("/openapi.json", openapi.openapi),
    Route("/asyncapi.json", openapi.asyncapi),
    Route("/api/v1/agent-logs", ingest.post_agent_logs, methods=["POST"]),
    Route("/api/v1/system-logs", ingest.post_system_logs, methods=["POST"]),
    Route("/api/v1/events", ingest.post_events, methods=["POST"]),
    Route("/api/v1/events", history.get_events, methods=["GET"]),
    WebSocketRoute("/api/v1/stream", stream.stream_ws),
    Route("/api/v1/stream/ticket", stream.ticket, methods=["POST"]),
    Route("/api/v1/hooks/claude-code", integrations.claude_code_hook, methods=["POST"]),
    Route("/v1/logs", integrations.otlp_logs, methods=["POST"]),
    Route("/api/v1/stream/sse", stream.stream_sse),
    Route("/api/v1/orchestrator-agents", entities.create_orchestrator, methods=["POST"]),
    Route("/api/v1/orchestrator-agents", entities.list_orchestrators, methods=["GET"]),
    Route("/api/v1/orchestrator-agents/{id}", entities.get_orchestrator, methods=["GET"]),
    Route("/api/v1/orchestrator-agents/{id}", entities.patch_orchestrator, methods=["PATCH"]),
    Route("/api/v1/agents", entities.create_agent, methods=["POST"]),
    Route("/api/v1/agents", entities.list_agents, methods=["GET"]),
    Route("/api/v1/agents/{id}", entities.get_agent, methods=["GET"]),
    Route("/api/v1/agents/{id}", entities.patch_agent, methods=["PATCH"]),
    Route("/api/v1/agents/{id}", entities.delete_agent, methods=["DELETE"]),
    Route("/api/v1/prompts", entities.create_prompt, methods=["POST"]),
    Route("/api/v1/prompts", entities.list_prompts, methods=["GET"]),
    Route("/api/v1/prompts/{id}", entities.get_prompt, methods=["GET"]),
    # orchestrator_3_stream compatibility
    WebSocketRoute("/ws", compat.ws),
    Route("/health", compat.health),
    Route("/get_orchestrator", compat.get_orchestrator),
    Route("/get_headers", compat.get_headers),
    Route("/list_agents", compat.list_agents),
    Route("/get_events", compat.get_events),
    Route("/load_chat", compat.load_chat, methods=["POST"]),
    # the dashboard's files; last, so it never shadows a route above
    Route("/{name:str}", dashboard.static, name="dashboard-file", methods=["GET", "HEAD"]),
]


async def _orchlog_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OrchlogError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    body = {"error": {"code": codes.get(exc.status_code, "http_error"), "message": str(exc.detail)}}
    return JSON(body, status_code=exc.status_code, headers=dict(exc.headers or {}))


async def _crash(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    body = {"error": {"code": "internal_error", "message": "internal error; the server log has the details"}}
    return JSON(body, status_code=500)


access_log = logging.getLogger("orchlog.access")


class RequestMetrics:
    """Gives every HTTP request an id (X-Request-ID in and out), counts and times it by route
    (ids folded) and status, and writes one access line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()
        offered = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-request-id"), None)
        rid = new_request_id(offered)
        token = request_id.set(rid)

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            took = time.perf_counter() - started
            route = route_label(scope["path"])
            self.metrics.http_seconds.labels(route).observe(took)
            self.metrics.http_requests.labels(route, scope["method"], str(status)).inc()
            client = scope.get("client")
            query = scope.get("query_string", b"").decode("latin-1")
            path = scope["path"] + (f"?{query}" if query else "")
            access_log.info(
                "%s %s %s %.1fms",
                scope["method"],
                path,
                status,
                took * 1000,
                extra={
                    "method": scope["method"],
                    "path": path,
                    "status": status,
                    "duration_ms": round(took * 1000, 2),
                    "client": f"{client[0]}:{client[1]}" if client else None,
                },
            )
            request_id.reset(token)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Starlette:
    settings = settings or Settings.load()
    rt = runtime or Runtime(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    app = Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        middleware=[
            Middleware(RequestMetrics, metrics=rt.metrics),
            Middleware(
                CORSMiddleware,
                allow_origins=sorted(rt.allowed_origins),
                allow_origin_regex=LOOPBACK_ORIGINS,
                allow_methods=["*"],
                allow_headers=["*"],
                expose_headers=["Retry-After"],
            ),
            Middleware(AuthMiddleware, runtime=rt),
        ],
        exception_handlers={OrchlogError: _orchlog_error, HTTPException: _http_error, Exception: _crash},
    )
    app.state.runtime = rt
    return app
