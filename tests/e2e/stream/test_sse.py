"""SSE ``/api/v1/stream/sse``: the same stream as the WebSocket, in EventSource's format.

``event:`` is the frame type, ``id:`` the seq of sequenced events (so the browser sends it back
as ``Last-Event-ID`` when it reconnects), ``data:`` the JSON frame; bad parameters are a 400
JSON error before the stream starts.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import httpx
import orjson
import pytest

from helpers import Server, make_agents
from helpers.stream import head_seq, matching, mixed, open_sse, post, sse_frame, system_item, triples


async def test_hello_first_then_events_with_ids_then_live(mclient: httpx.AsyncClient) -> None:
    """hello first; every event has `event: agent_log|system_log`, `id: <seq>` and the history row."""
    _, agents = await make_agents(mclient, 2)
    await post(mclient, mixed(agents, 25, random.Random(20)))
    ready = (await mclient.get("/readyz")).json()
    async with open_sse(mclient, {"after": 0}) as sse:
        first = await sse.next()
        assert first.get("retry", "").isdigit(), f"a retry: hint comes first, got {first}"
        hello, events = await sse.until_live()
        body = orjson.loads(hello["data"])
        assert body["type"] == "hello"
        assert body["epoch"] == ready["epoch"]
        assert body["head_seq"] == ready["head_seq"]
        assert body["floor_seq"] == 0
        assert body["after"] == 0
        assert "id" not in hello, "control frames carry no id (they must not move Last-Event-ID)"
        frames = [sse_frame(m) for m in events]
        assert triples(frames) == triples(await matching(mclient))
        assert {m["event"] for m in events} == {"agent_log", "system_log"}

        head = ready["head_seq"]
        seqs = await post(mclient, mixed(agents, 5, random.Random(21), "live"))
        live = [sse_frame(await sse.next_event()) for _ in seqs]
        assert triples(live) == triples(await matching(mclient, after=head))


async def test_after_resumes_after_that_seq(mclient: httpx.AsyncClient) -> None:
    """after=N replays the events with seq > N, in order."""
    seqs = await post(mclient, [system_item(f"m{i}") for i in range(8)])
    async with open_sse(mclient, {"after": seqs[4]}) as sse:
        _, events = await sse.until_live()
    assert [int(m["id"]) for m in events] == seqs[5:]


async def test_last_event_id_header_resumes(mclient: httpx.AsyncClient) -> None:
    """Last-Event-ID alone (an EventSource reconnecting) resumes right after that id."""
    seqs = await post(mclient, [system_item(f"l{i}") for i in range(6)])
    async with open_sse(mclient, headers={"Last-Event-ID": str(seqs[2])}) as sse:
        hello, events = await sse.until_live()
    assert orjson.loads(hello["data"])["after"] == seqs[2]
    assert [int(m["id"]) for m in events] == seqs[3:]


async def test_last_event_id_wins_over_after(mclient: httpx.AsyncClient) -> None:
    """On reconnect EventSource keeps the original URL (after=) and adds Last-Event-ID: the header wins."""
    seqs = await post(mclient, [system_item(f"w{i}") for i in range(6)])
    params = {"after": seqs[0]}
    async with open_sse(mclient, params, headers={"Last-Event-ID": str(seqs[3])}) as sse:
        _, events = await sse.until_live()
    assert [int(m["id"]) for m in events] == seqs[4:]


async def test_filters_apply_to_sse(mclient: httpx.AsyncClient) -> None:
    """The same filters as history, on replay and live."""
    _, agents = await make_agents(mclient, 2)
    await post(mclient, mixed(agents, 40, random.Random(22)))
    params = {"agent_id": agents[1], "min_level": "INFO"}
    async with open_sse(mclient, {**params, "after": 0}) as sse:
        _, events = await sse.until_live()
        assert triples([sse_frame(m) for m in events]) == triples(await matching(mclient, params))
        head = await head_seq(mclient)
        await post(mclient, mixed(agents, 40, random.Random(23), "live"))
        want = await matching(mclient, params, after=head)
        got = [sse_frame(await sse.next_event()) for _ in want]
        assert triples(got) == triples(want)


@pytest.mark.parametrize(
    ("params", "headers", "name"),
    [
        ({"after": "abc"}, {}, "after"),
        ({"min_level": "LOUD"}, {}, "min_level"),
        ({"agent_id": "not-a-uuid"}, {}, "agent_id"),
        ({"kind": "bogus"}, {}, "kind"),
        ({}, {"Last-Event-ID": "xyz"}, "Last-Event-ID"),
    ],
    ids=["after", "min_level", "agent_id", "kind", "last-event-id"],
)
async def test_bad_parameters_are_a_400_json_error(
    mclient: httpx.AsyncClient, params: dict[str, str], headers: dict[str, str], name: str
) -> None:
    """A bad parameter is refused before streaming: 400, the JSON error shape, naming the parameter."""
    r = await mclient.get("/api/v1/stream/sse", params=params, headers=headers)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert error["code"] in ("bad_parameter", "bad_request")
    assert name in error["message"], error


async def test_idle_sse_stream_sends_heartbeat_comments(server_factory: Callable[..., Server]) -> None:
    """An idle SSE stream sends comment lines (ignored by EventSource) that keep proxies open."""
    srv: Server = server_factory(env={"ORCHLOG_HEARTBEAT_S": "0.3"})
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as client, open_sse(client) as sse:
        await sse.until_live()
        message = await sse.next(5)
        assert "event" not in message and "data" not in message, message
        assert message.get("comments"), message
