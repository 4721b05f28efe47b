"""What one event costs the hub (issue 16, "fan-out runs on the event loop with no bound").

The index evaluates each distinct filter once per event and only where it can match (by kind, by
agent id); the hub gives the event loop back between slices of fan-out work, so /healthz, ingest
and sends keep running while 2,000 subscribers' filters are evaluated.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchlog.config import Settings
from orchlog.filters import MATCH_ALL, EventFilter
from orchlog.runtime import Runtime
from orchlog.store.base import StoredEvent
from orchlog.stream.hub import Subscription
from orchlog.stream.index import SubscriptionIndex

A, B = str(uuid.uuid4()), str(uuid.uuid4())


def sub(**params: list[str]) -> Subscription:
    return Subscription(EventFilter.from_params(params), max_events=10, max_bytes=10_000)


def test_identical_filters_share_one_group_and_the_index_narrows_by_kind_and_agent() -> None:
    index: SubscriptionIndex[Subscription] = SubscriptionIndex()
    everything = [Subscription(MATCH_ALL, max_events=10, max_bytes=10_000) for _ in range(3)]
    same_q = [sub(q=["needle"]) for _ in range(500)]
    systems = sub(kind=["system_log"])
    for_a = [sub(agent_id=[A]) for _ in range(2)]
    for_b = sub(agent_id=[B], kind=["agent_log"])
    for s in [*everything, *same_q, systems, *for_a, for_b]:
        index.add(s)
    assert len(index) == 3 + 500 + 1 + 2 + 1
    assert index.filters == 5  # MATCH_ALL, q=needle, kind=system_log, agent A, agent B

    def groups(kind: str, agent: str | None = None, text: str = "") -> set[EventFilter]:
        row = {"agent_id": agent, "content": text, "message": text} if agent else {"message": text}
        return {flt for flt, _ in index.candidates(kind, row)}

    assert groups("agent_log", A) == {MATCH_ALL, for_a[0].filter}
    assert groups("agent_log", A, "a NEEDLE here") == {MATCH_ALL, same_q[0].filter, for_a[0].filter}
    assert groups("agent_log", B, "needles") == {MATCH_ALL, same_q[0].filter, for_b.filter}
    assert groups("system_log", text="needle") == {MATCH_ALL, same_q[0].filter, systems.filter}
    assert groups("system_log", text="need le") == {MATCH_ALL, systems.filter}
    for s in for_a:
        index.discard(s)
    assert groups("agent_log", A, "needle") == {MATCH_ALL, same_q[0].filter}
    assert index.filters == 4 and len(index) == 505
    for s in same_q:
        index.discard(s)
    assert groups("agent_log", A, "needle") == {MATCH_ALL}  # the automaton forgot the word


def test_each_distinct_q_is_found_in_one_scan_of_the_event() -> None:
    """1,000 different words: an event is checked against the filters whose word it contains
    (and the filter's own match decides, in the field where the word must be)."""
    index: SubscriptionIndex[Subscription] = SubscriptionIndex()
    words = [sub(q=[f"word-{i}"]) for i in range(1000)]
    for s in words:
        index.add(s)
    row = {"content": "has word-7 and WORD-99", "summary": "word-123", "event_type": "x"}
    found = {flt.q for flt, _ in index.candidates("agent_log", row)}
    assert found >= {"word-7", "word-99", "word-123"}
    assert found <= {f"word-{i}" for i in (7, 99, 123, 1, 12, 9)}  # prefixes of those words also occur
    matched = {flt.q for flt, _ in index.candidates("agent_log", row) if flt.matches("agent_log", row)}
    assert matched == {"word-7", "word-99", "word-123", "word-1", "word-12", "word-9"}
    assert not index.candidates("system_log", {"message": "nothing here"})


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = Runtime(Settings(db=str(tmp_path / "orchlog.db"), maintenance_interval_s=3600))
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def test_fan_out_gives_the_loop_back_while_it_works(rt: Runtime) -> None:
    for i in range(2000):  # distinct filters the index cannot narrow (adw_id): each is evaluated per event
        rt.hub.subscribe(EventFilter.from_params({"adw_id": [f"nomatch-{i}"]}))
    matching = rt.hub.subscribe(EventFilter.from_params({"q": ["row 7"]}))
    rows = [
        StoredEvent("system_log", seq, {"message": f"row {seq}", "level": "INFO", "timestamp": "2026-01-01T00:00:00Z"})
        for seq in range(1, 301)
    ]
    ticks, gaps = 0, []
    last = time.perf_counter()

    async def ticker() -> None:
        nonlocal ticks, last
        while True:
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last, ticks = now, ticks + 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.perf_counter()
    try:
        await rt.hub._fan_out(rows)
    finally:
        task.cancel()
    took = time.perf_counter() - started
    assert [e.seq for e in matching.events] == [7, *range(70, 80)]  # "row 7", "row 70".."row 79"
    assert rt.hub.cursor == 300
    # the loop ran many times during the fan-out (a synchronous fan-out would give it none)
    assert ticks >= 5, f"the loop ran {ticks} times in {took:.2f}s of fan-out (longest gap {max(gaps, default=0):.3f}s)"


def test_the_word_automaton_is_rebuilt_only_when_the_words_change() -> None:
    """A client that overflows and rejoins (unsubscribe + subscribe) with a word others already
    use must not make the next event rebuild the automaton of every word."""
    index: SubscriptionIndex[Subscription] = SubscriptionIndex()
    first, second = sub(q=["needle"]), sub(q=["needle"])
    index.add(first)
    assert index.candidates("system_log", {"message": "a needle"})
    built = index._automaton
    index.add(second)
    index.discard(first)
    index.add(first)
    assert index._automaton is built
    assert index.candidates("system_log", {"message": "needle"}) and index._automaton is built
    index.add(sub(q=["thread"]))
    assert index._automaton is None  # a new word
