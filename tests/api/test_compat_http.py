"""orchestrator_3_stream compatibility, field by field (reference §4-5, DESIGN.md §4): the HTTP
endpoints, in-process (the /ws half is tests/e2e/stream/test_compat.py).

Its Vue frontend (served from another local port) calls ``/get_orchestrator``, opens ``/ws``, then
``/list_agents``, ``/load_chat`` and ``/get_events``; every shape it reads must be there; what orchlog
adds (``seq``) must not get in the way.
"""

from __future__ import annotations

import os
import random

import httpx
import pytest

from helpers import is_number, make_agents
from helpers.stream import agent_item, matching, mixed, post, system_item

FRONTEND = "http://127.0.0.1:5175"
AGENT_LOG_KEYS = {
    "id",
    "agent_id",
    "session_id",
    "task_slug",
    "adw_id",
    "adw_step",
    "entry_index",
    "event_category",
    "event_type",
    "content",
    "payload",
    "summary",
    "timestamp",
}
SYSTEM_LOG_KEYS = {"id", "file_path", "adw_id", "level", "message", "summary", "metadata", "timestamp"}


async def test_get_orchestrator_404_before_any(client: httpx.AsyncClient) -> None:
    """Before any orchestrator exists: a 404 with a JSON body (the frontend shows the error)."""
    r = await client.get("/get_orchestrator")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")
    assert "error" in r.json() or "detail" in r.json()


async def test_get_orchestrator(client: httpx.AsyncClient) -> None:
    """GET /get_orchestrator: status success and the orchestrator row with numeric tokens and cost."""
    orch, _ = await make_agents(client, 0)
    await client.patch(f"/api/v1/orchestrator-agents/{orch}", json={"add_cost": "0.125", "add_input_tokens": 7})
    r = await client.get("/get_orchestrator")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success"
    o = body["orchestrator"]
    assert o["id"] == orch
    for key in (
        "session_id",
        "status",
        "working_dir",
        "input_tokens",
        "output_tokens",
        "total_cost",
        "metadata",
    ):
        assert key in o, key
    assert o["status"] == "idle"
    assert o["input_tokens"] == 7 and is_number(o["output_tokens"])
    assert is_number(o["total_cost"]) and o["total_cost"] == pytest.approx(0.125)
    assert isinstance(o["metadata"], dict)
    for key in ("slash_commands", "agent_templates", "orchestrator_tools", "adw_workflows"):
        assert isinstance(body.get(key, []), list), key


async def test_get_headers(mclient: httpx.AsyncClient) -> None:
    """GET /get_headers: status success and the server's working directory."""
    body = (await mclient.get("/get_headers")).json()
    assert body["status"] == "success"
    assert isinstance(body["cwd"], str) and os.path.isabs(body["cwd"])


async def test_list_agents_with_log_counts(client: httpx.AsyncClient) -> None:
    """GET /list_agents: non-archived agents, newest first, each with its log_count."""
    _, agents = await make_agents(client, 4)
    await post(client, [agent_item(agents[0], "x") for _ in range(3)] + [agent_item(agents[1], "y")])
    await post(client, [system_item("not an agent log")])
    assert (await client.delete(f"/api/v1/agents/{agents[3]}")).status_code == 200
    body = (await client.get("/list_agents")).json()
    assert body["status"] == "success"
    listed = body["agents"]
    assert [a["id"] for a in listed] == [agents[2], agents[1], agents[0]], "newest first, deleted left out"
    counts = {a["id"]: a["log_count"] for a in listed}
    assert counts == {agents[0]: 3, agents[1]: 1, agents[2]: 0}
    for a in listed:
        for key in ("name", "model", "status", "input_tokens", "output_tokens", "total_cost"):
            assert key in a, key
        assert is_number(a["total_cost"])


async def test_get_events_shapes_and_event_types(client: httpx.AsyncClient) -> None:
    """GET /get_events: oldest first, `sourceType` on each, the original's row keys, event_types CSV."""
    _, agents = await make_agents(client, 2)
    await post(client, mixed(agents, 20, random.Random(30)))
    everything = await matching(client)

    body = (await client.get("/get_events")).json()
    assert body["status"] == "success"
    events = body["events"]
    assert body["count"] == len(events) == 20
    assert [e["id"] for e in events] == [i["data"]["id"] for i in everything], "oldest first"
    for e, item in zip(events, everything, strict=True):
        assert e["sourceType"] == item["kind"]
        keys = AGENT_LOG_KEYS if item["kind"] == "agent_log" else SYSTEM_LOG_KEYS
        assert keys <= set(e), keys - set(e)
        assert isinstance(e.get("payload", e.get("metadata")), dict)

    agent_only = (await client.get("/get_events", params={"event_types": "agent_logs"})).json()["events"]
    assert {e["sourceType"] for e in agent_only} == {"agent_log"}
    assert len(agent_only) == sum(i["kind"] == "agent_log" for i in everything)
    system_only = (await client.get("/get_events", params={"event_types": "system_logs"})).json()["events"]
    assert {e["sourceType"] for e in system_only} == {"system_log"}
    assert len(system_only) == sum(i["kind"] == "system_log" for i in everything)
    both = (await client.get("/get_events", params={"event_types": "agent_logs,system_logs"})).json()["events"]
    assert [e["id"] for e in both] == [e["id"] for e in events]
    chat = (await client.get("/get_events", params={"event_types": "orchestrator_chat"})).json()
    assert chat["status"] == "success" and chat["events"] == []

    by_agent = (await client.get("/get_events", params={"agent_id": agents[1]})).json()["events"]
    assert [e["id"] for e in by_agent] == [
        i["data"]["id"] for i in everything if i["data"].get("agent_id") == agents[1]
    ]
    by_slug = (await client.get("/get_events", params={"task_slug": "t1"})).json()["events"]
    assert [e["id"] for e in by_slug] == [i["data"]["id"] for i in everything if i["data"].get("task_slug") == "t1"]


async def test_get_events_paging_covers_every_event_once(client: httpx.AsyncClient) -> None:
    """limit=5 at offsets 0/5/10 over 12 events (both tables): every event exactly once, each page
    oldest first, offset 0 the newest page (the original pages per table and overlaps)."""
    _, agents = await make_agents(client, 1)
    items = [agent_item(agents[0], f"a{i}") if i % 3 else system_item(f"s{i}") for i in range(12)]
    await post(client, items)
    everything = [i["data"]["id"] for i in await matching(client)]
    pages = []
    for offset in (0, 5, 10):
        body = (await client.get("/get_events", params={"limit": 5, "offset": offset})).json()
        pages.append([e["id"] for e in body["events"]])
    assert [len(p) for p in pages] == [5, 5, 2]
    assert pages[0] == everything[-5:]
    seen = [event_id for page in pages for event_id in page]
    assert sorted(seen, key=everything.index) == everything
    assert len(set(seen)) == 12
    for page in pages:
        assert page == sorted(page, key=everything.index), "each page is oldest first"


async def test_get_events_default_limit_is_50_newest(client: httpx.AsyncClient) -> None:
    """Without limit: the 50 newest events (the original's default), oldest first."""
    await post(client, [system_item(f"m{i}") for i in range(60)])
    body = (await client.get("/get_events")).json()
    assert [e["message"] for e in body["events"]] == [f"m{i}" for i in range(10, 60)]


async def test_get_events_bad_event_type(mclient: httpx.AsyncClient) -> None:
    """An unknown event_types name is a 400 JSON error naming the parameter (not a 500)."""
    r = await mclient.get("/get_events", params={"event_types": "bogus"})
    assert r.status_code == 400
    assert "event_types" in r.json()["error"]["message"]


async def test_load_chat_is_empty(mclient: httpx.AsyncClient) -> None:
    """POST /load_chat: orchlog keeps no chat, so the original's shape with nothing in it."""
    r = await mclient.post("/load_chat", json={"orchestrator_agent_id": "x", "limit": 2000})
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "success", "messages": [], "turn_count": 0}


@pytest.mark.parametrize("path", ["/get_events", "/list_agents", "/get_orchestrator", "/health"])
async def test_cors_preflight_from_the_frontend_port(mclient: httpx.AsyncClient, path: str) -> None:
    """The frontend's origin (another local port) passes CORS preflight and gets allow-origin."""
    r = await mclient.options(
        path,
        headers={
            "Origin": FRONTEND,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert r.status_code in (200, 204), r.text
    assert r.headers.get("access-control-allow-origin") in (FRONTEND, "*")
    assert (
        "GET" in r.headers.get("access-control-allow-methods", "")
        or r.headers.get("access-control-allow-methods") == "*"
    )
    r = await mclient.get("/health", headers={"Origin": FRONTEND})
    assert r.headers.get("access-control-allow-origin") in (FRONTEND, "*")


async def test_cors_post_preflight_for_load_chat(mclient: httpx.AsyncClient) -> None:
    """POST /load_chat with a JSON body is preflighted; it must be allowed too."""
    r = await mclient.options(
        "/load_chat",
        headers={
            "Origin": FRONTEND,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert r.status_code in (200, 204), r.text
    assert r.headers.get("access-control-allow-origin") in (FRONTEND, "*")


@pytest.mark.parametrize("origin", [None, FRONTEND])
async def test_every_answer_varies_on_origin(mclient: httpx.AsyncClient, origin: str | None) -> None:
    """With or without an Origin (agents send none), a cache must not reuse one origin's answer
    for another: the fast path for requests without Origin keeps Starlette's Vary header."""
    r = await mclient.get("/health", headers={"Origin": origin} if origin else {})
    assert r.status_code == 200
    assert "Origin" in r.headers.get("vary", "")
    assert ("access-control-allow-origin" in r.headers) == (origin is not None)
