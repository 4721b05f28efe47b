"""Running the handler of what the gate resolved: the route table's operations as ASGI apps.

The gate has already matched the request against the table (it must, to authorize it), so
handing the request to Starlette's router would match it a second time, trying every route's
regex in turn, and run one more middleware (the exception layer) on every request. Instead each
operation is wrapped once, at startup, the way Starlette's own ``Route`` and ``WebSocketRoute``
wrap an endpoint (``request_response`` / ``websocket_session``, with the app's exception
handlers), and the gate calls it with the path parameters it resolved. What a handler sees is
exactly what it would see behind the router; the router itself only serves the lifespan.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.routing import request_response, websocket_session
from starlette.types import ASGIApp, Receive, Scope, Send

from .table import Match, Table


class Dispatch:
    def __init__(self, table: Table, exception_handlers: Mapping[Any, Any]) -> None:
        self._apps: dict[int, ASGIApp] = {}
        for route in table:
            for op in route.operations:
                wrap = websocket_session if op.method == "WEBSOCKET" else request_response
                self._apps[id(op)] = wrap(op.endpoint)
        # as Starlette's ExceptionMiddleware hands them on; ``Exception`` (a crash) stays with the
        # outermost ServerErrorMiddleware, which answers 500 and lets the server log the traceback
        handlers = {key: fn for key, fn in exception_handlers.items() if key not in (500, Exception)}
        self._handlers: tuple[dict[Any, Any], dict[int, Any]] = (handlers, {})

    async def __call__(self, match: Match, scope: Scope, receive: Receive, send: Send) -> None:
        op = match.operation
        assert op is not None, "the gate dispatches resolved operations only"
        scope["path_params"] = match.params
        scope["endpoint"] = op.endpoint
        scope["starlette.exception_handlers"] = self._handlers
        await self._apps[id(op)](scope, receive, send)
