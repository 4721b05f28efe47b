"""Cross-process tail (issue 3): two ``orchlog serve`` processes on ONE SQLite file.

A server learns about the other's commits from the database itself (``PRAGMA data_version``), so
a subscriber on B sees what was posted to A, exactly once and in order; with writers on both,
seqs stay unique and gapless and both servers stream the same sequence as history.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

import httpx

from helpers import Server, make_agents
from helpers.stream import assert_quiet, matching, mixed, open_ws, post, recv_events, seq_diff, triples, until_live


async def test_events_posted_to_a_reach_a_subscriber_on_b(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """Every event committed through A is streamed by B, once, in seq order, as history has it."""
    db = tmp_path / "shared.db"
    a = server_factory(db=db)
    b = server_factory(db=db)
    async with httpx.AsyncClient(base_url=a.url, timeout=30) as ca, httpx.AsyncClient(base_url=b.url, timeout=30) as cb:
        _, agents = await make_agents(ca, 2)
        await post(ca, mixed(agents, 10, random.Random(40), "before"))
        async with await open_ws(b, {"after": 0}) as ws:
            _, replay, _ = await until_live(ws)
            assert triples(replay) == triples(await matching(cb))
            head = replay[-1]["seq"]
            seqs: list[int] = []
            for i in range(20):
                seqs += await post(ca, mixed(agents, 25, random.Random(41 + i), f"a{i}-"))
            got = await recv_events(ws, len(seqs), within=20)
            assert [f["seq"] for f in got] == seqs, seq_diff([f["seq"] for f in got], seqs)
            assert triples(got) == triples(await matching(cb, after=head))
            await assert_quiet(ws)


async def test_writers_on_both_servers_share_one_gapless_sequence(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """Posters on A and B at once: no seq acked twice; subscribers on both servers stream the
    same gapless sequence as history."""
    db = tmp_path / "shared.db"
    a = server_factory(db=db)
    b = server_factory(db=db)
    async with httpx.AsyncClient(base_url=a.url, timeout=30) as ca, httpx.AsyncClient(base_url=b.url, timeout=30) as cb:
        _, agents = await make_agents(ca, 3)
        subs = [await open_ws(srv, {"after": 0}) for srv in (a, b, a, b)]
        for ws in subs:
            await until_live(ws)

        async def poster(client: httpx.AsyncClient, seed: int) -> list[int]:
            rng = random.Random(seed)
            acked: list[int] = []
            for i in range(30):
                acked += await post(client, mixed(agents, rng.randint(1, 40), rng, f"p{seed}-{i}-"))
            return acked

        acks = await asyncio.gather(poster(ca, 1), poster(cb, 2), poster(ca, 3), poster(cb, 4))
        all_acked = [s for batch in acks for s in batch]
        assert len(all_acked) == len(set(all_acked)), "a seq was acked twice"
        everything = await matching(ca)
        assert sorted(all_acked) == [i["seq"] for i in everything] == list(range(1, len(all_acked) + 1))
        assert everything == await matching(cb), "both servers read the same history"

        for n, ws in enumerate(subs):
            got = await recv_events(ws, len(everything), within=20)
            assert triples(got) == triples(everything), f"subscriber {n}: " + seq_diff(
                [f["seq"] for f in got], [i["seq"] for i in everything]
            )
            await assert_quiet(ws)
            await ws.close()
