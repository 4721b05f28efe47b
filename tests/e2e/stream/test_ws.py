"""WebSocket ``/api/v1/stream``: hello, replay → live, tail, filters, reset, pings, entity notices.

The contract is DESIGN.md §4: ``hello`` first; sequenced frames ascending and exactly once,
identical to what history returns for the same filter; ``live`` once replay has caught up;
``reset`` below the floor or on another epoch; bad parameters close with 4400.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from helpers import Server, make_agents, wait_until
from helpers.stream import (
    assert_quiet,
    head_seq,
    matching,
    mixed,
    open_ws,
    post,
    recv,
    recv_events,
    recv_type,
    refused,
    set_floor,
    system_item,
    triples,
    until_live,
)


async def test_hello_is_first_and_describes_the_stream(server: Server, client: httpx.AsyncClient) -> None:
    """hello comes first with the database epoch, head and floor seqs, and the cursor in use."""
    _, agents = await make_agents(client, 1)
    await post(client, mixed(agents, 5, random.Random(1)))
    ready = (await client.get("/readyz")).json()
    async with await open_ws(server) as ws:
        hello = await recv(ws)
    assert hello["type"] == "hello"
    assert str(uuid.UUID(hello["epoch"])) == hello["epoch"] == ready["epoch"]
    assert hello["head_seq"] == ready["head_seq"] == 5
    assert hello["floor_seq"] == 0
    assert hello["after"] == 5, "without after/tail the stream starts at the head"
    async with await open_ws(server, {"after": 2}) as ws:
        hello2 = await recv(ws)
    assert hello2["type"] == "hello"
    assert hello2["epoch"] == hello["epoch"], "the epoch belongs to the database, not the connection"
    assert hello2["after"] == 2


async def test_after_zero_replays_exactly_history_then_live(module_server: Server, mclient: httpx.AsyncClient) -> None:
    """after=0 replays every event as history has it (kind, seq, row), then `live`, then new events."""
    _, agents = await make_agents(mclient, 2)
    await post(mclient, mixed(agents, 40, random.Random(2)))
    head = await head_seq(mclient)
    async with await open_ws(module_server, {"after": 0}) as ws:
        hello, replay, live = await until_live(ws)
        assert hello["after"] == 0
        assert triples(replay) == triples(await matching(mclient))
        assert replay[-1]["seq"] == head
        assert live["seq"] == head
        more = await post(mclient, mixed(agents, 7, random.Random(3), "new"))
        got = await recv_events(ws, 7)
        assert triples(got) == triples(await matching(mclient, after=head))
        assert [f["seq"] for f in got] == more
        await assert_quiet(ws)


async def test_after_seq_resumes_just_after_it(module_server: Server, mclient: httpx.AsyncClient) -> None:
    """after=N replays exactly the events with seq > N."""
    _, agents = await make_agents(mclient, 1)
    seqs = await post(mclient, mixed(agents, 20, random.Random(4)))
    async with await open_ws(module_server, {"after": seqs[12]}) as ws:
        _, replay, _ = await until_live(ws)
    assert [f["seq"] for f in replay] == seqs[13:]


async def test_no_after_gives_only_new_events(module_server: Server, mclient: httpx.AsyncClient) -> None:
    """Neither after nor tail: nothing old is replayed; events posted afterwards arrive once each."""
    _, agents = await make_agents(mclient, 1)
    await post(mclient, mixed(agents, 10, random.Random(5)))
    head = await head_seq(mclient)
    async with await open_ws(module_server) as ws:
        _, replay, live = await until_live(ws)
        assert replay == []
        assert live["seq"] == head
        seqs = await post(mclient, mixed(agents, 3, random.Random(6)))
        got = await recv_events(ws, 3)
        assert [f["seq"] for f in got] == seqs == [head + 1, head + 2, head + 3]
        await assert_quiet(ws)


@pytest.mark.parametrize(
    ("tail", "params"),
    [(3, {}), (2, {"kind": "system_log"}), (4, {"min_level": "WARNING"}), (1000, {}), (0, {})],
    ids=["tail3", "tail2-system", "tail4-min-warning", "tail-more-than-exist", "tail0"],
)
async def test_tail_gives_last_n_matching_then_live(
    module_server: Server, mclient: httpx.AsyncClient, tail: int, params: dict[str, str]
) -> None:
    """tail=N: the last N matching events (ascending), then live; then only new matching events."""
    _, agents = await make_agents(mclient, 2)
    await post(mclient, mixed(agents, 30, random.Random(7)))
    expected = await matching(mclient, params)
    async with await open_ws(module_server, {**params, "tail": tail}) as ws:
        _, replay, _ = await until_live(ws)
        assert triples(replay) == triples(expected[-tail:] if tail else [])
        head = await head_seq(mclient)
        await post(mclient, mixed(agents, 30, random.Random(8), "live"))
        want = await matching(mclient, params, after=head)
        assert want, "the second mix must contain matching events"
        got = await recv_events(ws, len(want))
        assert triples(got) == triples(want)
        await assert_quiet(ws)


async def test_ping_gets_pong_and_junk_is_ignored(module_server: Server) -> None:
    """{"type":"ping"} → {"type":"pong"}; non-JSON text does not break the stream."""
    async with await open_ws(module_server) as ws:
        await until_live(ws)
        await ws.send("not json")
        await ws.send(orjson.dumps({"type": "ping"}).decode())
        assert await recv(ws) == {"type": "pong"}
        await ws.send(orjson.dumps({"type": "ping"}).decode())
        assert await recv(ws) == {"type": "pong"}


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"after": "abc"}, "after"),
        ({"after": "-1"}, "after"),
        ({"tail": "x"}, "tail"),
        ({"after": "1", "tail": "2"}, "tail"),
        ({"min_level": "LOUD"}, "min_level"),
        ({"level": "LOUD"}, "level"),
        ({"agent_id": "not-a-uuid"}, "agent_id"),
        ({"kind": "bogus"}, "kind"),
        ({"event_category": "nope"}, "event_category"),
        ({"since": "not a time"}, "since"),
    ],
    ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else v,
)
async def test_bad_parameters_are_refused_with_4400(module_server: Server, params: dict[str, str], name: str) -> None:
    """A parameter that does not parse closes the socket with 4400 (or HTTP 400) naming it."""
    code, reason = await refused(module_server, params)
    assert code in (4400, 400), (code, reason)
    assert name in reason, f"the reason should name {name!r}: {reason!r}"


def _filters() -> list[tuple[str, Callable[[list[str]], dict[str, str]]]]:
    return [
        ("agent_id", lambda a: {"agent_id": a[0]}),
        ("agent_id-list", lambda a: {"agent_id": f"{a[0]},{a[2]}"}),
        ("min_level", lambda a: {"min_level": "warning"}),
        ("level-list", lambda a: {"level": "DEBUG,ERROR"}),
        ("kind-system", lambda a: {"kind": "system_log"}),
        ("kind-agent+min_level", lambda a: {"kind": "agent_log", "min_level": "ERROR"}),
        ("event_type", lambda a: {"event_type": "PostToolUse"}),
        ("event_category", lambda a: {"event_category": "response"}),
        ("task_slug", lambda a: {"task_slug": "t1"}),
        ("adw_id", lambda a: {"adw_id": "adw-7"}),
        ("q", lambda a: {"q": "needle"}),
        ("agent_id+q", lambda a: {"agent_id": a[1], "q": "NEEDLE"}),
        ("min_level+q", lambda a: {"min_level": "INFO", "q": "hay"}),
    ]


@pytest.mark.parametrize(("label", "make"), _filters(), ids=[f[0] for f in _filters()])
async def test_same_filter_gives_same_events_on_replay_and_live(
    module_server: Server, mclient: httpx.AsyncClient, label: str, make: Callable[[list[str]], dict[str, str]]
) -> None:
    """Replay (from the database) and live (from the hub) apply a filter exactly like history does."""
    _, agents = await make_agents(mclient, 3)
    params = make(agents)
    await post(mclient, mixed(agents, 80, random.Random(10)))
    async with await open_ws(module_server, {**params, "after": 0}) as ws:
        _, replay, _ = await until_live(ws)
        before = await matching(mclient, params)
        assert before, f"the mix must contain events matching {params}"
        assert triples(replay) == triples(before), "replay differs from history"
        head = await head_seq(mclient)
        for batch in range(4):
            await post(mclient, mixed(agents, 20, random.Random(100 + batch), f"b{batch}-"))
        after = await matching(mclient, params, after=head)
        assert after, f"the live mix must contain events matching {params}"
        live = await recv_events(ws, len(after))
        assert triples(live) == triples(after), "live differs from history"
        await assert_quiet(ws)


async def test_reset_when_after_is_below_the_floor(server: Server, client: httpx.AsyncClient, db_path: Path) -> None:
    """A cursor below floor_seq gets `reset` (with the floor), then every row that remains after the
    cursor: the floor says rows at or below it may be gone, not that all of them are (age
    retention deletes old rows wherever their seq is; each table is pruned on its own)."""
    _, agents = await make_agents(client, 1)
    await post(client, mixed(agents, 10, random.Random(11)))
    set_floor(db_path, 5)
    async with await open_ws(server, {"after": 2}) as ws:
        hello = await recv(ws)
        assert hello["type"] == "hello"
        assert hello["floor_seq"] == 5
        reset = await recv(ws)
        assert reset["type"] == "reset", reset
        assert reset["floor_seq"] == 5 and reset["after"] == 2
        assert isinstance(reset.get("reason"), str) and reset["reason"]
        rest = []
        while (frame := await recv(ws))["type"] != "live":
            rest.append(frame)
        assert triples(rest) == triples(await matching(client, after=2))
    async with await open_ws(server, {"after": 7}) as ws:
        _, replay, _ = await until_live(ws)  # no reset above the floor
        assert [f["seq"] for f in replay] == [8, 9, 10]


async def test_reset_when_the_epoch_differs(module_server: Server, mclient: httpx.AsyncClient) -> None:
    """A client that names another epoch (another database) gets `reset` and a replay from the floor."""
    _, agents = await make_agents(mclient, 1)
    seqs = await post(mclient, mixed(agents, 6, random.Random(12)))
    async with await open_ws(module_server, {"after": seqs[3], "epoch": str(uuid.uuid4())}) as ws:
        hello = await recv(ws)
        reset = await recv(ws)
        assert reset["type"] == "reset", reset
        assert reset["floor_seq"] == hello["floor_seq"] == 0
        rest = []
        while (frame := await recv(ws))["type"] != "live":
            rest.append(frame)
        assert triples(rest) == triples(await matching(mclient))
    async with await open_ws(module_server, {"after": seqs[3], "epoch": hello["epoch"]}) as ws:
        _, replay, _ = await until_live(ws)  # the right epoch: a plain resume
        assert [f["seq"] for f in replay] == seqs[4:]


async def test_reset_when_after_is_ahead_of_the_head(module_server: Server, mclient: httpx.AsyncClient) -> None:
    """A cursor beyond the head (a client of a bigger, other database) gets `reset`, then a replay."""
    _, agents = await make_agents(mclient, 1)
    await post(mclient, mixed(agents, 3, random.Random(13)))
    head = await head_seq(mclient)
    async with await open_ws(module_server, {"after": head + 1000}) as ws:
        await recv(ws)
        reset = await recv(ws)
        assert reset["type"] == "reset", reset
        rest = []
        while (frame := await recv(ws))["type"] != "live":
            rest.append(frame)
        assert triples(rest) == triples(await matching(mclient))


async def test_entity_changes_are_announced(module_server: Server, mclient: httpx.AsyncClient) -> None:
    """Creating, patching and deleting an agent through the API send `agent` frames (after commit)."""
    orch, _ = await make_agents(mclient, 0)
    async with await open_ws(module_server) as ws:
        await until_live(ws)
        r = await mclient.post("/api/v1/agents", json={"orchestrator_agent_id": orch, "name": "watched", "model": "m"})
        assert r.status_code == 201
        agent = r.json()
        created = await recv_type(ws, "agent")
        assert created["op"] == "created"
        assert created["data"]["id"] == agent["id"]
        assert created["data"]["name"] == "watched"

        r = await mclient.patch(f"/api/v1/agents/{agent['id']}", json={"status": "executing"})
        assert r.status_code == 200, r.text
        updated = await recv_type(ws, "agent")
        assert updated["op"] == "updated"
        assert updated["data"]["id"] == agent["id"]
        assert updated["data"]["status"] == "executing"

        r = await mclient.delete(f"/api/v1/agents/{agent['id']}")
        assert r.status_code == 200, r.text
        deleted = await recv_type(ws, "agent")
        assert deleted["op"] == "deleted"
        assert deleted["data"]["id"] == agent["id"]


async def test_entity_notice_does_not_disturb_the_event_sequence(
    module_server: Server, mclient: httpx.AsyncClient
) -> None:
    """Notices are not sequenced: interleaved with events, the events still arrive once, in order."""
    _, agents = await make_agents(mclient, 1)
    async with await open_ws(module_server) as ws:
        await until_live(ws)
        seqs = await post(mclient, [system_item("one"), system_item("two")])
        await mclient.patch(f"/api/v1/agents/{agents[0]}", json={"status": "waiting"})
        seqs += await post(mclient, [system_item("three")])
        events = await recv_events(ws, 3, skip=("heartbeat", "agent"))
        assert [f["seq"] for f in events] == seqs


@pytest.fixture
def fast_heartbeat_server(tmp_path: Path) -> Any:
    srv = Server(tmp_path / "hb.db", env={"ORCHLOG_HEARTBEAT_S": "0.3"}).start()
    try:
        yield srv
    finally:
        srv.stop()


async def test_idle_stream_gets_heartbeats_with_the_head(fast_heartbeat_server: Server) -> None:
    """An idle subscriber receives `heartbeat` frames carrying the head seq."""
    srv = fast_heartbeat_server
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as client:
        await post(client, [system_item("a"), system_item("b")])
        async with await open_ws(srv) as ws:
            await until_live(ws)
            beat = await recv(ws, 5)
            assert beat["type"] == "heartbeat", beat
            assert beat["head_seq"] == 2


@pytest.fixture
def two_subscriber_server(tmp_path: Path) -> Any:
    srv = Server(tmp_path / "max.db", env={"ORCHLOG_MAX_SUBSCRIBERS": "2"}).start()
    try:
        yield srv
    finally:
        srv.stop()


async def test_too_many_subscribers_get_4429(two_subscriber_server: Server) -> None:
    """Past max_subscribers a new stream is closed with 4429; a freed slot can be used again."""
    srv = two_subscriber_server
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as client:
        first = await open_ws(srv)
        await until_live(first)
        async with await open_ws(srv) as second:
            await until_live(second)
            code, _ = await refused(srv, {})
            assert code in (4429, 429)
            await first.close()

            async def freed() -> bool:
                return (await client.get("/readyz")).json()["subscribers"] < 2

            await wait_until(freed, 10, "the closed subscriber to be released")
            async with await open_ws(srv) as third:
                hello = await recv(third)
                assert hello["type"] == "hello"


async def test_batched_frames_carry_the_same_events(module_server: Server, mclient: httpx.AsyncClient) -> None:
    """batch=1: `{"type": "events", "items": [frame, ...]}` frames whose items, concatenated, are
    exactly the unbatched stream (replay and live), in order, once each."""
    _, agents = await make_agents(mclient, 2)
    await post(mclient, mixed(agents, 60, random.Random(14)))
    params = {"min_level": "INFO"}
    async with await open_ws(module_server, {**params, "after": 0, "batch": 1}) as ws:
        hello = await recv(ws)
        assert hello["type"] == "hello"
        replay: list[dict] = []
        while (frame := await recv(ws))["type"] != "live":
            assert frame["type"] == "events", frame
            assert frame["items"], "no empty batches"
            replay += frame["items"]
        assert triples(replay) == triples(await matching(mclient, params))
        head = await head_seq(mclient)
        for i in range(3):
            await post(mclient, mixed(agents, 30, random.Random(15 + i), f"batch{i}-"))
        want = await matching(mclient, params, after=head)
        live: list[dict] = []
        while len(live) < len(want):
            frame = await recv(ws)
            if frame["type"] == "events":
                live += frame["items"]
            else:
                assert frame["type"] == "heartbeat", frame
        assert triples(live) == triples(want)
        await assert_quiet(ws)


@pytest.mark.parametrize("compression", ["deflate", None], ids=["deflate", "plain"])
async def test_a_burst_of_single_event_frames_written_together_arrives_whole_and_in_order(
    module_server: Server, mclient: httpx.AsyncClient, compression: str | None
) -> None:
    """The server writes the frames queued in one wake with one transport write (api/wsdirect.py):
    each is still its own message, compressed or not, and a ping in the middle still gets its pong."""
    _, agents = await make_agents(mclient, 2)
    async with await open_ws(module_server, compression=compression) as ws:
        await until_live(ws)
        seqs = await post(mclient, mixed(agents, 400, random.Random(71), "burst"))
        await ws.send(orjson.dumps({"type": "ping"}).decode())
        frames = [await recv(ws) for _ in range(len(seqs) + 1)]
        assert [f for f in frames if f["type"] == "pong"] == [{"type": "pong"}]
        got = [f for f in frames if f["type"] != "pong"]
        assert [f["seq"] for f in got] == seqs
        assert triples(got) == triples(await matching(mclient, after=seqs[0] - 1))
        await assert_quiet(ws)


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batched"])
async def test_subscribers_joining_while_events_flow_get_each_event_once_in_order(
    module_server: Server, mclient: httpx.AsyncClient, batch: bool
) -> None:
    """Live frames may be sent by the hub itself while a follower waits (Follower.direct, and
    direct_batch: the events handed over in one loop turn, held and sent as one frame).
    Subscribers that join mid-stream cross from replay to live while posts keep coming: each
    still gets every event after its start exactly once, in order."""
    _, agents = await make_agents(mclient, 2)
    start = await head_seq(mclient)
    rng = random.Random(5)
    posted: list[int] = []
    sockets = []
    try:
        for round_ in range(6):
            params = {"after": str(start), **({"batch": "1"} if batch else {})}
            sockets.append(await open_ws(module_server, params))
            for _ in range(3):
                posted += await post(mclient, mixed(agents, rng.randint(1, 40), rng, f"join{round_}"))
        expected = posted
        for ws in sockets:
            hello = await recv(ws)
            assert hello["type"] == "hello"
            got: list[int] = []
            while len(got) < len(expected):
                frame = await recv(ws)
                if frame["type"] in ("agent_log", "system_log"):
                    got.append(frame["seq"])
                elif frame["type"] == "events":
                    got += [item["seq"] for item in frame["items"]]
                else:
                    assert frame["type"] in ("live", "heartbeat"), frame
            assert got == expected
            await assert_quiet(ws)
    finally:
        for ws in sockets:
            await ws.close()
