"""The WebSocket stream under each of uvicorn's ``websockets`` implementations (``ORCHLOG_WS_IMPL``).

The send path writes frames straight to the connection's transport when it can (api/wsdirect.py),
and reaches into the implementation for that: its state, extensions and flow control live in
different places in the legacy protocol and in the sans-I/O one. Each contract that depends on
them is checked under both: bursts arrive whole and in order (compressed or not) with pings
answered in between, a slow reader loses nothing, and a client that reads nothing for
``send_timeout`` is closed with 1001 after what was already written.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import socket
from collections.abc import Callable

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from helpers import Server, make_agents, wait_until
from helpers.stream import (
    agent_item,
    assert_quiet,
    matching,
    mixed,
    open_stalled_ws,
    open_ws,
    post,
    recv,
    triples,
    until_live,
)

IMPLS = ["websockets", "websockets-sansio"]


@pytest.fixture(params=IMPLS)
def impl(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("compression", ["deflate", None], ids=["deflate", "plain"])
async def test_bursts_arrive_whole_in_order_with_pongs_between(
    server_factory: Callable[..., Server], impl: str, compression: str | None
) -> None:
    srv = server_factory(env={"ORCHLOG_WS_IMPL": impl})
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as client:
        _, agents = await make_agents(client, 2)
        async with await open_ws(srv, compression=compression) as ws, await open_ws(srv, {"batch": "1"}) as batched:
            await until_live(ws)
            await until_live(batched)
            seqs = await post(client, mixed(agents, 300, random.Random(3), "burst"))
            await ws.send(orjson.dumps({"type": "ping"}).decode())
            frames = [await recv(ws) for _ in range(len(seqs) + 1)]
            assert [f for f in frames if f["type"] == "pong"] == [{"type": "pong"}]
            got = [f for f in frames if f["type"] != "pong"]
            assert [f["seq"] for f in got] == seqs
            assert triples(got) == triples(await matching(client, after=seqs[0] - 1))
            items: list[dict[str, object]] = []
            while len(items) < len(seqs):
                frame = await recv(batched)
                assert frame["type"] == "events", frame
                items += frame["items"]
            assert [i["seq"] for i in items] == seqs
            await assert_quiet(ws)
            await assert_quiet(batched)


def _noise(chars: int) -> str:
    return base64.b64encode(os.urandom(chars * 3 // 4)).decode()


async def test_a_client_that_reads_nothing_is_closed_1001_after_what_was_written(
    server_factory: Callable[..., Server], impl: str
) -> None:
    """The writing side gives up after ``send_timeout`` without progress and closes with 1001
    ("going away: reconnect and resume with after="); the frames already written still arrive
    first, in order, so the client knows where to resume."""
    srv = server_factory(env={"ORCHLOG_WS_IMPL": impl, "ORCHLOG_SEND_TIMEOUT_S": "1"})
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as client:
        _, agents = await make_agents(client, 1)
        ws, sock = await open_stalled_ws(srv, compression=None)
        await until_live(ws)
        acked: list[int] = []
        for start in range(0, 1500, 50):  # ~12 MB: more than the socket buffers hold (send buffers grow to 4 MB)
            acked += await post(client, [agent_item(agents[0], f"{start + i} {_noise(6000)}") for i in range(50)])

        async def gone() -> bool:  # the server let go of the stream (the follower left the hub)
            return (await client.get("/readyz")).json()["subscribers"] == 0

        await wait_until(gone, 15, "the server to give up on the client that reads nothing")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        seqs: list[int] = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frame = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame["type"] == "agent_log":
                    seqs.append(frame["seq"])
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001, closed.value
        assert len(seqs) < len(acked), "the reader was closed before it could have read everything"
        assert seqs == acked[: len(seqs)], "what arrived is a prefix of what was posted, in order"


async def test_a_batched_stream_keeps_its_byte_bound_when_the_hub_hands_events_over(
    server_factory: Callable[..., Server], impl: str
) -> None:
    """Events the hub hands a waiting batched follower (Follower.direct_batch) count against the
    subscriber's byte bound like its inbox: the first frame of a burst larger than the bound
    holds about the bound, not the whole burst, and every event still arrives once and in order
    (the rest through the inbox, or catch-up pages once the inbox overflows)."""
    bound = 256 * 1024
    srv = server_factory(env={"ORCHLOG_WS_IMPL": impl, "ORCHLOG_SUBSCRIBER_QUEUE_BYTES": str(bound)})
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as client:
        _, agents = await make_agents(client, 1)
        async with await open_ws(srv, {"batch": "1"}, compression=None) as ws:
            await until_live(ws)
            seqs = await post(client, [agent_item(agents[0], f"{i} {_noise(40_000)}") for i in range(40)])
            got: list[int] = []
            sizes: list[int] = []
            while len(got) < len(seqs):
                raw = await asyncio.wait_for(ws.recv(), 10)
                frame = orjson.loads(raw)
                if frame["type"] == "events":
                    sizes.append(len(raw))
                    got += [item["seq"] for item in frame["items"]]
            assert got == seqs
            assert sizes[0] <= bound + 45_000, f"a first frame of {sizes[0]} bytes; the bound is {bound}"
