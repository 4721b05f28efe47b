"""The route table is the one declaration of every route: these invariants keep the things derived
from it (the dispatcher, authorization, OpenAPI, metric labels) from drifting apart."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from orchlog.api.dispatch import Dispatch
from orchlog.api.openapi import openapi_document
from orchlog.api.routes import ROUTES
from orchlog.api.table import SCOPES, UNMATCHED, Operation, Reply, Route, Table

DOC = openapi_document(ROUTES)
VERBS = {"get", "post", "patch", "delete", "put", "head", "options"}


def _documented() -> set[tuple[str, str]]:
    return {(path, verb.upper()) for path, item in DOC["paths"].items() for verb in item if verb in VERBS}


def _declared() -> set[tuple[str, str]]:
    return {(r.path, "GET" if op.method == "WEBSOCKET" else op.method) for r in ROUTES for op in r.operations}


def test_openapi_documents_exactly_the_declared_operations() -> None:
    assert _documented() == _declared()
    validate(DOC)


def test_every_operation_has_a_scope_and_a_unique_operation_id() -> None:
    ids = [op.operation_id for r in ROUTES for op in r.operations]
    assert len(ids) == len(set(ids))
    for route in ROUTES:
        for op in route.operations:
            assert op.scope in SCOPES, (route.path, op.method)
            documented = DOC["paths"][route.path]["get" if op.method == "WEBSOCKET" else op.method.lower()]
            assert documented["operationId"] == op.operation_id
            assert documented["x-orchlog-scope"] == op.scope


def test_every_declared_operation_is_dispatched_and_nothing_else() -> None:
    """The gate runs handlers itself; what it can run is exactly the table's operations."""
    dispatch = Dispatch(ROUTES, {})
    assert set(dispatch._apps) == {id(op) for r in ROUTES for op in r.operations}


def test_path_parameters_come_from_the_matched_route() -> None:
    match = ROUTES.resolve("GET", "/api/v1/agents/0b1c1d6e-1111-4111-8111-111111111111")
    assert match.params == {"id": "0b1c1d6e-1111-4111-8111-111111111111"}
    assert ROUTES.resolve("GET", "/api/v1/events").params == {}
    assert ROUTES.resolve("GET", "/api/v1/nope").params == {}


def test_parameters_are_typed_with_their_bounds() -> None:
    history = DOC["paths"]["/api/v1/events"]["get"]["parameters"]
    by_name = {p["name"]: p["schema"] for p in history}
    assert by_name["after"] == {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
    assert by_name["limit"] == {"type": "integer", "minimum": 1, "maximum": 1000}
    stream = {p["name"]: p["schema"] for p in DOC["paths"]["/api/v1/stream/sse"]["get"]["parameters"]}
    assert stream["tail"]["maximum"] == 100_000


def test_a_route_without_a_known_scope_or_with_a_method_twice_does_not_build() -> None:
    async def handler() -> None: ...

    bad_scope = Operation("GET", handler, "everyone", "x", "x", Reply(200, "x"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scope"):
        Route("/x", (bad_scope,))
    op = Operation("GET", handler, "read", "x", "x", Reply(200, "x"))
    with pytest.raises(ValueError, match="twice"):
        Route("/x", (op, op))
    with pytest.raises(ValueError, match="operationId"):
        Table([Route("/a", (op,)), Route("/b", (op,))])


@pytest.mark.parametrize(
    ("method", "path", "route", "op_method"),
    [
        ("GET", "/api/v1/events", "/api/v1/events", "GET"),
        ("HEAD", "/api/v1/events", "/api/v1/events", "GET"),  # HEAD is authorized as its GET
        ("POST", "/api/v1/events", "/api/v1/events", "POST"),
        ("PUT", "/api/v1/events", "/api/v1/events", None),  # a method the route lacks: no operation
        ("OPTIONS", "/metrics", "/metrics", None),
        ("HEAD", "/api/v1/agents/0b1c1d6e-1111-4111-8111-111111111111", "/api/v1/agents/{id}", "GET"),
        ("WEBSOCKET", "/api/v1/stream", "/api/v1/stream", "WEBSOCKET"),
        ("GET", "/api/v1/stream", "/api/v1/stream", None),  # plain HTTP on a WebSocket route
        ("GET", "/app.js", "/{name}", "GET"),
        ("GET", "/api/v1/nope", None, None),
        ("GET", "/api/v1/events/", None, None),
    ],
)
def test_resolve(method: str, path: str, route: str | None, op_method: str | None) -> None:
    match = ROUTES.resolve(method, path)
    assert (match.route.path if match.route else None) == route
    assert (match.operation.method if match.operation else None) == op_method
    assert match.label == (route or UNMATCHED)


def test_open_routes_are_only_health_docs_and_dashboard_files() -> None:
    """Widening what needs no token is a decision: this list changes only on purpose."""
    open_ops = {(r.path, op.method) for r in ROUTES for op in r.operations if op.scope == "open"}
    assert open_ops == {
        ("/", "GET"),
        ("/closecodes.js", "GET"),
        ("/healthz", "GET"),
        ("/readyz", "GET"),
        ("/health", "GET"),
        ("/openapi.json", "GET"),
        ("/asyncapi.json", "GET"),
        ("/docs", "GET"),
        ("/docs/{file}", "GET"),
        ("/{name}", "GET"),
    }


def test_close_codes_module_for_the_dashboard_is_generated_from_the_enum() -> None:
    from orchlog.closecodes import CloseCode, javascript_module

    js = javascript_module()
    for code in CloseCode:
        assert f"  {code.name}: {code.value}," in js
    assert CloseCode.for_status(401) == 4401 and CloseCode.for_status(403) == 4403
    assert CloseCode.for_status(500) == CloseCode.INTERNAL
