"""How requests present credentials, and which hosts and origins a browser may use (the gate in
``api/gate.py`` applies them; the scopes come from the route table in ``api/routes.py``).

How clients present a token (docs/protocol.md#authentication):

- ``Authorization: Bearer <token>`` on HTTP and on the WebSocket handshake (CLI, client);
- browsers, which cannot set headers on WebSocket/EventSource: the WebSocket subprotocol
  ``bearer.<token>`` (offer ``orchlog.v1`` too and the server answers with that one, so the token
  is not echoed), or a single-use ticket from ``POST /api/v1/stream/ticket`` as ``?ticket=``.

Which hosts and origins a browser may use is decided in ``orchlog.origins``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from starlette.types import Scope

from ..auth import Principal

SUBPROTOCOL = "orchlog.v1"
NOBODY = Principal(name="anonymous", scopes=frozenset())
BEARER_PREFIX = "bearer."


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


def principal_of(scope_holder: Any) -> Principal:
    """The principal the middleware attached (requests and websockets alike)."""
    principal: Principal = scope_holder.scope["state"]["principal"]
    return principal
