"""The API descriptions: OpenAPI 3.1 validated by a real validator and covering every route;
AsyncAPI for the stream frames; both served without a token."""

from __future__ import annotations

import re

import httpx
from openapi_spec_validator import validate

from helpers import make_agents


async def test_openapi_is_valid_and_lists_every_route(client: httpx.AsyncClient) -> None:
    from orchlog.api.app import ROUTES

    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    documented = set(doc["paths"])
    served = {re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", route.path) for route in ROUTES}
    assert served <= documented, f"routes missing from /openapi.json: {sorted(served - documented)}"
    for name in ("AgentLogIn", "SystemLogIn", "EventIn", "HistoryPage", "IngestReply", "Error"):
        assert name in doc["components"]["schemas"]


async def test_openapi_schemas_describe_real_replies(client: httpx.AsyncClient) -> None:
    """A real history page validates against the HistoryPage schema the document publishes
    (the document is generated from the same models, so it cannot drift)."""
    from orchlog.api.openapi import HistoryPage, IngestReply

    _orch, agents = await make_agents(client, 1)
    r = await client.post(
        "/api/v1/events",
        json=[
            {"kind": "agent_log", "agent_id": agents[0], "event_category": "hook", "event_type": "x"},
            {"kind": "system_log", "message": "m"},
        ],
    )
    IngestReply.model_validate(r.json())
    page = await client.get("/api/v1/events", params={"after": 0})
    HistoryPage.model_validate(page.json())


async def test_asyncapi_describes_every_frame(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/asyncapi.json")).json()
    assert doc["asyncapi"].startswith("3.")
    names = set(doc["channels"]["stream"]["messages"])
    assert {
        "HelloFrame",
        "EventFrame",
        "EventsFrame",
        "LiveFrame",
        "ResetFrame",
        "HeartbeatFrame",
        "AgentFrame",
    } <= names
    for name in names:
        assert name in doc["components"]["schemas"]


async def test_interactive_docs_are_served_locally(client: httpx.AsyncClient) -> None:
    """/docs is Swagger UI's standard bundle from the package itself (no CDN), open like the document."""
    page = await client.get("/docs")
    assert page.status_code == 200 and 'src="/docs/swagger-ui-bundle.js"' in page.text
    assert "http" not in page.text.split("<body>")[1].replace("/openapi.json", "")  # nothing fetched elsewhere
    for name, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "css")):
        r = await client.get(f"/docs/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"] and len(r.content) > 10_000
    assert (await client.get("/docs/LICENSE")).status_code == 404  # only the two files
