"""follow() against a real Runtime in-process (real SQLite file, real writer and hub, nothing mocked).

In-process so the interleavings that matter (retention deleting rows between two replay pages, a
reader that does not drain) can be made to happen deterministically instead of by luck.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from orchlog.config import Settings
from orchlog.filters import MATCH_ALL, EventFilter
from orchlog.models import SystemLogIn
from orchlog.runtime import Runtime
from orchlog.store.base import InsertLogs, PruneLogs, StoredEvent
from orchlog.store.sqlite import SqliteStore
from orchlog.stream.follow import FollowConfig, Follower, FollowSpec
from orchlog.stream.hub import Event


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = Runtime(Settings(db=str(tmp_path / "orchlog.db"), maintenance_interval_s=3600))
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def post_system(rt: Runtime, n: int, text: str = "m") -> list[int]:
    acks = await rt.writer.submit(InsertLogs([SystemLogIn(message=f"{text}{i}") for i in range(n)]))
    return [a.seq for a in acks]


def follower(rt: Runtime, flt: EventFilter = MATCH_ALL, *, page: int = 10, **spec: Any) -> Follower:
    return Follower(rt.hub, rt.store, FollowSpec(filter=flt, **spec), FollowConfig(replay_page=page), rt.stopping)


async def test_retention_between_replay_pages_sends_reset_not_a_silent_gap(rt: Runtime) -> None:
    seqs = await post_system(rt, 100)
    frames = follower(rt, after=0).frames()
    try:
        hello = await anext(frames)
        assert hello["type"] == "hello"
        first_page = [await anext(frames) for _ in range(10)]
        assert [f.seq for f in first_page if isinstance(f, Event)] == seqs[:10]
        # the reader sits between two pages while retention deletes the oldest half
        deleted = await rt.writer.submit(PruneLogs("system_logs", before=None, keep_rows=50, chunk=1000))
        assert deleted == 50
        floor = (await rt.store.meta()).floor_seq
        assert floor == seqs[49]
        # the page after it may have been read ahead, before the prune (issue 21): it is whole
        # and in order; the reset comes before the first page read after the prune
        ahead = []
        frame = await anext(frames)
        while isinstance(frame, Event):
            ahead.append(frame.seq)
            frame = await anext(frames)
        assert ahead in ([], seqs[10:20]), ahead
        assert isinstance(frame, dict) and frame["type"] == "reset", f"expected reset before the gap, got {frame}"
        last = ahead[-1] if ahead else seqs[9]
        assert frame["floor_seq"] == floor and frame["after"] == last and frame["reason"] == "below_floor"
        rest = []
        while len(rest) < 50:
            frame = await anext(frames)
            if isinstance(frame, Event):
                rest.append(frame.seq)
        assert rest == seqs[50:]
    finally:
        await frames.aclose()


async def test_age_retention_of_one_old_row_resets_once_and_keeps_the_rows_that_remain(rt: Runtime) -> None:
    before = await post_system(rt, 50)
    old = await rt.writer.submit(InsertLogs([SystemLogIn(message="backfilled", timestamp="2000-01-01T00:00:00Z")]))
    after = await post_system(rt, 30)
    frames = follower(rt, after=0).frames()
    try:
        assert (await anext(frames))["type"] == "hello"
        got = [(await anext(frames)).seq for _ in range(10)]  # type: ignore[union-attr]
        assert await rt.writer.submit(PruneLogs("system_logs", before="2001-01-01T00:00:00Z", keep_rows=None)) == 1
        resets = []
        async for frame in frames:
            if isinstance(frame, Event):
                got.append(frame.seq)
            elif frame["type"] == "reset":
                resets.append(frame)
            elif frame["type"] == "live":
                break
        assert [r["floor_seq"] for r in resets] == [old[0].seq], resets  # told once
        assert got == before + after  # every row that is still there, exactly once
    finally:
        await frames.aclose()


async def test_no_reset_when_nothing_was_pruned(rt: Runtime) -> None:
    seqs = await post_system(rt, 35)
    frames = follower(rt, after=0).frames()
    try:
        got: list[int] = []
        async for frame in frames:
            if isinstance(frame, Event):
                got.append(frame.seq)
            elif frame["type"] == "live":
                break
            else:
                assert frame["type"] == "hello", frame
        assert got == seqs
    finally:
        await frames.aclose()


async def test_nul_in_text_matches_the_same_live_and_on_replay(rt: Runtime) -> None:
    texts = ["abc\x00Needle", "needle", "NEEDLE\x00", "\x00", "x\x00y", "plain", "ne\x00edle", "50%_\\"]
    acks = await rt.writer.submit(InsertLogs([SystemLogIn(message=t, summary=None) for t in texts]))
    by_seq = {a.seq: t for a, t in zip(acks, texts, strict=True)}
    stored, _ = await rt.store.read_events(MATCH_ALL, after=0, limit=100)
    assert [by_seq[e.seq] for e in stored] == texts
    assert [e.data["message"] for e in stored] == texts  # NUL survives the round trip, whole
    for q in ["needle", "NEEDLE", "\x00", "e\x00e", "x\x00y", "dle", "%_", "\\", "plain\x00"]:
        flt = EventFilter.from_params({"q": [q]})
        live = {e.seq for e in stored if flt.matches(e.kind, e.data)}
        replay = {e.seq for e in (await rt.store.read_events(flt, after=0, limit=100))[0]}
        names = sorted(by_seq[s] for s in replay), sorted(by_seq[s] for s in live)
        assert replay == live, f"q={q!r}: replay {names[0]} != live {names[1]}"


class CountingStore(SqliteStore):
    """The real store, recording how many rows each read returned (what a follower holds)."""

    def __init__(self, path: str, settings: Settings) -> None:
        super().__init__(path, settings)
        self.reads: list[int] = []

    async def read_events(self, flt: EventFilter, **kw: Any) -> tuple[list[StoredEvent], bool]:
        events, more = await super().read_events(flt, **kw)
        self.reads.append(len(events))
        return events, more


async def test_tail_replay_reads_pages_as_the_client_pulls(tmp_path: Path) -> None:
    settings = Settings(db=str(tmp_path / "orchlog.db"), maintenance_interval_s=3600)
    store = CountingStore(settings.db, settings)
    runtime = Runtime(settings, store=store)
    await runtime.start()
    try:
        seqs = []
        for _ in range(3):
            seqs += await post_system(runtime, 1000)
        config = FollowConfig(replay_page=100, tail_page=500)
        spec = FollowSpec(filter=MATCH_ALL, tail=2500)
        frames = Follower(runtime.hub, store, spec, config, runtime.stopping).frames()
        try:
            store.reads.clear()
            assert (await anext(frames))["type"] == "hello"
            first = [await anext(frames) for _ in range(10)]
            assert [f.seq for f in first if isinstance(f, Event)] == seqs[500:510]
            # a client that read 10 frames made the server hold at most one page at a time
            assert max(store.reads) <= 500, store.reads
            assert sum(store.reads) <= 2500 + 100, store.reads  # seqs located backwards + one replay page
            rest = []
            async for frame in frames:
                if isinstance(frame, Event):
                    rest.append(frame.seq)
                elif frame["type"] == "live":
                    break
            assert rest == seqs[510:]
        finally:
            await frames.aclose()
    finally:
        await runtime.stop()


async def test_resuming_below_the_floor_resets_then_gets_every_row_that_remains(rt: Runtime) -> None:
    """Age retention deletes one backfilled row with a high seq: the floor jumps past rows that
    still exist. A subscriber resuming below it gets `reset`, then all of those rows (the cursor
    is not moved up to the floor, which would skip them)."""
    early = await post_system(rt, 20)
    await rt.writer.submit(InsertLogs([SystemLogIn(message="backfilled", timestamp="2000-01-01T00:00:00Z")]))
    late = await post_system(rt, 5)
    assert await rt.writer.submit(PruneLogs("system_logs", before="2001-01-01T00:00:00Z", keep_rows=None)) == 1
    floor = (await rt.store.meta()).floor_seq
    assert floor > early[-1]
    frames = follower(rt, after=early[4]).frames()
    try:
        assert (await anext(frames))["type"] == "hello"
        reset = await anext(frames)
        assert isinstance(reset, dict) and reset["type"] == "reset" and reset["reason"] == "below_floor"
        assert reset["after"] == early[4] and reset["floor_seq"] == floor
        got: list[int] = []
        async for frame in frames:
            if isinstance(frame, dict) and frame.get("type") == "live":
                break
            if isinstance(frame, Event):
                got.append(frame.seq)
        assert got == early[5:] + late
    finally:
        await frames.aclose()
