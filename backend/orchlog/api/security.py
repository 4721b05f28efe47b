"""Authentication at the edge: one ASGI middleware decides the scope every route needs.

How clients present a token (docs/protocol.md#authentication):

- ``Authorization: Bearer <token>`` on HTTP and on the WebSocket handshake (CLI, client);
- browsers, which cannot set headers on WebSocket/EventSource: the WebSocket subprotocol
  ``bearer.<token>`` (offer ``orchlog.v1`` too and the server answers with that one, so the token
  is not echoed), or a single-use ticket from ``POST /api/v1/stream/ticket`` as ``?ticket=``.

WebSocket and SSE also check ``Origin``: same origin, loopback, or the configured allow-list.
A page on another site cannot open a stream, whatever cookie or ticket it holds.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from ..auth import Principal
from ..errors import Forbidden, OrchlogError, Unauthorized
from ..runtime import Runtime

SUBPROTOCOL = "orchlog.v1"
NOBODY = Principal(name="anonymous", scopes=frozenset())
BEARER_PREFIX = "bearer."
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}

# (method, path regex) -> scope; the first match wins; None = open
RULES: list[tuple[str, re.Pattern[str], str | None]] = [
    (m, re.compile(p), s)
    for m, p, s in [
        ("*", r"^/(healthz|readyz|health|openapi\.json|asyncapi\.json)$", None),
        ("GET", r"^/(index\.html|app\.js|style\.css)?$", None),
        ("GET", r"^/static/", None),
        ("POST", r"^/api/v1/(agent-logs|system-logs|events)$", "ingest"),
        ("POST", r"^/api/v1/stream/ticket$", "read"),
        ("POST", r"^/api/v1/hooks/", "ingest"),
        ("POST", r"^/v1/logs$", "ingest"),
        ("GET", r"^/api/v1/", "read"),
        ("WS", r"^/api/v1/stream$", "read"),
        ("*", r"^/api/v1/(orchestrator-agents|agents|prompts)(/[^/]+)?$", "ingest"),
        ("*", r"^/api/v1/admin/", "admin"),
        ("WS", r"^/ws$", "read"),
        ("GET", r"^/(get_orchestrator|get_headers|list_agents|get_events|metrics)$", "read"),
        ("POST", r"^/load_chat$", "read"),
    ]
]


def required_scope(method: str, path: str) -> str | None:
    for rule_method, pattern, scope in RULES:
        if rule_method in ("*", method) and pattern.search(path):
            return scope
    return None


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def origin_allowed(origin: str | None, host: str | None, allowed: frozenset[str]) -> bool:
    """No Origin (not a browser), same origin, loopback, or listed ('*' allows any)."""
    if not origin or origin == "null":
        return origin is None
    if "*" in allowed or origin.rstrip("/") in allowed:
        return True
    parts = urlsplit(origin)
    if (parts.hostname or "") in _LOOPBACK_HOSTS:
        return True
    return bool(host) and parts.netloc.lower() == (host or "").lower()


def credentials(scope: Scope, headers: dict[str, str]) -> tuple[str | None, str | None]:
    """(bearer token, ticket) from the Authorization header, the subprotocol, or ?ticket=."""
    auth = headers.get("authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
    if token is None and scope["type"] == "websocket":
        for offered in scope.get("subprotocols", []):
            if offered.startswith(BEARER_PREFIX):
                token = offered[len(BEARER_PREFIX) :]
    ticket = None
    query = scope.get("query_string", b"").decode("latin-1")
    if "ticket=" in query:
        ticket = (parse_qs(query).get("ticket") or [None])[-1]
    return token, ticket


def chosen_subprotocol(scope: Scope) -> str | None:
    offered: list[str] = list(scope.get("subprotocols", []))
    if SUBPROTOCOL in offered:
        return SUBPROTOCOL
    return next((p for p in offered if p.startswith(BEARER_PREFIX)), None)


class AuthMiddleware:
    """Sets ``scope["state"]["principal"]``; refuses with 401/403 JSON or WebSocket 4401/4403/1008."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rt = self.runtime
        headers = _headers(scope)
        method = "WS" if scope["type"] == "websocket" else scope["method"]
        path = scope["path"]
        streaming = scope["type"] == "websocket" or path.endswith("/stream/sse")
        if streaming and not origin_allowed(headers.get("origin"), headers.get("host"), rt.allowed_origins):
            await self._refuse(scope, send, 403, 1008, "origin not allowed", "forbidden_origin")
            return
        needed = required_scope(method, path)
        if needed is None:
            # open routes (health, the dashboard's files) never ask for credentials
            scope.setdefault("state", {})["principal"] = NOBODY
            await self.app(scope, receive, send)
            return
        try:
            principal = await self._authenticate(scope, headers)
            principal.require(needed)
        except OrchlogError as exc:
            status = 401 if isinstance(exc, Unauthorized) else 403
            await self._refuse(scope, send, status, 4401 if status == 401 else 4403, exc.message, exc.code)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope, headers: dict[str, str]) -> Principal:
        rt = self.runtime
        if rt.keyring.stale:
            await rt.refresh_tokens()
        token, ticket = credentials(scope, headers)
        if ticket and token is None and (scope["type"] == "websocket" or scope["path"].endswith("/stream/sse")):
            return rt.tickets.redeem(ticket)
        return rt.keyring.authenticate(token)

    async def _refuse(self, scope: Scope, send: Send, status: int, close_code: int, message: str, code: str) -> None:
        if scope["type"] == "websocket":
            # accept-then-close gives the client a reason it can read (a 403 handshake does not)
            await send({"type": "websocket.accept", "subprotocol": chosen_subprotocol(scope)})
            await send({"type": "websocket.close", "code": close_code, "reason": message[:120]})
            return
        body = orjson.dumps({"error": {"code": code, "message": message}})
        hdrs: list[tuple[bytes, bytes]] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if status == 401:
            hdrs.append((b"www-authenticate", b'Bearer realm="orchlog"'))
        await send({"type": "http.response.start", "status": status, "headers": hdrs})
        await send({"type": "http.response.body", "body": body})


def principal_of(scope_holder: Any) -> Principal:
    """The principal the middleware attached (requests and websockets alike)."""
    principal: Principal = scope_holder.scope["state"]["principal"]
    return principal


def refuse_forbidden(exc: Forbidden) -> dict[str, Any]:
    return exc.to_dict()
