"""The write rules every store shares (store/rules.py), checked in-process on both stores.

A real store and a real Writer on a throwaway SQLite file or PostgreSQL database; nothing mocked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from helpers.pg import needs_pg
from orchlog.config import Settings
from orchlog.errors import ValidationFailed
from orchlog.filters import EventFilter
from orchlog.models import AgentCreate, AgentLogIn, OrchestratorAgentCreate, SystemLogIn
from orchlog.retention import Policy, enforce
from orchlog.store import open_store
from orchlog.store.base import CreateAgent, CreateOrchestrator, InsertLogs, Store
from orchlog.writer import Writer

NOW = "2099-01-01T00:00:00.000000Z"  # "recent": after any age cutoff computed today
OLD = "2000-01-01T00:00:00.000000Z"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=needs_pg)])
async def writer(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Store, Writer]]:
    url = str(tmp_path / "rules.db") if request.param == "sqlite" else request.getfixturevalue("pg_db")
    store = open_store(Settings(db=url))
    await store.open()
    w = Writer(store, queue_max=100, max_batch_events=5000)
    w.head_seq = await store.head_seq()
    w.start()
    try:
        yield store, w
    finally:
        await w.stop()
        await store.close()


def system(message: str, timestamp: str = NOW, **extra: Any) -> SystemLogIn:
    return SystemLogIn.model_validate({"message": message, "timestamp": timestamp, **extra})


async def messages(store: Store) -> list[str]:
    events, _ = await store.read_events(EventFilter(), after=0, limit=10_000)
    return [str(e.data["message"]) for e in events]


async def test_age_retention_deletes_exactly_the_rows_older_than_the_age(writer: tuple[Store, Writer]) -> None:
    """One event with an old client timestamp (a replayed spool) must not drag the 100 recent
    events after it into the deletion: only rows whose own timestamp is older go, and the floor
    rises to the highest deleted seq (every deleted seq is at or below it)."""
    store, w = writer
    await w.submit(InsertLogs([system(f"new {i}") for i in range(100)]))
    acks = await w.submit(InsertLogs([system("old spool", OLD)]))
    deleted = await enforce(w, [Policy("system_logs", "1d", None)])
    assert deleted == {"system_logs": 1}
    assert await messages(store) == [f"new {i}" for i in range(100)]
    assert (await store.meta()).floor_seq == acks[0].seq


async def test_age_retention_in_small_chunks_takes_every_old_row(writer: tuple[Store, Writer]) -> None:
    """Old rows scattered among recent ones, deleted in chunks of 3 through the writer: every old
    row goes, no recent one does, and the floor is the highest deleted seq."""
    store, w = writer
    items = [system(f"old {i}" if i % 4 == 1 else f"new {i}", OLD if i % 4 == 1 else NOW) for i in range(30)]
    acks = await w.submit(InsertLogs(items))
    deleted = await enforce(w, [Policy("system_logs", "1d", None)], chunk=3)
    old_seqs = [a.seq for a, it in zip(acks, items, strict=True) if it.message.startswith("old")]
    assert deleted == {"system_logs": len(old_seqs)}
    assert await messages(store) == [it.message for it in items if it.message.startswith("new")]
    assert (await store.meta()).floor_seq == max(old_seqs)


async def test_row_retention_keeps_the_newest_rows(writer: tuple[Store, Writer]) -> None:
    store, w = writer
    acks = await w.submit(InsertLogs([system(f"m {i}") for i in range(20)]))
    deleted = await enforce(w, [Policy("system_logs", None, 5)], chunk=4)
    assert deleted == {"system_logs": 15}
    assert await messages(store) == [f"m {i}" for i in range(15, 20)]
    assert (await store.meta()).floor_seq == acks[14].seq


async def test_an_id_is_unique_across_agent_and_system_logs(writer: tuple[Store, Writer]) -> None:
    """An id stored as an agent log cannot be stored again as a system log (or the reverse):
    422 naming the item and the field; the same id of the same kind stays a duplicate."""
    store, w = writer
    orch = await w.submit(CreateOrchestrator(OrchestratorAgentCreate()))
    agent = await w.submit(CreateAgent(AgentCreate(orchestrator_agent_id=orch["id"], name="a", model="m")))
    log = AgentLogIn.model_validate({"agent_id": agent["id"], "event_category": "hook", "event_type": "t"})
    first = await w.submit(InsertLogs([log]))
    with pytest.raises(ValidationFailed) as refused:
        await w.submit(InsertLogs([system("same id", id=log.id)]))
    assert refused.value.details[0]["field"] == "id" and refused.value.details[0]["index"] == 0
    # a retry sends the id it was acked with (the server looks up only ids a client chose)
    retry = AgentLogIn.model_validate({**log.model_dump(), "id": log.id})
    again = await w.submit(InsertLogs([retry]))
    assert again[0].duplicate and again[0].seq == first[0].seq
    sys_log = system("a system log")
    await w.submit(InsertLogs([sys_log]))
    clash = AgentLogIn.model_validate(
        {"id": sys_log.id, "agent_id": agent["id"], "event_category": "hook", "event_type": "t"}
    )
    with pytest.raises(ValidationFailed):
        await w.submit(InsertLogs([system("fine"), clash]))
    events, _ = await store.read_events(EventFilter(), after=0, limit=100)
    assert [e.kind for e in events] == ["agent_log", "system_log"]


async def test_an_op_that_fails_after_writing_fails_alone_in_its_batch(writer: tuple[Store, Writer]) -> None:
    """A batch runs without savepoints; an op refused by the database after it wrote (a unique
    session_id) makes the batch run again with one savepoint per op: that op gets its 422, the
    ops around it commit, and their seqs stay gapless."""
    store, _w = writer
    taken = await store.write_batch([CreateOrchestrator(OrchestratorAgentCreate(session_id="s-1"))])
    assert not isinstance(taken.results[0], BaseException)
    head = await store.head_seq()
    result = await store.write_batch(
        [
            InsertLogs([system("before")]),
            CreateOrchestrator(OrchestratorAgentCreate(session_id="s-1")),
            InsertLogs([system("after 1"), system("after 2")]),
        ]
    )
    before, clash, after = result.results
    assert isinstance(clash, ValidationFailed) and clash.details[0]["field"] == "session_id", clash
    assert [a.seq for a in before + after] == [head + 1, head + 2, head + 3]
    assert result.head_seq == head + 3
    assert await messages(store) == ["before", "after 1", "after 2"]
