"""One ingest pipeline: the three ingest routes, the Claude Code hook and OTLP give the same answers
for the same limits (item count, body size, per-event quota), and a body a browser could send
cross-site without a preflight (no Content-Type, or a foreign Origin) is refused."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from helpers import Server, TokenServer, bearer

TOKENS = {name: f"olg_{name}_{secrets.token_urlsafe(24)}" for name in ("big", "small", "spare", "entities")}


def otlp(n: int) -> dict[str, Any]:
    records = [{"timeUnixNano": "1700000000000000000", "body": {"stringValue": f"r{i}"}} for i in range(n)]
    return {"resourceLogs": [{"resource": {"attributes": []}, "scopeLogs": [{"logRecords": records}]}]}


def hook(n: int) -> list[dict[str, Any]]:
    return [
        {"session_id": "s1", "hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": "ls"}}
        for _ in range(n)
    ]


def system(n: int) -> list[dict[str, Any]]:
    return [{"message": f"m{i}"} for i in range(n)]


# (route, body for n items): every route that stores events
ROUTES = {
    "/api/v1/system-logs": system,
    "/api/v1/events": lambda n: [{"kind": "system_log", **m} for m in system(n)],
    "/api/v1/hooks/claude-code": hook,
    "/v1/logs": otlp,
}


@pytest.fixture(scope="module")
def quota_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    seeded = ",".join(f"{name}:ingest+read:{secret}" for name, secret in TOKENS.items())
    # 10 events at once, refilled at one event per 100 s: no test here depends on how fast it runs
    env = {
        "ORCHLOG_TOKENS": seeded,
        "ORCHLOG_INGEST_RATE": "0.01",
        "ORCHLOG_INGEST_BURST": "10",
        "ORCHLOG_MAX_ITEMS": "500",
    }
    server = TokenServer(tmp_path_factory.mktemp("quota") / "orchlog.db", env=env).start()
    try:
        yield server
    finally:
        server.stop()


def post(server: Server, route: str, body: Any, token: str, **headers: str) -> httpx.Response:
    return httpx.post(
        server.url + route,
        content=orjson.dumps(body),
        headers={"Content-Type": "application/json", **bearer(token), **headers},
        timeout=30,
    )


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_more_items_than_max_items_is_413_on_every_route(quota_server: Server, route: str) -> None:
    r = post(quota_server, route, ROUTES[route](501), TOKENS["spare"])
    assert r.status_code == 413, r.text
    assert "501 items in one request; the limit is 500" in r.json()["error"]["message"]


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_a_request_larger_than_the_quota_allows_is_refused_whatever_its_size(quota_server: Server, route: str) -> None:
    """The quota is charged per event: a burst of 10 refuses a 400-event request (it used to cost one burst)."""
    r = post(quota_server, route, ROUTES[route](400), TOKENS["big"])
    assert r.status_code == 413, r.text
    assert "ingest quota" in r.json()["error"]["message"]
    listed = httpx.get(quota_server.url + "/api/v1/events", headers=bearer(TOKENS["big"]), params={"limit": 1000})
    assert listed.json()["items"] == []  # nothing was written


def test_the_quota_is_shared_by_every_route_and_answers_429(quota_server: Server) -> None:
    token = TOKENS["small"]
    assert post(quota_server, "/api/v1/system-logs", system(10), token).status_code == 201
    for route, body in ROUTES.items():
        r = post(quota_server, route, body(5), token)
        assert r.status_code == 429, (route, r.status_code, r.text)
        assert int(r.headers["Retry-After"]) >= 1


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("open") / "orchlog.db").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_a_body_without_content_type_is_415(open_server: Server, route: str) -> None:
    """What a foreign page can send cross-site without a preflight is never parsed as JSON."""
    r = httpx.post(open_server.url + route, content=orjson.dumps(ROUTES[route](1)), timeout=30)
    assert r.status_code == 415, r.text


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_a_foreign_origin_cannot_post_in_dev_mode(open_server: Server, route: str) -> None:
    body = orjson.dumps(ROUTES[route](1))
    for kind in ("application/json", "text/plain"):
        r = httpx.post(
            open_server.url + route,
            content=body,
            headers={"Content-Type": kind, "Origin": "https://evil.example"},
            timeout=30,
        )
        assert r.status_code == 403, r.text
    r = httpx.post(
        open_server.url + route,
        content=body,
        headers={"Content-Type": "application/json", "Origin": "http://localhost:5173"},
        timeout=30,
    )
    assert r.status_code in (200, 201), r.text


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/v1/events"), ("HEAD", "/api/v1/events"), ("GET", "/list_agents"), ("GET", "/api/v1/stream/sse")],
)
def test_dns_rebinding_hosts_are_refused_in_dev_mode(open_server: Server, method: str, path: str) -> None:
    """Without tokens only loopback Host names are served (a rebinding page arrives under its own)."""
    with httpx.Client(base_url=open_server.url, timeout=30) as c:
        with c.stream(method, path, headers={"Host": "attacker.example:8000"}) as r:
            assert r.status_code == 403
        with c.stream(method, path, headers={"Host": f"localhost:{open_server.port}"}) as r:
            assert r.status_code == 200
        # health and the dashboard's files stay open (load balancers probe them by IP)
        assert c.get("/healthz", headers={"Host": "10.0.0.7:8000"}).status_code == 200


def test_entity_writes_are_charged_to_the_same_quota(quota_server: Server) -> None:
    """Creates, updates and archives cost one event each (review F4): an ingest token whose bucket
    is empty cannot keep writing 50 KB system prompts through the entity routes."""
    headers = {"Content-Type": "application/json", **bearer(TOKENS["entities"])}
    with httpx.Client(base_url=quota_server.url, headers=headers, timeout=30) as c:
        codes = [
            c.post("/api/v1/orchestrator-agents", json={"system_prompt": "x" * 50_000}).status_code for _ in range(12)
        ]
    assert codes[:10] == [201] * 10, codes
    assert codes[10:] == [429, 429], codes
