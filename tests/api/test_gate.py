"""The gate, attacked through every route and method the table declares (and some it does not).

The matrix is generated from ``orchlog.api.routes.ROUTES``, so a route added there is covered here
without anybody remembering to list it. The real app (in-process) with tokens in its database
serves it; the WebSocket handshakes are in tests/e2e/test_gate_sockets.py.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from helpers import AppServer, Gated, bearer, gated_server
from orchlog.api.routes import ROUTES
from orchlog.api.table import Route

METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
UNKNOWN_PATHS = ("/api/v1/nope", "/api/v1/events/x/y", "/v2/logs", "/a/b/c", "/api/v1/admin/tokens")
BAD = "olg_" + "x" * 43


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gated[AppServer]]:
    with gated_server(AppServer, tmp_path_factory.mktemp("gate")) as each:
        yield each


def concrete(route: Route) -> str:
    """The route's path with its parameters filled in (a random id; a dashboard file name)."""
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: "app.js" if m.group(1) == "name" else str(uuid.uuid4()), route.path)


def cases() -> list[tuple[str, str, str]]:
    out = []
    for route in ROUTES:
        for method in METHODS:
            op = route.operation(method)
            scope = op.scope if op is not None else "unlisted"
            out.append((method, route.path, scope))
    return out


@pytest.mark.parametrize(("method", "template", "scope"), cases())
def test_every_method_of_every_route_needs_a_token_unless_declared_open(
    gated: Gated[AppServer], method: str, template: str, scope: str
) -> None:
    route = next(r for r in ROUTES if r.path == template)
    path = concrete(route)
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None

    def status(c: httpx.Client, token: str | None) -> tuple[int, int]:
        # streamed: only the status line and headers are read (an SSE answer never ends)
        headers = {**bearer(token), "Content-Type": "application/json"}
        with c.stream(method, path, headers=headers, content=body) as r:
            return r.status_code, int(r.headers.get("content-length", "0"))

    with gated.server.sync_client() as c:
        for creds in (None, BAD):
            code, length = status(c, creds)
            if scope == "open":
                assert code != 401, (method, path, code)
            else:
                assert code == 401, (method, path, creds, code)
                assert length < 200  # the same small error body: nothing about the route's data leaks
        if scope in ("read", "ingest"):
            other = "ingest" if scope == "read" else "read"
            assert status(c, gated.tokens[other])[0] == 403, (method, path, other)
        if scope != "open":
            assert status(c, gated.tokens["admin"])[0] not in (401, 403), (method, path)


@pytest.mark.parametrize("path", UNKNOWN_PATHS)
@pytest.mark.parametrize("method", METHODS)
def test_unknown_paths_are_refused_without_a_token(gated: Gated[AppServer], method: str, path: str) -> None:
    with gated.server.sync_client() as c:
        assert c.request(method, path).status_code == 401
        assert c.request(method, path, headers=bearer(BAD)).status_code == 401
        assert c.request(method, path, headers=bearer(gated.tokens["read"])).status_code in (404, 405)


def _series(text: str) -> set[str]:
    return {line.split(" ")[0] for line in text.splitlines() if line.startswith("orchlog_http_request")}


def test_unknown_paths_do_not_grow_the_metric_series(gated: Gated[AppServer]) -> None:
    admin = bearer(gated.tokens["admin"])
    with gated.server.sync_client(headers=admin) as c:
        for i in range(5):  # every label an unknown path can make (method x status) exists now
            c.get(f"/api/v1/warmup-{i}")
            c.get(f"/warm/{i}", headers={"Authorization": ""})
        before = _series(c.get("/metrics").text)
        for i in range(200):
            c.get(f"/api/v1/junk-{i}")
            c.get(f"/junk/{i}/x")
            c.get(f"/api/v1/agents/{uuid.uuid4()}/x", headers={"Authorization": ""})
        after = _series(c.get("/metrics").text)
    grown = after - before
    assert all('route="unmatched"' in s or "/metrics" in s for s in grown), sorted(grown)[:5]
    assert len(grown) <= 4, sorted(grown)
