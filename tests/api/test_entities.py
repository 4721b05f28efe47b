"""CRUD-lite for orchestrator agents, agents and prompts (issue 2, scope 5), over one shared server."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import httpx
import pytest

from helpers import agent_event, assert_error, history

TS_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
ORCH_FIELDS = {
    "id", "session_id", "system_prompt", "status", "working_dir", "input_tokens", "output_tokens",
    "total_cost", "archived", "metadata", "created_at", "updated_at",
}  # fmt: skip
AGENT_FIELDS = {
    "id", "orchestrator_agent_id", "name", "model", "system_prompt", "working_dir", "git_worktree",
    "status", "session_id", "adw_id", "adw_step", "input_tokens", "output_tokens", "total_cost",
    "archived", "metadata", "created_at", "updated_at",
}  # fmt: skip
PROMPT_FIELDS = {"id", "agent_id", "task_slug", "author", "prompt_text", "summary", "timestamp", "session_id"}


async def create(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(path, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def new_orch(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    return await create(client, "/api/v1/orchestrator-agents", {"system_prompt": "orch", **fields})


async def new_agent(client: httpx.AsyncClient, orch: str, name: str | None = None, **fields: Any) -> dict[str, Any]:
    body = {
        "orchestrator_agent_id": orch,
        "name": name or f"a-{uuid.uuid4().hex[:8]}",
        "model": "m",
        **fields,
    }
    return await create(client, "/api/v1/agents", body)


async def get(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    r = await client.get(path)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def list_ids(client: httpx.AsyncClient, path: str, **params: Any) -> list[str]:
    r = await client.get(path, params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == len(body["items"])
    return [row["id"] for row in body["items"]]


# ---------------------------------------------------------------- orchestrator agents


async def test_orchestrator_create_fills_defaults_and_get_returns_it(mclient: httpx.AsyncClient) -> None:
    """POST {} → 201 with every column: new lower-case id, zero tokens and cost, not archived,
    metadata {}, created_at = updated_at in the one time format; GET returns the same row."""
    row = await create(mclient, "/api/v1/orchestrator-agents", {})
    assert set(row) == ORCH_FIELDS
    assert row["id"] == str(uuid.UUID(row["id"]))
    assert (row["input_tokens"], row["output_tokens"], row["total_cost"]) == (0, 0, 0)
    assert row["archived"] is False and row["metadata"] == {} and row["status"] is None
    assert TS_FORMAT.match(row["created_at"]) and row["created_at"] == row["updated_at"]
    assert await get(mclient, f"/api/v1/orchestrator-agents/{row['id']}") == row


async def test_orchestrator_create_with_fields(mclient: httpx.AsyncClient) -> None:
    """Given fields are stored; an upper-case id comes back canonical and GET accepts either case."""
    ident = uuid.uuid4()
    body = {
        "id": str(ident).upper(),
        "session_id": f"sess-{ident.hex[:6]}",
        "system_prompt": "you orchestrate",
        "status": "executing",
        "working_dir": "/tmp/w",
        "input_tokens": 10,
        "output_tokens": 20,
        "total_cost": 1.25,
        "metadata": {"team": "blue", "n": [1, 2]},
    }
    row = await create(mclient, "/api/v1/orchestrator-agents", body)
    assert row["id"] == str(ident)
    for key in ("session_id", "system_prompt", "status", "working_dir", "input_tokens", "output_tokens",
                "total_cost", "metadata"):  # fmt: skip
        assert row[key] == body[key], key
    assert await get(mclient, f"/api/v1/orchestrator-agents/{str(ident).upper()}") == row


async def test_orchestrator_invalid_input_is_422(mclient: httpx.AsyncClient) -> None:
    """Bad status, unknown field, negative tokens, duplicate session_id → 422 naming the field."""
    cases = [
        ({"status": "running"}, "status"),
        ({"colour": 1}, "colour"),
        ({"input_tokens": -1}, "input_tokens"),
    ]
    for body, field in cases:
        error = assert_error(await mclient.post("/api/v1/orchestrator-agents", json=body), 422, "validation_failed")
        assert error["details"][0]["field"] == field, (body, error)
    session = f"dup-{uuid.uuid4().hex}"
    await new_orch(mclient, session_id=session)
    r = await mclient.post("/api/v1/orchestrator-agents", json={"session_id": session})
    error = assert_error(r, 422, "validation_failed")
    assert error["details"][0]["field"] == "session_id", error


async def test_orchestrator_list_filters(mclient: httpx.AsyncClient) -> None:
    """GET /orchestrator-agents filters by status and session_id."""
    blocked = await new_orch(mclient, status="blocked", session_id=f"ls-{uuid.uuid4().hex}")
    idle = await new_orch(mclient, status="idle")
    ids = await list_ids(mclient, "/api/v1/orchestrator-agents", status="blocked", limit=1000)
    assert blocked["id"] in ids and idle["id"] not in ids
    assert await list_ids(mclient, "/api/v1/orchestrator-agents", session_id=blocked["session_id"]) == [blocked["id"]]
    everything = await list_ids(mclient, "/api/v1/orchestrator-agents", limit=1000)
    assert {blocked["id"], idle["id"]} <= set(everything)


# ---------------------------------------------------------------- agents


async def test_agent_create_get_and_defaults(mclient: httpx.AsyncClient) -> None:
    """POST /agents → 201 with every column and defaults; GET returns the same row."""
    orch = await new_orch(mclient)
    row = await new_agent(mclient, orch["id"], "builder", system_prompt="build", git_worktree="/wt", adw_id="adw-9")
    assert set(row) == AGENT_FIELDS
    assert row["orchestrator_agent_id"] == orch["id"] and row["name"] == "builder" and row["model"] == "m"
    assert (row["input_tokens"], row["output_tokens"], row["total_cost"], row["archived"]) == (0, 0, 0, False)
    assert row["git_worktree"] == "/wt" and row["adw_id"] == "adw-9"
    assert await get(mclient, f"/api/v1/agents/{row['id']}") == row


async def test_agent_list_filters(mclient: httpx.AsyncClient) -> None:
    """GET /agents filters by orchestrator_agent_id, name, status and archived."""
    orch1, orch2 = await new_orch(mclient), await new_orch(mclient)
    a = await new_agent(mclient, orch1["id"], "alpha", status="idle")
    b = await new_agent(mclient, orch1["id"], "beta", status="executing")
    c = await new_agent(mclient, orch2["id"], "alpha", status="idle")
    assert sorted(await list_ids(mclient, "/api/v1/agents", orchestrator_agent_id=orch1["id"])) == sorted(
        [a["id"], b["id"]]
    )
    assert await list_ids(mclient, "/api/v1/agents", orchestrator_agent_id=orch1["id"].upper(), name="beta") == [
        b["id"]
    ]
    assert sorted(await list_ids(mclient, "/api/v1/agents", name="alpha", status="idle", limit=1000)) >= sorted(
        [a["id"], c["id"]]
    )
    assert await list_ids(mclient, "/api/v1/agents", orchestrator_agent_id=orch2["id"], status="executing") == []
    assert set(await list_ids(mclient, "/api/v1/agents", orchestrator_agent_id=orch1["id"], archived="false")) == {
        a["id"],
        b["id"],
    }
    error = assert_error(
        await mclient.get("/api/v1/agents", params={"orchestrator_agent_id": "x"}), 400, "bad_parameter"
    )
    assert error["details"][0]["field"] == "orchestrator_agent_id"


async def test_agent_list_limit_and_offset(mclient: httpx.AsyncClient) -> None:
    """limit/offset page the list without overlap; limit outside 1..1000 → 400 naming limit."""
    orch = await new_orch(mclient)
    made = {(await new_agent(mclient, orch["id"], f"p{i}"))["id"] for i in range(5)}
    first = await list_ids(mclient, "/api/v1/agents", orchestrator_agent_id=orch["id"], limit=3)
    rest = await list_ids(mclient, "/api/v1/agents", orchestrator_agent_id=orch["id"], limit=3, offset=3)
    assert len(first) == 3 and len(rest) == 2 and set(first) | set(rest) == made
    for bad in ("0", "1001", "x"):
        r = await mclient.get("/api/v1/agents", params={"limit": bad})
        assert assert_error(r, 400, "bad_parameter")["details"][0]["field"] == "limit"


async def test_agent_with_unknown_orchestrator_is_422(mclient: httpx.AsyncClient) -> None:
    """An agent naming an orchestrator that does not exist → 422 naming orchestrator_agent_id."""
    r = await mclient.post(
        "/api/v1/agents", json={"orchestrator_agent_id": str(uuid.uuid4()), "name": "orphan", "model": "m"}
    )
    error = assert_error(r, 422, "validation_failed")
    assert error["details"][0]["field"] == "orchestrator_agent_id", error
    assert (await list_ids(mclient, "/api/v1/agents", name="orphan")) == []


async def test_agent_name_unique_per_orchestrator(mclient: httpx.AsyncClient) -> None:
    """A second agent with the same name under one orchestrator → 422 naming `name`; the same
    name under another orchestrator is fine."""
    orch1, orch2 = await new_orch(mclient), await new_orch(mclient)
    await new_agent(mclient, orch1["id"], "twin")
    r = await mclient.post("/api/v1/agents", json={"orchestrator_agent_id": orch1["id"], "name": "twin", "model": "m"})
    error = assert_error(r, 422, "validation_failed")
    assert error["details"][0]["field"] == "name", error
    await new_agent(mclient, orch2["id"], "twin")
    assert len(await list_ids(mclient, "/api/v1/agents", orchestrator_agent_id=orch1["id"], name="twin")) == 1


async def test_agent_required_fields_are_422(mclient: httpx.AsyncClient) -> None:
    """Missing name or model, empty name, bad status → 422 naming the field."""
    orch = await new_orch(mclient)
    cases = [
        ({"orchestrator_agent_id": orch["id"], "model": "m"}, "name"),
        ({"orchestrator_agent_id": orch["id"], "name": "x"}, "model"),
        ({"orchestrator_agent_id": orch["id"], "name": "", "model": "m"}, "name"),
        ({"orchestrator_agent_id": orch["id"], "name": "x", "model": "m", "status": "asleep"}, "status"),
        ({"name": "x", "model": "m"}, "orchestrator_agent_id"),
    ]
    for body, field in cases:
        error = assert_error(await mclient.post("/api/v1/agents", json=body), 422, "validation_failed")
        assert error["details"][0]["field"] == field, (body, error)


# ---------------------------------------------------------------- PATCH


async def test_patch_status(mclient: httpx.AsyncClient) -> None:
    """PATCH {status} returns the new row; GET agrees; updated_at moves forward, created_at stays;
    a bad status is 422 and changes nothing."""
    orch = await new_orch(mclient)
    agent = await new_agent(mclient, orch["id"], status="idle")
    for status in ("executing", "waiting", "complete"):
        r = await mclient.patch(f"/api/v1/agents/{agent['id']}", json={"status": status})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == status
        assert r.json()["created_at"] == agent["created_at"]
        assert r.json()["updated_at"] >= agent["updated_at"]
        assert await get(mclient, f"/api/v1/agents/{agent['id']}") == r.json()
    error = assert_error(
        await mclient.patch(f"/api/v1/agents/{agent['id']}", json={"status": "dancing"}),
        422,
        "validation_failed",
    )
    assert error["details"][0]["field"] == "status"
    assert (await get(mclient, f"/api/v1/agents/{agent['id']}"))["status"] == "complete"
    r = await mclient.patch(f"/api/v1/orchestrator-agents/{orch['id']}", json={"status": "blocked"})
    assert r.status_code == 200 and r.json()["status"] == "blocked", r.text


async def test_patch_rejects_unknown_and_foreign_fields(mclient: httpx.AsyncClient) -> None:
    """PATCH with an unknown field, a negative increment, or a field the table lacks → 422 naming it."""
    orch = await new_orch(mclient)
    agent = await new_agent(mclient, orch["id"])
    cases = [
        (f"/api/v1/agents/{agent['id']}", {"colour": "red"}, "colour"),
        (f"/api/v1/agents/{agent['id']}", {"add_cost": -1}, "add_cost"),
        (f"/api/v1/agents/{agent['id']}", {"add_input_tokens": -5}, "add_input_tokens"),
        (f"/api/v1/orchestrator-agents/{orch['id']}", {"name": "x"}, "name"),
    ]
    for path, body, field in cases:
        error = assert_error(await mclient.patch(path, json=body), 422, "validation_failed")
        assert error["details"][0]["field"] == field, (body, error)


async def test_patch_rename_to_taken_name_is_422(mclient: httpx.AsyncClient) -> None:
    """Renaming an agent to a sibling's name → 422; the agent keeps its name."""
    orch = await new_orch(mclient)
    await new_agent(mclient, orch["id"], "left")
    right = await new_agent(mclient, orch["id"], "right")
    assert_error(await mclient.patch(f"/api/v1/agents/{right['id']}", json={"name": "left"}), 422, "validation_failed")
    assert (await get(mclient, f"/api/v1/agents/{right['id']}"))["name"] == "right"


async def test_concurrent_cost_increments_are_exact(mclient: httpx.AsyncClient) -> None:
    """1000 concurrent PATCH {add_cost: 0.0001, add_input_tokens: 3} end at exactly 0.1 and 3000:
    no lost update, no float drift (the JSON carries 0.1, not 0.10000000000000007)."""
    orch = await new_orch(mclient)
    agent = await new_agent(mclient, orch["id"])
    path = f"/api/v1/agents/{agent['id']}"

    async def bump() -> None:
        r = await mclient.patch(path, json={"add_cost": 0.0001, "add_input_tokens": 3})
        assert r.status_code == 200, r.text

    await asyncio.gather(*(bump() for _ in range(1000)))
    r = await mclient.get(path)
    assert r.json()["total_cost"] == 0.1
    assert re.search(r'"total_cost":\s*0\.1[,}]', r.text), r.text
    assert r.json()["input_tokens"] == 3000
    assert r.json()["output_tokens"] == 0


async def test_cost_increments_without_float_rounding(mclient: httpx.AsyncClient) -> None:
    """0.1 + 0.2 is 0.3 (not 0.30000000000000004); output tokens add up; an absolute total_cost
    then increments from the new base. Orchestrators increment the same way."""
    orch = await new_orch(mclient)
    for path in (
        f"/api/v1/orchestrator-agents/{orch['id']}",
        f"/api/v1/agents/{(await new_agent(mclient, orch['id']))['id']}",
    ):
        for body in ({"add_cost": 0.1, "add_output_tokens": 5}, {"add_cost": 0.2, "add_output_tokens": 7}):
            assert (await mclient.patch(path, json=body)).status_code == 200
        row = await get(mclient, path)
        assert row["total_cost"] == 0.3 and row["output_tokens"] == 12, row
        r = await mclient.patch(path, json={"total_cost": 2.5, "add_cost": 0.25})
        assert r.status_code == 200, r.text
        assert r.json()["total_cost"] == 2.75


async def test_concurrent_orchestrator_increments(mclient: httpx.AsyncClient) -> None:
    """200 concurrent PATCH {add_cost: 0.005, add_output_tokens: 1} on an orchestrator → exactly 1 and 200."""
    orch = await new_orch(mclient)
    path = f"/api/v1/orchestrator-agents/{orch['id']}"
    rs = await asyncio.gather(
        *(mclient.patch(path, json={"add_cost": 0.005, "add_output_tokens": 1}) for _ in range(200))
    )
    assert all(r.status_code == 200 for r in rs)
    row = await get(mclient, path)
    assert row["total_cost"] == 1 and row["output_tokens"] == 200


# ---------------------------------------------------------------- delete (archive)


async def test_delete_agent_archives_it_and_its_logs_stay(mclient: httpx.AsyncClient) -> None:
    """DELETE /agents/{id} → 200 with archived true; GET still finds it (archived); archived=true
    lists it; the agent's logs stay readable in history."""
    orch = await new_orch(mclient)
    agent = await new_agent(mclient, orch["id"])
    r = await mclient.post("/api/v1/agent-logs", json=[agent_event(agent["id"], f"log {i}") for i in range(3)])
    assert r.status_code == 201, r.text
    r = await mclient.delete(f"/api/v1/agents/{agent['id']}")
    assert r.status_code == 200, r.text
    assert r.json()["archived"] is True and r.json()["id"] == agent["id"]
    assert (await get(mclient, f"/api/v1/agents/{agent['id']}"))["archived"] is True
    assert agent["id"] in await list_ids(mclient, "/api/v1/agents", archived="true", limit=1000)
    assert agent["id"] not in await list_ids(mclient, "/api/v1/agents", archived="false", limit=1000)
    logs = await history(mclient, {"agent_id": agent["id"]})
    assert [e["data"]["content"] for e in logs] == ["log 0", "log 1", "log 2"]


# ---------------------------------------------------------------- prompts


async def test_prompts_create_get_and_list(mclient: httpx.AsyncClient) -> None:
    """Prompts: 201 with every column, timestamp normalised to UTC Z; GET; list by agent_id,
    author, task_slug and session_id."""
    orch = await new_orch(mclient)
    agent = await new_agent(mclient, orch["id"])
    p1 = await create(
        mclient,
        "/api/v1/prompts",
        {"agent_id": agent["id"], "author": "engineer", "prompt_text": "build it", "task_slug": "t-1",
         "timestamp": "2024-05-01T12:00:00+02:00", "session_id": "ps-1", "summary": "s"},
    )  # fmt: skip
    p2 = await create(
        mclient,
        "/api/v1/prompts",
        {"agent_id": agent["id"], "author": "orchestrator_agent", "prompt_text": "ok"},
    )
    p3 = await create(mclient, "/api/v1/prompts", {"author": "engineer", "prompt_text": "no agent"})
    assert set(p1) == PROMPT_FIELDS
    assert p1["timestamp"] == "2024-05-01T10:00:00.000000Z"
    assert TS_FORMAT.match(p2["timestamp"]) and p3["agent_id"] is None
    assert await get(mclient, f"/api/v1/prompts/{p1['id']}") == p1
    assert sorted(await list_ids(mclient, "/api/v1/prompts", agent_id=agent["id"])) == sorted([p1["id"], p2["id"]])
    assert await list_ids(mclient, "/api/v1/prompts", agent_id=agent["id"], author="orchestrator_agent") == [p2["id"]]
    assert await list_ids(mclient, "/api/v1/prompts", task_slug="t-1") == [p1["id"]]
    assert await list_ids(mclient, "/api/v1/prompts", session_id="ps-1") == [p1["id"]]


async def test_prompt_invalid_input_is_422(mclient: httpx.AsyncClient) -> None:
    """Unknown agent, bad author, missing prompt_text → 422 naming the field."""
    cases = [
        ({"agent_id": str(uuid.uuid4()), "author": "engineer", "prompt_text": "x"}, "agent_id"),
        ({"author": "robot", "prompt_text": "x"}, "author"),
        ({"author": "engineer"}, "prompt_text"),
    ]
    for body, field in cases:
        error = assert_error(await mclient.post("/api/v1/prompts", json=body), 422, "validation_failed")
        assert error["details"][0]["field"] == field, (body, error)


async def test_entity_bodies_must_be_one_object(mclient: httpx.AsyncClient) -> None:
    """A JSON array where one object is expected → 400; malformed JSON → 400; XML → 415."""
    assert (await mclient.post("/api/v1/orchestrator-agents", json=[{}])).status_code == 400
    r = await mclient.post("/api/v1/agents", content=b"{", headers={"content-type": "application/json"})
    assert_error(r, 400, "bad_request")
    r = await mclient.post("/api/v1/prompts", content=b"<p/>", headers={"content-type": "application/xml"})
    assert_error(r, 415, "unsupported_media_type")


# ---------------------------------------------------------------- 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/agents/{u}"),
        ("PATCH", "/api/v1/agents/{u}"),
        ("DELETE", "/api/v1/agents/{u}"),
        ("GET", "/api/v1/orchestrator-agents/{u}"),
        ("PATCH", "/api/v1/orchestrator-agents/{u}"),
        ("GET", "/api/v1/prompts/{u}"),
        ("GET", "/api/v1/agents/not-a-uuid"),
        ("DELETE", "/api/v1/agents/not-a-uuid"),
    ],
)
async def test_unknown_id_is_404(mclient: httpx.AsyncClient, method: str, path: str) -> None:
    """An id that does not exist (or is not a UUID) → 404 not_found, for reads and writes."""
    kwargs: dict[str, Any] = {"json": {"status": "idle"}} if method == "PATCH" else {}
    r = await mclient.request(method, path.format(u=uuid.uuid4()), **kwargs)
    assert_error(r, 404, "not_found")
