"""The fan-out benchmark's lean client against a real server: every posted event is counted exactly
once per subscriber, over single-event and batched frames, and the sampled messages are timed."""

from __future__ import annotations

import httpx

from helpers import Server
from helpers.wait import wait_until
from orchlog.bench.fanout import _setup, post_timed
from orchlog.bench.wsclient import Tally, close_all, open_subscribers


async def test_lean_subscribers_count_exactly_the_posted_events(server: Server, client: httpx.AsyncClient) -> None:
    agent = await _setup(server.url)
    single, batched = Tally(sample_every=1), Tally(sample_every=2)
    subs = await open_subscribers(server.ws + "/api/v1/stream", 3, single)
    subs += await open_subscribers(server.ws + "/api/v1/stream?batch=1", 3, batched)
    try:
        posted = 0
        for size in (1, 7, 40):
            r = await post_timed(client, agent, size)
            assert r.status_code == 201, r.text
            posted += size
        await wait_until(lambda: single.delivered >= 3 * posted and batched.delivered >= 3 * posted, 10, "deliveries")
        assert (single.delivered, batched.delivered) == (3 * posted, 3 * posted)
        assert len(single.latencies) == 3 * posted  # every message timed: one event each
        assert 0 < len(batched.latencies) <= 3 * posted and all(0 < x < 10 for x in batched.latencies)
    finally:
        await close_all(subs)
    assert all(s.closed.done() for s in subs)
