"""The single group-commit writer (issue 2, scope 4), in-process over a real SQLite file.

A real `SqliteStore` and a real `orchlog.writer.Writer`; nothing mocked. Stalls are made the way
they happen in production: another connection holding the database's write lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from helpers import wait_until
from orchlog.config import Settings
from orchlog.errors import Overloaded, ValidationFailed
from orchlog.filters import EventFilter
from orchlog.models import AgentCreate, AgentLogIn, OrchestratorAgentCreate, SystemLogIn
from orchlog.store.base import CreateAgent, CreateOrchestrator, InsertLogs
from orchlog.store.sqlite import SqliteStore
from orchlog.writer import Writer


class Setup:
    def __init__(self, path: str, store: SqliteStore, writer: Writer, agent: str) -> None:
        self.path = path
        self.store = store
        self.writer = writer
        self.agent = agent


async def open_writer(path: str, *, queue_max: int = 100, **settings: Any) -> tuple[SqliteStore, Writer]:
    store = SqliteStore(path, Settings(db=path, **settings))
    await store.open()
    writer = Writer(store, queue_max=queue_max, max_batch_events=5000)
    writer.head_seq = await store.head_seq()
    writer.start()
    return store, writer


async def close_writer(store: SqliteStore, writer: Writer) -> None:
    await writer.stop()
    await store.close()


async def new_agent(writer: Writer) -> str:
    orch = await writer.submit(CreateOrchestrator(OrchestratorAgentCreate()))
    agent = await writer.submit(
        CreateAgent(AgentCreate(orchestrator_agent_id=orch["id"], name=f"w-{uuid.uuid4().hex[:6]}", model="m"))
    )
    return str(agent["id"])


def agent_logs(agent: str, n: int, tag: str) -> InsertLogs:
    return InsertLogs(
        [
            AgentLogIn.model_validate(
                {"agent_id": agent, "event_category": "hook", "event_type": "t", "content": f"{tag} {i}"}
            )
            for i in range(n)
        ]
    )


def system_logs(n: int, tag: str) -> InsertLogs:
    return InsertLogs([SystemLogIn.model_validate({"message": f"{tag} {i}"}) for i in range(n)])


async def all_events(store: SqliteStore) -> list[Any]:
    events, has_more = await store.read_events(EventFilter(), after=0, limit=100_000)
    assert not has_more
    return events


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    path = str(tmp_path / "w.db")
    store, writer = await open_writer(path, busy_timeout_ms=20_000, queue_max=3)
    try:
        yield Setup(path, store, writer, await new_agent(writer))
    finally:
        await close_writer(store, writer)


async def test_concurrent_ops_share_one_batch_and_a_bad_op_fails_alone(setup: Setup) -> None:
    """Ops submitted together are committed as ONE batch (one transaction); the op naming an unknown
    agent fails alone with a 422-type error naming its index and `agent_id`, the others commit, and
    the failed op leaves no seq hole."""
    store, head = setup.store, await setup.store.head_seq()
    writer = Writer(store, queue_max=100, max_batch_events=5000)
    writer.head_seq = head
    writer.start()
    try:
        batches_before = writer.stats.batches
        bad = InsertLogs([*agent_logs(setup.agent, 2, "bad-ok").items, *agent_logs(str(uuid.uuid4()), 1, "bad").items])
        ops = [
            agent_logs(setup.agent, 3, "a"),
            system_logs(2, "b"),
            bad,
            agent_logs(setup.agent, 4, "c"),
            system_logs(1, "d"),
        ]
        results = await asyncio.gather(*(writer.submit(op) for op in ops), return_exceptions=True)
        assert writer.stats.batches - batches_before == 1, "the ops were not group-committed in one batch"
        assert writer.stats.last_batch_ops == len(ops)

        error = results[2]
        assert isinstance(error, ValidationFailed), error
        assert error.details and error.details[0]["index"] == 2 and error.details[0]["field"] == "agent_id"

        good = [r for i, r in enumerate(results) if i != 2]
        seqs = [ack.seq for acks in good for ack in acks]
        assert seqs == list(range(head + 1, head + 11)), "seqs of the committed ops are not head+1..head+10"
        stored = await all_events(store)
        contents = {e.data.get("content") or e.data.get("message") for e in stored}
        assert {"a 0", "b 1", "c 3", "d 0"} <= contents
        assert not {"bad-ok 0", "bad-ok 1", "bad 0"} & contents, "an item of the failed op was stored"
        assert await store.head_seq() == head + 10 == writer.head_seq
    finally:
        await writer.stop()


async def test_full_queue_is_refused_at_once_then_queued_work_commits(setup: Setup) -> None:
    """With the writer stalled on a lock held by another connection and the queue full, submit()
    raises Overloaded immediately (with a retry delay); once the lock is released every queued
    op commits, in order."""
    writer, store = setup.writer, setup.store
    head = await store.head_seq()
    blocker = sqlite3.connect(setup.path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        first = asyncio.ensure_future(writer.submit(system_logs(1, "stalled")))
        await asyncio.sleep(0)  # a yield: the task runs submit() up to its put (no timed wait)
        assert writer.depth in (0, 1)
        await wait_until(lambda: writer.depth == 0, 5, "the writer to take the first op")
        assert not first.done()
        queued = [asyncio.ensure_future(writer.submit(system_logs(1, f"queued{i}"))) for i in range(3)]
        await wait_until(lambda: writer.depth == 3, 5, "three ops waiting in the queue")

        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(Overloaded) as refused:
            await asyncio.wait_for(writer.submit(system_logs(1, "refused")), timeout=2)
        assert loop.time() - started < 1, "a full queue must refuse at once, not wait"
        assert refused.value.retry_after > 0
        assert refused.value.status == 503
        assert not first.done() and not any(q.done() for q in queued)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    acks = [await asyncio.wait_for(f, 20) for f in (first, *queued)]
    assert [a[0].seq for a in acks] == [head + 1, head + 2, head + 3, head + 4]
    messages = [e.data["message"] for e in await all_events(store) if e.kind == "system_log"]
    assert messages[-4:] == ["stalled 0", "queued0 0", "queued1 0", "queued2 0"]
    assert "refused 0" not in messages
    assert writer.alive


async def test_writer_survives_a_failing_op(setup: Setup) -> None:
    """After an op fails (unknown agent), the writer keeps committing later ops."""
    with pytest.raises(ValidationFailed):
        await setup.writer.submit(agent_logs(str(uuid.uuid4()), 1, "x"))
    acks = await setup.writer.submit(agent_logs(setup.agent, 1, "later"))
    assert acks[0].seq == await setup.store.head_seq()
    assert setup.writer.alive


async def test_seq_continues_after_restart(tmp_path: Path) -> None:
    """Close and reopen the store: head_seq and the epoch are unchanged and the next event gets
    head+1 — even when the newest rows were deleted meanwhile (a seq is never reused)."""
    path = str(tmp_path / "r.db")
    store, writer = await open_writer(path)
    agent = await new_agent(writer)
    await writer.submit(agent_logs(agent, 5, "one"))
    await writer.submit(system_logs(3, "two"))
    head = await store.head_seq()
    epoch = (await store.meta()).epoch
    assert head == 8
    await close_writer(store, writer)

    store, writer = await open_writer(path)
    try:
        assert await store.head_seq() == head
        assert (await store.meta()).epoch == epoch
        acks = await writer.submit(agent_logs(agent, 2, "three"))
        assert [a.seq for a in acks] == [head + 1, head + 2]
    finally:
        await close_writer(store, writer)

    raw = sqlite3.connect(path, isolation_level=None)
    try:
        raw.execute("DELETE FROM agent_logs WHERE seq > ?", (head,))
    finally:
        raw.close()
    store, writer = await open_writer(path)
    try:
        assert await store.head_seq() == head + 2
        acks = await writer.submit(system_logs(1, "four"))
        assert acks[0].seq == head + 3, "a seq of deleted rows was reused"
    finally:
        await close_writer(store, writer)


async def test_stop_commits_what_is_queued(tmp_path: Path) -> None:
    """writer.stop() drains the queue: every op submitted before stop() is committed and acked."""
    path = str(tmp_path / "s.db")
    store, writer = await open_writer(path)
    futures = [asyncio.ensure_future(writer.submit(system_logs(2, f"s{i}"))) for i in range(20)]
    await asyncio.sleep(0)  # let every submit() reach the queue (a yield, not a wait for anything)
    await writer.stop()
    acks = [await f for f in futures]
    assert sorted(a.seq for batch in acks for a in batch) == list(range(1, 41))
    with pytest.raises(Overloaded):
        await writer.submit(system_logs(1, "late"))
    assert len(await all_events(store)) == 40
    await store.close()


@pytest.mark.parametrize("rows", [1, 3, 1024, 1025, 2900])
async def test_a_batch_of_any_size_is_stored_whole_in_order(setup: Setup, rows: int) -> None:
    """A batch is inserted as multi-row statements of power-of-two sizes: every row lands once,
    in seq order, and every text (NUL, quotes, backslashes, non-ASCII) is stored whole."""
    head = await setup.store.head_seq()
    texts = [f'{i} "q" \\ \x00 nul é ✓ 🚀 \u2028' for i in range(rows)]
    payloads = [{"i": i, "s": text, "nested": [{"k": None}, 1.5, True]} for i, text in enumerate(texts)]
    items = [
        AgentLogIn.model_validate(
            {"agent_id": setup.agent, "event_category": "hook", "event_type": "t", "content": text, "payload": p}
        )
        for text, p in zip(texts, payloads, strict=True)
    ]
    acks = await setup.writer.submit(InsertLogs(items))
    assert [a.seq for a in acks] == list(range(head + 1, head + rows + 1))
    conn = sqlite3.connect(setup.path)
    try:
        stored = conn.execute("SELECT seq, id, content, payload FROM agent_logs WHERE seq > ? ORDER BY seq", (head,))
        got = stored.fetchall()
    finally:
        conn.close()
    assert [(seq, ident) for seq, ident, _, _ in got] == [(a.seq, a.id) for a in acks]
    assert [content for _, _, content, _ in got] == texts
    assert [payload for _, _, _, payload in got] == [orjson.dumps(p).decode() for p in payloads]


async def test_a_request_failing_in_a_later_insert_statement_leaves_none_of_its_rows(setup: Setup) -> None:
    """A request of more rows than one statement holds is inserted by several statements; when a
    later one fails in the database (here a trigger refuses the last row), the request's earlier
    rows are rolled back with it, and the request queued beside it commits whole."""
    blocker = sqlite3.connect(setup.path, isolation_level=None)
    try:
        blocker.execute(
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON agent_logs WHEN new.content = 'boom' "
            "BEGIN SELECT RAISE(ABORT, 'boom refused'); END"
        )
    finally:
        blocker.close()
    head = await setup.store.head_seq()
    doomed = InsertLogs([*agent_logs(setup.agent, 1100, "doomed").items, *agent_logs(setup.agent, 1, "x").items])
    doomed.items[-1].content = "boom"
    results = await asyncio.gather(
        setup.writer.submit(doomed), setup.writer.submit(agent_logs(setup.agent, 3, "fine")), return_exceptions=True
    )
    assert isinstance(results[0], ValidationFailed), results[0]
    assert [a.seq for a in results[1]] == [head + 1, head + 2, head + 3]  # type: ignore[union-attr]
    contents = [e.data["content"] for e in await all_events(setup.store) if e.seq > head]
    assert contents == ["fine 0", "fine 1", "fine 2"]
