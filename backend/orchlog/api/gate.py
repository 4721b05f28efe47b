"""The gate: the one ASGI middleware every HTTP request and WebSocket passes.

In one pass it gives the request an id, resolves it against the route table (``api/routes.py``),
and decides, from that table alone, whether it may reach a handler:

1. CORS preflights never get here: the CORS layer outside the gate answers them the same for
   every path (they reveal nothing and carry no credentials);
2. with no tokens configured (dev mode), only loopback or configured hosts are served, so a page
   on another site cannot read the API through DNS rebinding;
3. browsers: a stream, or any request that changes state, with a foreign ``Origin`` is refused;
4. the route's declared scope: ``open`` routes need nothing; every other route, and every method or
   path that is not in the table, needs a valid token (fail closed: HEAD is its GET, a WebSocket
   is its own method, and nothing falls through to "no rule, so no check").

Then it runs the resolved operation's handler itself (``api/dispatch.py``: the table is matched
once, here, not again by a router), counts and times the request under its route's declared path
(unknown paths share one label, so junk requests cannot grow ``/metrics``) and writes the access
line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..auth import Principal
from ..closecodes import CloseCode
from ..errors import Forbidden, OrchlogError, Unauthorized
from ..logs import new_request_id, request_id, should_log_access
from ..origins import host_allowed, origin_allowed
from ..runtime import Runtime
from .dispatch import Dispatch
from .security import NOBODY, chosen_subprotocol, credentials
from .table import Match, Table

access_log = logging.getLogger("orchlog.access")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Refusal(Exception):
    """Why the gate will not let a request through: HTTP status, WebSocket close code, body."""

    def __init__(self, status: int, close_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.close_code, self.code, self.message = status, close_code, code, message

    @classmethod
    def of(cls, exc: OrchlogError) -> Refusal:
        status = 401 if isinstance(exc, Unauthorized) else 403 if isinstance(exc, Forbidden) else exc.status
        return cls(status, CloseCode.for_status(status), exc.code, exc.message)


class Gate:
    def __init__(self, app: ASGIApp, runtime: Runtime, table: Table, exception_handlers: Mapping[Any, Any]) -> None:
        self.app = app  # only the lifespan goes on to Starlette's router
        self.runtime = runtime
        self.table = table
        self.dispatch = Dispatch(table, exception_handlers)
        # the access-log policy, applied before a record is made: a record the filter then drops
        # cost 5 us per request (LogRecord, caller lookup) on every request of a quiet log
        self._log_all = runtime.settings.access_log
        self._slow_s = runtime.settings.slow_request_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            match = self.table.resolve("WEBSOCKET", route_path(scope))
            try:
                scope.setdefault("state", {})["principal"] = await self.authorize(scope, match)
                if match.operation is None:
                    raise Refusal(404, CloseCode.NOT_FOUND, "not_found", "no such WebSocket route")
            except Refusal as refusal:
                # accept-then-close gives the client a reason it can read (a 403 handshake does not)
                await send({"type": "websocket.accept", "subprotocol": chosen_subprotocol(scope)})
                await send({"type": "websocket.close", "code": refusal.close_code, "reason": refusal.message[:120]})
                return
            await self.dispatch(match, scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def authorize(self, scope: Scope, match: Match) -> Principal:
        """The principal this request runs as, or a Refusal. Decided by the route table only."""
        rt = self.runtime
        if rt.keyring.stale:
            await rt.refresh_tokens()
        headers = _headers(scope)
        op = match.operation
        method = "WEBSOCKET" if scope["type"] == "websocket" else scope["method"]
        token, ticket = credentials(scope, headers)
        ticketed: Principal | OrchlogError | None = None
        if ticket and token is None and op is not None and op.stream:
            # redeemed before any other check: a ticket is spent on its first presentation, refused or not
            try:
                ticketed = rt.tickets.redeem(ticket)
            except OrchlogError as exc:
                ticketed = exc
        if op is not None and op.scope == "open":
            return NOBODY
        if not rt.keyring.enabled and not host_allowed(headers.get("host"), rt.allowed_hosts):
            raise Refusal(
                403,
                CloseCode.POLICY,
                "forbidden_host",
                f"Host {headers.get('host')!r} is not allowed while the server runs without tokens; "
                "use localhost, or add the site to ORCHLOG_ALLOWED_ORIGINS, or create a token",
            )
        if (method in STATE_CHANGING or (op is not None and op.stream)) and not origin_allowed(
            headers.get("origin"), headers.get("host"), rt.allowed_origins
        ):
            raise Refusal(403, CloseCode.POLICY, "forbidden_origin", "origin not allowed")
        try:
            if isinstance(ticketed, OrchlogError):
                raise ticketed
            if ticketed is not None and not rt.keyring.allows(ticketed):
                # issued before its token was revoked, or while the server had no tokens yet
                raise Unauthorized("this stream ticket's token is no longer valid; request a new ticket")
            principal = ticketed if ticketed is not None else rt.keyring.authenticate(token)
            if op is None:
                return principal  # any valid token may learn that a path or method does not exist (404/405)
            principal.require(op.scope)
            if op.unbound_only and principal.bound and not principal.has("admin"):
                raise Forbidden("this token is bound to agents and may not read server-wide data")
        except OrchlogError as exc:
            raise Refusal.of(exc) from None
        return principal

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 500
        started = time.perf_counter()
        offered = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-request-id"), None)
        rid = new_request_id(offered)
        token = request_id.set(rid)
        rid_header = (b"x-request-id", rid.encode())

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), rid_header]}
            await send(message)

        match = self.table.resolve(scope["method"], route_path(scope))
        try:
            try:
                scope.setdefault("state", {})["principal"] = await self.authorize(scope, match)
                if match.operation is None:
                    # answered here, not by the router: what reaches a handler is exactly what the
                    # table resolved (the router's own first match could differ from the table's)
                    raise _not_routed(match, scope["method"])
            except Refusal as refusal:
                await _refuse_http(send_wrapper, refusal)
                return
            await self.dispatch(match, scope, receive, send_wrapper)
        finally:
            took = time.perf_counter() - started
            self.runtime.metrics.observe_request(match.label, scope["method"], status, took)
            if should_log_access(status, took, log_all=self._log_all, slow_s=self._slow_s):
                _access_line(scope, status, took)
            request_id.reset(token)


def route_path(scope: Scope) -> str:
    """The path the routes are declared for: without the ``root_path`` a proxy or a mount put in
    front (the router matches the same; the gate must look at what the router will route)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] or "/" if root and path.startswith(root) else path


def _not_routed(match: Match, method: str) -> Refusal:
    if match.route is None:
        return Refusal(404, CloseCode.NOT_FOUND, "not_found", "no such route; see /openapi.json")
    if all(op.method == "WEBSOCKET" for op in match.route.operations):
        return Refusal(
            426, CloseCode.NOT_FOUND, "upgrade_required", "a WebSocket route: connect with Upgrade: websocket"
        )
    allowed = ", ".join(sorted(op.method for op in match.route.operations if op.method != "WEBSOCKET"))
    return Refusal(405, CloseCode.NOT_FOUND, "method_not_allowed", f"{method} is not allowed here: {allowed}")


def _headers(scope: Scope) -> dict[str, str]:
    """Header names lower-cased; a repeated header keeps its first value (as Starlette reads it)."""
    out: dict[str, str] = {}
    for k, v in scope.get("headers", []):
        out.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
    return out


async def _refuse_http(send: Send, refusal: Refusal) -> None:
    body = orjson.dumps({"error": {"code": refusal.code, "message": refusal.message}})
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if refusal.status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="orchlog"'))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _access_line(scope: Scope, status: int, took: float) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
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
