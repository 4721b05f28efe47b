"""Route table invariants: every route is either explicitly open or needs a scope, the open ones
are exactly the public set, and the OpenAPI document lists exactly the served HTTP routes."""

from __future__ import annotations

import re

import pytest
from starlette.routing import Route, WebSocketRoute

from orchlog.api.app import ROUTES
from orchlog.api.openapi import openapi_document
from orchlog.api.security import required_scope

PUBLIC = {"/", "/healthz", "/readyz", "/health", "/openapi.json", "/asyncapi.json", "/{name:str}"}


def methods(route: Route | WebSocketRoute) -> list[str]:
    if isinstance(route, WebSocketRoute):
        return ["WS"]
    return sorted((route.methods or {"GET"}) - {"HEAD"})


def concrete(path: str) -> str:
    """A path this route serves (parameters filled), to ask the scope rules about."""
    if path == "/{name:str}":
        return "/app.js"
    return re.sub(r"\{[^}]+\}", "0b4e3f2a-0000-4000-8000-000000000000", path)


def test_every_route_needs_a_scope_unless_public() -> None:
    for route in ROUTES:
        assert isinstance(route, Route | WebSocketRoute)
        for method in methods(route):
            scope = required_scope(method, concrete(route.path))
            if route.path in PUBLIC:
                assert scope is None, (method, route.path, scope)
            else:
                assert scope in ("read", "ingest", "admin"), f"{method} {route.path} needs no scope"


@pytest.mark.xfail(
    strict=True,
    reason="the scope rules fall through to open for an undeclared POST/PATCH/DELETE under /api/v1 (the router "
    "then 404s); the route-table work makes anything undeclared refused; drop this mark then",
)
def test_unknown_paths_under_the_api_need_a_scope() -> None:
    """Fail closed: a path nobody declared under /api/v1 is not open."""
    assert required_scope("GET", "/api/v1/not-a-route") == "read"
    assert required_scope("POST", "/api/v1/not-a-route") is not None


def test_openapi_lists_exactly_the_served_http_routes() -> None:
    served = {re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", r.path) for r in ROUTES if isinstance(r, Route)}
    documented = set(openapi_document()["paths"])
    assert served - documented == set(), "served but not documented"
    streams = {"/api/v1/stream", "/ws"}  # WebSockets are in /asyncapi.json
    assert documented - served - streams == set(), "documented but not served"
