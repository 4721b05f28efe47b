"""Slow consumer (issue 3, "Tests that must exist").

One subscriber stops reading (tiny receive buffer, client queue of one frame) while ~10 MB of
events are posted. The others keep receiving everything in order meanwhile, the poster never
gets a 503, the server's memory stays bounded (the slow one's backlog is not buffered for it:
its small queue overflows and it later catches up from the database), and when the slow one
reads again it gets every event, in order, exactly once, on the same connection.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import Callable

import httpx

from helpers import Server, make_agents
from helpers.stream import (
    agent_item,
    assert_quiet,
    open_stalled_ws,
    open_ws,
    recv_events,
    seq_diff,
    until_live,
    vm_rss_kb,
)

EVENTS = 2_500
BATCH = 25
CONTENT = 4_000
FAST = 10
MAX_GROWTH_KB = 200 * 1024


def noise(chars: int) -> str:
    """Incompressible text: with repetitive content permessage-deflate would shrink ~10 MB of
    frames to a few hundred KB that socket buffers absorb, and nobody would ever be slow."""
    return base64.b64encode(os.urandom(chars * 3 // 4)).decode()


async def test_slow_consumer_does_not_hold_back_others_and_catches_up(
    server_factory: Callable[..., Server],
) -> None:
    """Ten readers get all 2,500 events while one does not read; no 503; bounded memory;
    then the slow one gets all of them, once each, in order."""
    srv = server_factory(
        env={
            "ORCHLOG_SUBSCRIBER_QUEUE_EVENTS": "100",
            # the slow reader is paused on purpose; it must not be closed as unreachable meanwhile
            "ORCHLOG_SEND_TIMEOUT_S": "120",
        }
    )
    assert srv.proc is not None
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as client:
        _, agents = await make_agents(client, 2)

        slow, sock = await open_stalled_ws(srv)
        await until_live(slow)

        fast = [await open_ws(srv) for _ in range(FAST)]
        for ws in fast:
            await until_live(ws)
        readers = [asyncio.create_task(recv_events(ws, EVENTS, within=30)) for ws in fast]

        rss_before = vm_rss_kb(srv.proc.pid)
        acked: list[int] = []
        statuses: list[int] = []
        for start in range(0, EVENTS, BATCH):
            batch = [agent_item(agents[i % 2], f"{start + i:06d} {noise(CONTENT)}") for i in range(BATCH)]
            r = await client.post("/api/v1/events", json=batch)
            statuses.append(r.status_code)
            assert r.status_code == 201, f"poster got {r.status_code} {r.text[:300]}"
            acked.extend(item["seq"] for item in r.json()["items"])
        assert statuses == [201] * (EVENTS // BATCH)
        assert acked == sorted(acked) and len(set(acked)) == EVENTS

        got_fast = await asyncio.wait_for(asyncio.gather(*readers), 90)
        for i, frames in enumerate(got_fast):
            seqs = [f["seq"] for f in frames]
            assert seqs == acked, f"fast reader {i}: {seq_diff(seqs, acked)}"
        rss_after = vm_rss_kb(srv.proc.pid)
        assert rss_after - rss_before < MAX_GROWTH_KB, (
            f"server RSS grew {(rss_after - rss_before) // 1024} MB while one reader was stalled"
        )

        # the slow reader now reads (and may use a normal window)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        frames = await recv_events(slow, EVENTS, within=30)
        seqs = [f["seq"] for f in frames]
        assert seqs == acked, f"slow reader: {seq_diff(seqs, acked)}"
        assert all(len(f["data"]["content"]) > CONTENT for f in frames)
        await assert_quiet(slow)

        for ws in [*fast, slow]:
            await ws.close()
