"""Exactly-once resume under load (issue 3, "Tests that must exist").

Concurrent HTTP posters write 20,000 events in batches of 1-50 while 20 WebSocket subscribers with
random filters drop their connection at random points (half a clean close, half a TCP abort) and
come back with ``after=<last seq received>``. Each must end with exactly the seqs history returns
for its filter: in order, no gap, no duplicate. Seeded: set ORCHLOG_TEST_SEED to replay a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from helpers import Server, make_agents
from helpers.stream import KINDS, agent_item, matching, open_ws, seq_diff, system_item

TOTAL_EVENTS = 20_000
POSTERS = 4
SUBSCRIBERS = 20
MAX_BATCH = 50
MAX_RECONNECTS = 25
IDLE_LIMIT = 20.0  # seconds without a frame before a subscriber gives up (a hang, not a pass)
DEADLINE = 90.0
SEED = int(os.environ.get("ORCHLOG_TEST_SEED", "20250603"))

FILTERS: list[Callable[[list[str]], dict[str, str]]] = [
    lambda a: {},
    lambda a: {"kind": "agent_log"},
    lambda a: {"kind": "system_log"},
    lambda a: {"agent_id": a[1]},
    lambda a: {"agent_id": f"{a[0]},{a[2]}"},
    lambda a: {"min_level": "WARNING"},
    lambda a: {"kind": "agent_log", "min_level": "ERROR"},
    lambda a: {"agent_id": a[3], "min_level": "WARNING"},
    lambda a: {"event_type": "PostToolUse"},
    lambda a: {"level": "DEBUG", "kind": "system_log"},
]


def random_event(agents: list[str], rng: random.Random, n: int) -> dict[str, Any]:
    level = rng.choices(("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), weights=(20, 50, 15, 10, 5))[0]
    if rng.random() < 0.7:
        return agent_item(
            rng.choice(agents),
            f"event {n}",
            level=level,
            event_type=rng.choice(("PreToolUse", "PostToolUse", "text", "thinking")),
        )
    return system_item(f"event {n}", level)


@dataclass
class Subscriber:
    server: Server
    index: int
    params: dict[str, str]
    rng: random.Random
    target: asyncio.Future[int]
    got: list[tuple[int, str, str]] = field(default_factory=list)  # (seq, kind, id)
    last: int = 0
    connects: int = 0
    clean_closes: int = 0
    aborts: int = 0
    protocol_errors: list[str] = field(default_factory=list)

    def done(self) -> bool:
        return self.target.done() and self.last >= self.target.result()

    async def run(self) -> None:
        while not self.done():
            if self.connects < MAX_RECONNECTS:
                await self._session(self.rng.randint(0, 500), self.rng.uniform(0.05, 1.5))
            else:
                await self._session(None, None)

    async def _session(self, budget: int | None, seconds: float | None) -> None:
        """One connection: resume after ``last``; drop it after ``budget`` events or ``seconds``
        (whichever comes first; None: read to the end)."""
        ws = await open_ws(self.server, {**self.params, "after": self.last})
        self.connects += 1
        received = 0
        idle = 0.0
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds if seconds is not None else None
        try:
            first = True
            while not self.done() and (budget is None or received < budget):
                if until is not None and loop.time() >= until:
                    break
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.25)
                except TimeoutError:
                    idle += 0.25
                    if idle > IDLE_LIMIT:
                        raise AssertionError(
                            f"subscriber {self.index} {self.params}: no frame for {IDLE_LIMIT}s at seq "
                            f"{self.last}, target {self.target.result() if self.target.done() else '?'}"
                        ) from None
                    continue
                idle = 0.0
                frame = orjson.loads(raw)
                kind = frame["type"]
                if first:
                    first = False
                    if kind != "hello" or frame.get("after") != self.last:
                        self.protocol_errors.append(f"first frame {frame} for after={self.last}")
                    continue
                if kind in KINDS:
                    seq = frame["seq"]
                    if frame["data"]["seq"] != seq:
                        self.protocol_errors.append(f"frame seq {seq} carries row seq {frame['data']['seq']}")
                    self.got.append((seq, kind, frame["data"]["id"]))
                    self.last = seq
                    received += 1
                elif kind not in ("live", "heartbeat", "agent"):
                    self.protocol_errors.append(f"unexpected frame {frame}")
        finally:
            if self.rng.random() < 0.5:
                await close_draining(ws)
                self.clean_closes += 1
            else:
                ws.transport.abort()
                self.aborts += 1


async def close_draining(ws: ClientConnection) -> None:
    """A clean close that keeps reading (and dropping) what was in flight, as a browser does:
    the server's close reply queues behind those frames, and a client that stops reading would
    wait for it until its close timeout."""
    closing = asyncio.create_task(ws.close())
    with contextlib.suppress(ConnectionClosed):
        while True:
            await ws.recv()
    await closing


async def poster(client: httpx.AsyncClient, agents: list[str], rng: random.Random, budget: list[int]) -> list[int]:
    """Post random batches until the shared budget is spent; every ack is a 201 with one seq per item."""
    acked: list[int] = []
    while budget[0] > 0:
        size = min(rng.randint(1, MAX_BATCH), budget[0])
        budget[0] -= size
        batch = [random_event(agents, rng, budget[0] + i) for i in range(size)]
        r = await client.post("/api/v1/events", json=batch)
        assert r.status_code == 201, f"{r.status_code} {r.text[:300]}"
        seqs = [item["seq"] for item in r.json()["items"]]
        assert len(seqs) == size
        acked.extend(seqs)
    return acked


@pytest.mark.serial  # CPU-heavy / timing-bound: runs alone, after the parallel pass
async def test_exactly_once_resume_under_load(server: Server, client: httpx.AsyncClient) -> None:
    """20 subscribers that keep dropping and resuming each receive exactly their filter's history."""
    rng = random.Random(SEED)
    _, agents = await make_agents(client, 4)
    loop = asyncio.get_running_loop()
    # each subscriber learns its last matching seq once posting is over
    targets: list[asyncio.Future[int]] = [loop.create_future() for _ in range(SUBSCRIBERS)]
    subs = [
        Subscriber(server, i, FILTERS[i % len(FILTERS)](agents), random.Random(rng.random()), targets[i])
        for i in range(SUBSCRIBERS)
    ]
    sub_tasks = [asyncio.create_task(s.run(), name=f"sub-{s.index}") for s in subs]
    budget = [TOTAL_EVENTS]
    try:
        async with asyncio.timeout(DEADLINE):
            acks = await asyncio.gather(
                *(poster(client, agents, random.Random(rng.random()), budget) for _ in range(POSTERS))
            )
            expected: dict[str, list[dict]] = {}
            for s in subs:
                key = orjson.dumps(s.params, option=orjson.OPT_SORT_KEYS).decode()
                if key not in expected:
                    expected[key] = await matching(client, s.params)
                want = expected[key]
                s.target.set_result(want[-1]["seq"] if want else 0)
            await asyncio.gather(*sub_tasks)
    finally:
        for task in sub_tasks:
            task.cancel()
        await asyncio.gather(*sub_tasks, return_exceptions=True)

    all_acked = sorted(seq for batch in acks for seq in batch)
    assert len(all_acked) == TOTAL_EVENTS
    assert len(set(all_acked)) == TOTAL_EVENTS, "an ack seq was given twice"
    assert all_acked == [i["seq"] for i in await matching(client)], "acks and history disagree"

    failures = []
    for s in subs:
        key = orjson.dumps(s.params, option=orjson.OPT_SORT_KEYS).decode()
        want = [(i["seq"], i["kind"], i["data"]["id"]) for i in expected[key]]
        if s.got != want or s.protocol_errors:
            failures.append(
                f"subscriber {s.index} {s.params} after {s.connects} connections: "
                f"{seq_diff([g[0] for g in s.got], [w[0] for w in want])}; "
                f"rows differ: {s.got != want}; protocol errors: {s.protocol_errors[:3]}"
            )
    assert not failures, f"seed {SEED}:\n" + "\n".join(failures)

    connects = sum(s.connects for s in subs)
    clean = sum(s.clean_closes for s in subs)
    aborts = sum(s.aborts for s in subs)
    assert connects >= SUBSCRIBERS * 3, f"too few reconnections to mean anything: {connects}"
    assert clean >= 10 and aborts >= 10, f"both ways of dropping must be exercised: {clean} clean, {aborts} aborts"
