"""The ``tool_name`` filter (``payload.tool_name``, exact, agent logs only): one meaning in
history, in a stream's replay and live on the same stream. A payload whose tool_name is not a
string (a number, an object, null), or whose tool name is nested deeper, never matches."""

from __future__ import annotations

from typing import Any

import httpx

from helpers import assert_error, history, make_agents
from helpers.stream import agent_item, open_sse, post, sse_frame

PAYLOADS: list[dict[str, Any]] = [
    {"tool_name": "Bash"},
    {"tool_name": "bash"},
    {"tool_name": "Bash "},
    {"tool_name": "Read", "input": {"tool_name": "Bash"}},
    {"tool_name": 5},
    {"tool_name": {"name": "Bash"}},
    {"tool_name": None},
    {},
]


async def seed(client: httpx.AsyncClient) -> tuple[list[str], list[int]]:
    """One agent event per payload shape, and a system log mentioning Bash; returns the agents and
    the seqs whose payload.tool_name is exactly the string "Bash"."""
    _orch, agents = await make_agents(client, 2)
    items = [agent_item(agents[i % 2], f"tool {i}", payload=p) for i, p in enumerate(PAYLOADS)]
    items.append({"kind": "system_log", "message": "Bash", "metadata": {"tool_name": "Bash"}})
    seqs = await post(client, items)
    return agents, [seqs[0]]


async def test_history_selects_exactly_the_string_tool_name(client: httpx.AsyncClient) -> None:
    agents, bash = await seed(client)
    assert [e["seq"] for e in await history(client, {"tool_name": "Bash"})] == bash
    assert [e["data"]["payload"] for e in await history(client, {"tool_name": "bash"})] == [{"tool_name": "bash"}]
    assert await history(client, {"tool_name": "5"}) == [], "the number 5 is not the string '5'"
    assert await history(client, {"tool_name": '{"name": "Bash"}'}) == []
    assert [e["seq"] for e in await history(client, {"tool_name": "Bash", "agent_id": agents[0]})] == bash
    assert await history(client, {"tool_name": "Bash", "agent_id": agents[1]}) == []
    assert await history(client, {"tool_name": "Bash", "kind": "system_log"}) == [], "agent logs only"
    read = await history(client, {"tool_name": "Read", "contains": "tool 3"})
    assert [e["data"]["payload"]["tool_name"] for e in read] == ["Read"]


async def test_an_over_long_tool_name_is_a_400_naming_it(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/events", params={"tool_name": "x" * 5000})
    assert "tool_name" in assert_error(r, 400, "bad_parameter")["message"]


async def test_replay_and_live_select_the_same_events_as_history(client: httpx.AsyncClient) -> None:
    """A stream with tool_name=Bash replays the matching history, then live delivers only the
    matching new events (a trailing match proves the others were passed over, not pending)."""
    agents, bash = await seed(client)
    async with open_sse(client, {"after": 0, "tool_name": "Bash"}) as sse:
        hello, replayed = await sse.until_live()
        assert hello["event"] == "hello"
        assert [sse_frame(m)["seq"] for m in replayed] == bash
        live = await post(client, [agent_item(agents[1], f"live {i}", payload=p) for i, p in enumerate(PAYLOADS)])
        last = await post(client, [agent_item(agents[0], "last", payload={"tool_name": "Bash"})])
        got = []
        while not got or got[-1] != last[0]:
            message = await sse.next_event()
            if message["event"] in ("agent_log", "system_log"):
                got.append(sse_frame(message)["seq"])
        assert got == [live[0], last[0]]
    everything = [e["seq"] for e in await history(client, {"tool_name": "Bash"})]
    assert everything == [*bash, live[0], last[0]], "history agrees with what the stream delivered"
