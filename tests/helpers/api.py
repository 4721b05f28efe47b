"""Talking to an orchlog API (in-process or a real server, the same client code): entities,
events, history, the error shape."""

from __future__ import annotations

from typing import Any

import httpx


async def make_agents(client: httpx.AsyncClient, n: int = 2, prefix: str = "agent") -> tuple[str, list[str]]:
    """An orchestrator and n agents, created through the API."""
    r = await client.post("/api/v1/orchestrator-agents", json={"system_prompt": "test", "status": "idle"})
    assert r.status_code == 201, r.text
    orch = r.json()["id"]
    agents = []
    for i in range(n):
        r = await client.post(
            "/api/v1/agents",
            json={"orchestrator_agent_id": orch, "name": f"{prefix}-{i}", "model": "test-model"},
        )
        assert r.status_code == 201, r.text
        agents.append(r.json()["id"])
    return orch, agents


def make_agents_sync(client: httpx.Client, n: int = 2, prefix: str = "agent") -> tuple[str, list[str]]:
    """`make_agents` for synchronous (module-scoped) setup code."""
    r = client.post("/api/v1/orchestrator-agents", json={"system_prompt": "test", "status": "idle"})
    assert r.status_code == 201, r.text
    orch = r.json()["id"]
    agents = []
    for i in range(n):
        r = client.post(
            "/api/v1/agents",
            json={"orchestrator_agent_id": orch, "name": f"{prefix}-{i}", "model": "test-model"},
        )
        assert r.status_code == 201, r.text
        agents.append(r.json()["id"])
    return orch, agents


def agent_event(agent_id: str, text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {
        "agent_id": agent_id,
        "event_category": "hook",
        "event_type": "PreToolUse",
        "content": text,
        **extra,
    }


async def history(client: httpx.AsyncClient, params: dict[str, Any] | None = None, after: int = 0) -> list[dict]:
    """Every matching event after `after`, following next_after."""
    out: list[dict] = []
    while True:
        r = await client.get("/api/v1/events", params={**(params or {}), "after": after, "limit": 1000})
        assert r.status_code == 200, r.text
        body = r.json()
        out.extend(body["items"])
        if not body["has_more"]:
            return out
        after = body["next_after"]


async def system_logs(client: httpx.AsyncClient, after: int = 0) -> list[dict[str, Any]]:
    """The rows of every system log after `after`."""
    return [e["data"] for e in await history(client, after=after) if e["kind"] == "system_log"]


async def head_seq(client: httpx.AsyncClient) -> int:
    """The log's head seq as history reports it."""
    r = await client.get("/api/v1/events", params={"limit": 1})
    assert r.status_code == 200, r.text
    return int(r.json()["head_seq"])


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the one JSON error shape with this status and code; returns `error`."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    assert "Traceback" not in response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"], body
    return error


def bearer(token: str | None) -> dict[str, str]:
    """The Authorization header for `token` (none for None)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def is_number(value: Any) -> bool:
    """A JSON number (not a bool, which Python counts as an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)
