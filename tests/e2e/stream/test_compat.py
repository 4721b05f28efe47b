"""orchestrator_3_stream compatibility over real sockets: /ws and /health's connection counts
(the HTTP endpoints are in tests/api/test_compat_http.py).

Its Vue frontend (served from another local port) calls ``/get_orchestrator``, opens ``/ws``, then
``/list_agents``, ``/load_chat`` and ``/get_events``; its ADW scripts relay messages over ``/ws``.
Every shape it reads must be there; what orchlog adds (``seq``, ``?after=``) must not get in the way.
"""

from __future__ import annotations

import random
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection

from helpers import Server, is_number, make_agents, wait_until
from helpers.stream import (
    agent_item,
    assert_quiet,
    head_seq,
    matching,
    mixed,
    open_ws,
    post,
    recv,
    refused,
    system_item,
    until_live,
)


async def open_compat(server: Server, params: dict[str, Any] | None = None) -> tuple[ClientConnection, dict]:
    """A /ws client past its connection_established message."""
    ws = await open_ws(server, params, path="/ws")
    hello = await recv(ws)
    assert hello["type"] == "connection_established", hello
    return ws, hello


async def next_of(ws: ClientConnection, wanted: str) -> dict[str, Any]:
    """The next message of type ``wanted`` (heartbeats and other notices are skipped)."""
    while True:
        message = await recv(ws)
        if message["type"] == wanted:
            return message


# ------------------------------------------------------------------ HTTP


async def test_health(mclient: httpx.AsyncClient, module_server: Server) -> None:
    """GET /health: status "healthy", a service name, and the live socket count."""
    body = (await mclient.get("/health")).json()
    assert body["status"] == "healthy"
    assert isinstance(body["service"], str) and body["service"]
    assert is_number(body["websocket_connections"])
    base = body["websocket_connections"]

    def counting(n: int) -> Any:
        async def check() -> bool:
            return (await mclient.get("/health")).json()["websocket_connections"] == n

        return check

    ws, _ = await open_compat(module_server)
    await wait_until(counting(base + 1), 10, "/health to count the open /ws socket")
    await ws.close()
    await wait_until(counting(base), 10, "/health to forget the closed /ws socket")


# ------------------------------------------------------------------ /ws


async def test_ws_connection_established_then_log_messages(module_server: Server, mclient: httpx.AsyncClient) -> None:
    """connection_established first (with timestamp); agent_log rows under `log`, system_log rows
    under `data`, both with `seq` and `timestamp`; only new events without ?after."""
    _, agents = await make_agents(mclient, 1)
    await post(mclient, [system_item("old")])
    ws, hello = await open_compat(module_server)
    async with ws:
        assert isinstance(hello["timestamp"], str) and hello["timestamp"]
        assert "client_id" in hello and "message" in hello
        head = await head_seq(mclient)
        await post(mclient, [agent_item(agents[0], "live one"), system_item("live two", "WARNING")])
        expected = await matching(mclient, after=head)
        first = await next_of(ws, "agent_log")
        assert first["log"] == expected[0]["data"]
        assert first["seq"] == expected[0]["seq"]
        assert isinstance(first["timestamp"], str) and first["timestamp"]
        second = await next_of(ws, "system_log")
        assert second["data"] == expected[1]["data"]
        assert second["seq"] == expected[1]["seq"]
        assert isinstance(second["timestamp"], str) and second["timestamp"]


async def test_ws_after_replays_in_seq_order(module_server: Server, mclient: httpx.AsyncClient) -> None:
    """/ws?after=0 replays every event in seq order, then continues live."""
    _, agents = await make_agents(mclient, 2)
    await post(mclient, mixed(agents, 15, random.Random(31)))
    everything = await matching(mclient)
    ws, _ = await open_compat(module_server, {"after": 0})
    async with ws:
        got = []
        while len(got) < len(everything):
            message = await recv(ws)
            if message["type"] in ("agent_log", "system_log"):
                got.append((message["type"], message["seq"], message.get("log") or message.get("data")))
        assert got == [(i["kind"], i["seq"], i["data"]) for i in everything]
        seqs = await post(mclient, [system_item("after replay")])
        assert (await next_of(ws, "system_log"))["seq"] == seqs[0]


async def test_ws_bad_after_is_refused(module_server: Server) -> None:
    """/ws?after=abc closes with 4400 (or HTTP 400) instead of streaming from a wrong place."""
    code, reason = await refused(module_server, {"after": "abc"}, path="/ws")
    assert code in (4400, 400), (code, reason)


async def test_ws_agent_entity_messages(module_server: Server, mclient: httpx.AsyncClient) -> None:
    """agent_created on create; agent_status_changed + agent_updated on a status change;
    agent_updated alone on a cost change (numbers stay numbers); agent_deleted on delete."""
    orch, _ = await make_agents(mclient, 0)
    ws, _ = await open_compat(module_server)
    async with ws:
        r = await mclient.post("/api/v1/agents", json={"orchestrator_agent_id": orch, "name": "c1", "model": "m"})
        agent = r.json()
        created = await next_of(ws, "agent_created")
        assert created["agent"]["id"] == agent["id"]
        assert created["agent"]["name"] == "c1" and created["agent"]["model"] == "m"
        assert isinstance(created["timestamp"], str)

        await mclient.patch(f"/api/v1/agents/{agent['id']}", json={"status": "executing"})
        changed = await recv(ws)
        assert changed["type"] == "agent_status_changed", changed
        assert changed["agent_id"] == agent["id"]
        assert changed["old_status"] == agent["status"]
        assert changed["new_status"] == "executing"
        assert isinstance(changed["timestamp"], str)
        updated = await recv(ws)
        assert updated["type"] == "agent_updated", updated
        assert updated["agent_id"] == agent["id"]
        assert updated["agent"]["status"] == "executing"

        await mclient.patch(f"/api/v1/agents/{agent['id']}", json={"add_cost": "0.5", "add_input_tokens": 10})
        cost = await recv(ws)
        assert cost["type"] == "agent_updated", "no status change, no agent_status_changed"
        assert cost["agent_id"] == agent["id"]
        assert is_number(cost["agent"]["total_cost"]) and cost["agent"]["total_cost"] == pytest.approx(0.5)
        assert cost["agent"]["input_tokens"] == 10

        await mclient.delete(f"/api/v1/agents/{agent['id']}")
        deleted = await next_of(ws, "agent_deleted")
        assert deleted["agent_id"] == agent["id"]
        assert isinstance(deleted["timestamp"], str)


async def test_ws_relay_reaches_every_client(module_server: Server) -> None:
    """A client's agent_broadcast / adw_broadcast is re-broadcast to every /ws client (sender too)."""
    a, _ = await open_compat(module_server)
    b, _ = await open_compat(module_server)
    async with a, b:
        relay = {
            "type": "agent_broadcast",
            "broadcast_type": "agent_status_changed",
            "data": {"agent_id": "agent-x", "old_status": "idle", "new_status": "executing"},
        }
        await a.send(orjson.dumps(relay).decode())
        for ws in (a, b):
            message = await next_of(ws, "agent_status_changed")
            assert message["agent_id"] == "agent-x"
            assert message["old_status"] == "idle" and message["new_status"] == "executing"
            assert isinstance(message.get("timestamp"), str)

        adw = {
            "type": "adw_broadcast",
            "broadcast_type": "adw_status",
            "data": {"adw_id": "adw-1", "status": "in_progress", "current_step": "build"},
        }
        await b.send(orjson.dumps(adw).decode())
        for ws in (a, b):
            message = await next_of(ws, "adw_updated")
            assert message["adw_id"] == "adw-1" and message["status"] == "in_progress"


async def test_ws_relay_stays_on_ws(module_server: Server) -> None:
    """Relay messages are an orchestrator_3_stream /ws feature: a native /api/v1/stream subscriber
    gets only the frames of its own contract (no `relay` frame)."""
    native = await open_ws(module_server)
    await until_live(native)
    compat, _ = await open_compat(module_server)
    async with native, compat:
        relay = {"type": "agent_broadcast", "broadcast_type": "agent_updated", "data": {"agent_id": "agent-y"}}
        await compat.send(orjson.dumps(relay).decode())
        assert (await next_of(compat, "agent_updated"))["agent_id"] == "agent-y"
        await assert_quiet(native)
