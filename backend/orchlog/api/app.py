"""create_app(): the Starlette app around the route table's gate, resources in the lifespan, one
error shape for everything.

Requests are routed by the gate (``api/gate.py``, which resolves them against the table once and
runs the handler through ``api/dispatch.py``); Starlette's own router has no routes and serves
only the lifespan.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ..config import Settings
from ..errors import OrchlogError
from ..origins import LOOPBACK_ORIGIN_REGEX
from ..runtime import Runtime
from .cors import CORS
from .gate import Gate
from .openapi import openapi_document
from .responses import JSON, error_response
from .routes import ROUTES
from .table import Table
from .wsdirect import CaptureWsProtocol

log = logging.getLogger("orchlog.api")


async def _orchlog_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OrchlogError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    body = {"error": {"code": codes.get(exc.status_code, "http_error"), "message": str(exc.detail)}}
    return JSON(body, status_code=exc.status_code, headers=dict(exc.headers or {}))


async def _client_gone(request: Request, exc: Exception) -> Response:
    # the client hung up mid-body: its error, not ours (nobody reads this reply)
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return JSON({"error": {"code": "client_disconnected", "message": "the client closed the connection"}}, 400)


async def _crash(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    body = {"error": {"code": "internal_error", "message": "internal error; the server log has the details"}}
    return JSON(body, status_code=500)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    OrchlogError: _orchlog_error,
    HTTPException: _http_error,
    ClientDisconnect: _client_gone,
    Exception: _crash,
}


def create_app(settings: Settings | None = None, runtime: Runtime | None = None, table: Table = ROUTES) -> Starlette:
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
        routes=[],
        lifespan=lifespan,
        middleware=[
            Middleware(CaptureWsProtocol),  # first: it must see uvicorn's own send (api/wsdirect.py)
            # outermost, so the gate's refusals carry CORS headers too (a page can then ask for a
            # token); it passes requests without an Origin straight through
            Middleware(
                CORS,
                allow_origins=sorted(rt.allowed_origins),
                allow_origin_regex=LOOPBACK_ORIGIN_REGEX,
                allow_methods=["*"],
                allow_headers=["*"],
                expose_headers=["Retry-After"],
            ),
            Middleware(Gate, runtime=rt, table=table, exception_handlers=EXCEPTION_HANDLERS),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.runtime = rt
    app.state.openapi = openapi_document(table)  # built once per app, not per request
    return app
