"""The Python client `orchlog.client` (issue 4): AsyncClient, Client, EventSender (batching,
idempotent retry, SQLite spool, overflow policy) and OrchlogHandler, against real `orchlog serve`
processes that are killed and restarted on the same port and database where the test says so.

Delivery is always checked by reading the server's history back: every id stored exactly once, in
the order the client was given the events where the contract promises order.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import Server, free_port, history, make_agents, wait_until
from orchlog.client import AsyncClient, Client, EventSender, OrchlogClientError, OrchlogHandler


def restart(server: Server) -> Server:
    """The same database, the same port, a new process."""
    return Server(server.db, *server.args, port=server.port).start()


def system_event(message: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "system_log", "id": str(uuid.uuid4()), "level": "INFO", "message": message, **extra}


async def stored(url: str, **params: Any) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        return await history(c, params)


@pytest.fixture
def closed_url() -> str:
    """A local port where nothing listens (yet)."""
    return f"http://127.0.0.1:{free_port()}"


@contextlib.contextmanager
def quick_close(sender: EventSender) -> Iterator[EventSender]:
    """Stop the sender thread at the end even when the server is down (short flush)."""
    try:
        yield sender
    finally:
        sender.close(timeout=0.5)


def isolated_logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"orchlog-test-{uuid.uuid4().hex[:8]}")
    logger.setLevel(1)
    logger.propagate = False
    logger.addHandler(handler)
    return logger


# ---------------------------------------------------------------- AsyncClient and Client


async def test_async_client_post_and_history(server: Server) -> None:
    """AsyncClient posts agent, system and mixed logs (replies in request order with ids and seqs),
    creates entities, and reads history back in seq order, filtered and paged."""
    async with AsyncClient(server.url) as c:
        orch = await c.create_orchestrator(system_prompt="p", status="idle")
        agent = await c.create_agent(orch["id"], "worker", "test-model")
        assert [a["id"] for a in await c.list_agents()] == [agent["id"]]

        a = await c.post_agent_logs(
            [
                {"agent_id": agent["id"], "event_category": "hook", "event_type": "T", "content": f"a{i}"}
                for i in range(3)
            ]
        )
        s = await c.post_system_logs([{"level": "warning", "message": f"s{i}"} for i in range(2)])
        m = await c.post_events(
            [
                {"kind": "system_log", "message": "m0"},
                {
                    "kind": "agent_log",
                    "agent_id": agent["id"],
                    "event_category": "response",
                    "event_type": "x",
                },
            ]
        )
        assert (a["count"], s["count"], m["count"]) == (3, 2, 2)
        posted = [i["id"] for r in (a, s, m) for i in r["items"]]

        items = [item async for item in c.history()]
        assert [i["data"]["id"] for i in items] == posted
        assert [i["seq"] for i in items] == sorted(i["seq"] for i in items)
        assert [i["kind"] for i in items] == ["agent_log"] * 3 + ["system_log"] * 3 + ["agent_log"]
        assert [i["data"]["level"] for i in items if i["kind"] == "system_log"][:2] == ["WARNING", "WARNING"]

        only_agent = [item async for item in c.history(kind="agent_log")]
        assert [i["data"]["id"] for i in only_agent] == posted[:3] + posted[6:]
        page = await c.events(after=0, limit=2)
        assert len(page["items"]) == 2 and page["has_more"] is True
        rest = [item async for item in c.history(after=page["next_after"])]
        assert [i["data"]["id"] for i in page["items"] + rest] == posted

        with pytest.raises(OrchlogClientError) as info:
            await c.post_system_logs([{"level": "LOUD", "message": "x"}])
        assert info.value.status == 422


async def test_async_follow_exactly_once_across_kill9(server: Server) -> None:
    """`AsyncClient.follow(after=0)` yields every stored event exactly once, in seq order, across a
    kill -9 and restart of the server (same port, same database)."""
    got: list[dict[str, Any]] = []
    restarted: Server | None = None
    async with AsyncClient(server.url) as c:
        await c.post_system_logs([{"message": f"before {i}"} for i in range(25)])

        async def collect() -> None:
            async for event in c.follow(after=0):
                got.append(event)

        task = asyncio.create_task(collect())
        try:
            await wait_until(lambda: len(got) >= 25, 20, "the first 25 events followed")
            await c.post_system_logs([{"message": f"at the crash {i}"} for i in range(25)])
            server.kill9()
            restarted = restart(server)
            async with AsyncClient(restarted.url) as c2:
                await c2.post_system_logs([{"message": f"after {i}"} for i in range(25)])
                sentinel = (await c2.post_system_logs([{"message": "sentinel"}]))["items"][0]["seq"]
            await wait_until(lambda: any(e["seq"] == sentinel for e in got), 30, "the sentinel followed")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if restarted is not None:
                expected = await stored(restarted.url)
                restarted.stop()
    assert len(expected) == 76
    assert [e["seq"] for e in got] == [i["seq"] for i in expected]
    assert [(e["type"], e["data"]) for e in got] == [(i["kind"], i["data"]) for i in expected]


async def test_follow_tail_then_live(server: Server) -> None:
    """`follow(tail=3)` yields the last 3 stored events, then new ones as they are posted, once each."""
    got: list[dict[str, Any]] = []
    async with AsyncClient(server.url) as c:
        await c.post_system_logs([{"message": f"old {i}"} for i in range(10)])

        async def collect() -> None:
            async for event in c.follow(tail=3):
                got.append(event)

        task = asyncio.create_task(collect())
        try:
            await wait_until(lambda: len(got) >= 3, 20, "the last 3 events")
            await c.post_system_logs([{"message": f"new {i}"} for i in range(4)])
            await wait_until(lambda: len(got) >= 7, 20, "the 4 new events")
            (sentinel,) = (await c.post_system_logs([{"message": "end"}]))["items"]
            await wait_until(lambda: got[-1]["seq"] == sentinel["seq"], 20, "the last event")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert [e["data"]["message"] for e in got] == ["old 7", "old 8", "old 9"] + [f"new {i}" for i in range(4)] + ["end"]


def test_sync_client_post_and_events(server: Server, closed_url: str) -> None:
    """The blocking Client posts and reads back the same events; an unreachable server raises
    OrchlogClientError (not an httpx exception)."""
    with Client(server.url) as c:
        orch = c.create_orchestrator(system_prompt="p")
        agent = c.create_agent(orch["id"], "sync-agent", "m")
        r1 = c.post_system_logs([{"level": "error", "message": "sync 1"}])
        r2 = c.post_agent_logs([{"agent_id": agent["id"], "event_category": "hook", "event_type": "T"}])
        r3 = c.post_events([system_event("sync 2")])
        page = c.events(after=0, limit=10)
        assert [i["data"]["id"] for i in page["items"]] == [r["items"][0]["id"] for r in (r1, r2, r3)]
        assert page["items"][0]["data"]["level"] == "ERROR"
        assert [i["seq"] for i in c.history(kind="system_log")] == [
            r1["items"][0]["seq"],
            r3["items"][0]["seq"],
        ]
        assert [a["name"] for a in c.list_agents(name="sync-agent")] == ["sync-agent"]
    with Client(closed_url, timeout=5) as dead, pytest.raises(OrchlogClientError):
        dead.events()


# ---------------------------------------------------------------- EventSender


async def test_sender_retries_after_server_dies_mid_stream(server: Server) -> None:
    """The server is killed -9 while the sender is sending; events keep being logged during the
    outage; after a restart every logged event is stored exactly once (by id)."""
    events = [system_event(f"r{i}") for i in range(3000)]
    restarted: Server | None = None
    sender = EventSender(server.url, batch_size=20, flush_interval=0.05, max_backoff=1.0)
    try:
        for e in events[:1500]:
            sender.submit(e)
        await wait_until(lambda: sender.stats.sent >= 200, 20, "some batches sent")
        server.kill9()  # most likely with a request in flight
        for e in events[1500:]:
            sender.submit(e)
        await wait_until(lambda: sender.stats.retries >= 1, 20, "the sender noticing the outage")
        restarted = restart(server)
        assert sender.flush(timeout=60) is True
        assert sender.stats.dropped == 0 and sender.stats.rejected == 0, sender.stats
        ids = [i["data"]["id"] for i in await stored(restarted.url)]
    finally:
        sender.close(timeout=1)
        if restarted is not None:
            restarted.stop()
    assert len(ids) == len(set(ids)) == 3000
    assert set(ids) == {e["id"] for e in events}


async def test_spool_replays_5000_in_order_exactly_once(tmp_path: Path) -> None:
    """With spool_path, 5,000 events logged while no server runs go to the SQLite spool; when the
    server comes up on that port they all arrive exactly once, in the order they were logged."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    spool = tmp_path / "spool" / "events.db"
    events = [system_event(f"spooled {i}", metadata={"i": i}) for i in range(5000)]
    sender = EventSender(url, spool_path=str(spool), max_backoff=1.0)
    srv: Server | None = None
    try:
        for e in events:
            sender.submit(e)
        await wait_until(lambda: sender.stats.spooled >= 500, 30, "the outage sending events to the spool")
        assert spool.exists()
        assert sender.flush(timeout=0.3) is False  # nothing can be delivered yet

        srv = Server(tmp_path / "orchlog.db", port=port).start()
        assert sender.flush(timeout=60) is True
        assert sender.stats.dropped == 0 and sender.stats.rejected == 0, sender.stats
        items = await stored(url)
    finally:
        sender.close(timeout=1)
        if srv is not None:
            srv.stop()
    assert len(items) == 5000
    assert [i["data"]["id"] for i in items] == [e["id"] for e in events]  # seq order == submit order
    assert [i["data"]["metadata"]["i"] for i in items] == list(range(5000))


async def test_spool_survives_the_sender(tmp_path: Path) -> None:
    """Events still in the spool when a sender is closed during an outage are sent, in order, by the
    next sender that opens the same spool file once the server is up (a restarted agent loses nothing)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    spool = str(tmp_path / "spool.db")
    events = [system_event(f"kept {i}") for i in range(300)]
    first = EventSender(url, spool_path=spool, max_backoff=1.0)
    for e in events:
        first.submit(e)
    await wait_until(lambda: first.stats.spooled >= 300, 20, "300 events spooled")
    first.close(timeout=0.3)

    srv = Server(tmp_path / "orchlog.db", port=port).start()
    try:
        with quick_close(EventSender(url, spool_path=spool, max_backoff=1.0)) as second:
            assert second.flush(timeout=30) is True
        items = await stored(url)
    finally:
        srv.stop()
    assert [i["data"]["id"] for i in items] == [e["id"] for e in events]


async def test_spool_absorbs_an_outage_without_drops(tmp_path: Path, closed_url: str) -> None:
    """While the server is down and the spool has room, nothing is dropped: an agent logging a steady
    1,000 events/s for 3 s through a 1,000-event buffer gets every event into the spool (the overflow
    policy is for when even the spool is full), and all 3,000 arrive in order once the server is up."""
    events = [system_event(f"steady {i}") for i in range(3000)]
    with quick_close(
        EventSender(closed_url, spool_path=str(tmp_path / "spool.db"), max_buffer=1000, max_backoff=2.0)
    ) as sender:
        for start in range(0, 3000, 100):
            for e in events[start : start + 100]:
                sender.submit(e)
            await asyncio.sleep(0.1)  # pacing the producer (1,000 events/s), not waiting for a condition
        assert sender.stats.dropped == 0, f"dropped {sender.stats.dropped} events with a spool that had room"
        port = int(closed_url.rsplit(":", 1)[1])
        srv = Server(tmp_path / "orchlog.db", port=port).start()
        try:
            assert sender.flush(timeout=60) is True
            ids = [i["data"]["id"] for i in await stored(closed_url)]
        finally:
            srv.stop()
    assert ids == [e["id"] for e in events]


async def test_flush_false_while_down_true_after(tmp_path: Path, closed_url: str) -> None:
    """flush() returns False (within its timeout) while the server is unreachable, and True once it is
    back and the events are stored (in-memory buffer, no spool)."""
    events = [system_event(f"f{i}") for i in range(10)]
    with quick_close(EventSender(closed_url, max_backoff=0.5)) as sender:
        for e in events:
            sender.submit(e)
        started = time.monotonic()
        assert sender.flush(timeout=0.5) is False
        assert time.monotonic() - started < 5
        port = int(closed_url.rsplit(":", 1)[1])
        srv = Server(tmp_path / "orchlog.db", port=port).start()
        try:
            assert sender.flush(timeout=30) is True
            items = await stored(closed_url)
        finally:
            srv.stop()
    assert [i["data"]["id"] for i in items] == [e["id"] for e in events]


@pytest.mark.parametrize("policy", ["drop_newest", "drop_oldest"])
async def test_overflow_policy_counts_drops(tmp_path: Path, closed_url: str, policy: str) -> None:
    """With the server down and a 10-event buffer, a burst of 100 events overflows: the policy decides
    which survive (drop_newest keeps the first ones, drop_oldest the last ones), every lost event is
    counted in stats.dropped, and the survivors arrive once the server is up."""
    with quick_close(EventSender(closed_url, max_buffer=10, policy=policy, max_backoff=0.5)) as sender:  # type: ignore[arg-type]
        events = [system_event(f"p{i}") for i in range(101)]
        sender.submit(events[0])
        await wait_until(lambda: sender.stats.retries >= 1, 20, "the first send failing")
        for e in events[1:]:  # the sender is backing off: nothing drains the buffer
            sender.submit(e)
        assert sender.stats.dropped > 0
        port = int(closed_url.rsplit(":", 1)[1])
        srv = Server(tmp_path / "orchlog.db", port=port).start()
        try:
            assert sender.flush(timeout=30) is True
            ids = [i["data"]["id"] for i in await stored(closed_url)]
        finally:
            srv.stop()
        dropped = sender.stats.dropped
    submitted = [e["id"] for e in events]
    assert 0 < len(ids) <= 10
    assert len(ids) + dropped == len(submitted), (len(ids), dropped)
    survivors = [submitted.index(i) for i in ids]
    if policy == "drop_newest":
        assert survivors == list(range(len(ids))), f"drop_newest kept events {survivors} of 0..100"
    else:
        assert survivors == list(range(101 - len(ids), 101)), f"drop_oldest kept events {survivors} of 0..100"


async def test_drop_oldest_applies_when_a_failed_batch_is_requeued(tmp_path: Path, closed_url: str) -> None:
    """policy='drop_oldest', no spool, a 10-event buffer: 15 events logged while the sender gathers its
    batch all fit when submitted; the send fails and the batch goes back into the buffer, where only 10
    fit. The policy must decide here too: the 5 oldest are dropped and counted, the 10 newest arrive."""
    events = [system_event(f"q{i}") for i in range(15)]
    sender = EventSender(closed_url, max_buffer=10, flush_interval=1.5, policy="drop_oldest", max_backoff=0.5)
    with quick_close(sender):
        for e in events:
            sender.submit(e)
            await asyncio.sleep(0.02)  # pacing: the sender takes each event into its batch as it comes
        await wait_until(lambda: sender.stats.retries >= 1, 20, "the batch failing and going back")
        port = int(closed_url.rsplit(":", 1)[1])
        srv = Server(tmp_path / "orchlog.db", port=port).start()
        try:
            assert sender.flush(timeout=30) is True
            ids = [i["data"]["id"] for i in await stored(closed_url)]
        finally:
            srv.stop()
    submitted = [e["id"] for e in events]
    assert len(ids) + sender.stats.dropped == 15, (len(ids), sender.stats)
    survivors = [submitted.index(i) for i in ids]
    assert survivors == list(range(15 - len(ids), 15)), f"drop_oldest kept events {survivors} of 0..14"


# ---------------------------------------------------------------- OrchlogHandler


def test_handler_never_blocks_when_server_is_down(closed_url: str) -> None:
    """Logging 10,000 records through OrchlogHandler while no server answers does not hold up the
    application: the whole loop takes well under 5 s and no single emit takes a second."""
    sender = EventSender(closed_url, max_backoff=1.0)
    handler = OrchlogHandler(sender=sender)
    logger = isolated_logger(handler)
    slowest = 0.0
    started = time.monotonic()
    try:
        for i in range(10_000):
            t0 = time.perf_counter()
            logger.info("record %d", i, extra={"i": i})
            slowest = max(slowest, time.perf_counter() - t0)
        total = time.monotonic() - started
        assert sender.stats.queued + sender.stats.dropped >= 10_000
    finally:
        logger.removeHandler(handler)
        closing = time.monotonic()
        sender.close(timeout=0.5)
        handler.close()
        close_took = time.monotonic() - closing
    assert total < 5.0, f"10,000 emits took {total:.2f}s with the server down"
    assert slowest < 1.0, f"one emit blocked for {slowest:.2f}s"
    assert close_took < 8.0, f"close(timeout=0.5) took {close_took:.2f}s"


async def test_handler_block_policy_waits_at_most_block_timeout(closed_url: str) -> None:
    """Even with policy='block' and a full buffer, an emit waits at most about block_timeout, then
    the record is dropped and counted (the application is never stuck)."""
    sender = EventSender(closed_url, policy="block", block_timeout=0.05, max_buffer=3, max_backoff=1.0)
    handler = OrchlogHandler(sender=sender)
    logger = isolated_logger(handler)
    slowest = 0.0
    try:
        logger.warning("first")
        await wait_until(lambda: sender.stats.retries >= 1, 20, "the sender backing off")
        for i in range(12):
            t0 = time.perf_counter()
            logger.warning("w %d", i)
            slowest = max(slowest, time.perf_counter() - t0)
        assert sender.stats.dropped > 0
    finally:
        logger.removeHandler(handler)
        sender.close(timeout=0.3)
        handler.close()
    assert slowest < 1.0, f"one emit blocked for {slowest:.2f}s (block_timeout=0.05)"


class Unserializable:
    def __repr__(self) -> str:
        return "<Unserializable>"


async def test_handler_maps_levels_and_extra_into_metadata(server: Server) -> None:
    """OrchlogHandler turns records into system logs: levels mapped (custom numbers to the level at
    or below), message formatted, `extra` fields (non-JSON ones as repr) into metadata with the
    logger name, exceptions kept; a broken record never raises into the application."""
    handler = OrchlogHandler(server.url)
    logger = isolated_logger(handler)
    try:
        logger.debug("d %s", 1)
        logger.info("i")
        logger.warning("w", extra={"request_id": "r-9", "n": 3, "obj": Unserializable()})
        logger.error("e")
        logger.critical("c")
        logger.log(25, "custom 25")
        logger.log(5, "custom 5")
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            logger.exception("boom")
        printed = io.StringIO()
        with contextlib.redirect_stderr(printed):
            logger.info("%d", "not a number")  # must not raise
        assert "Logging error" in printed.getvalue()
        logger.info("after the broken one")
        assert handler.sender.flush(timeout=30) is True
    finally:
        logger.removeHandler(handler)
        handler.close()
    items = await stored(server.url, kind="system_log")
    got = {i["data"]["message"]: i["data"] for i in items}
    assert {m: d["level"] for m, d in got.items()} == {
        "d 1": "DEBUG",
        "i": "INFO",
        "w": "WARNING",
        "e": "ERROR",
        "c": "CRITICAL",
        "custom 25": "INFO",
        "custom 5": "DEBUG",
        "boom": "ERROR",
        "after the broken one": "INFO",
    }
    meta = got["w"]["metadata"]
    assert meta["request_id"] == "r-9" and meta["n"] == 3 and meta["obj"] == "<Unserializable>"
    assert meta["logger"] == logger.name
    assert got["w"]["file_path"] == __file__
    assert "ZeroDivisionError" in got["boom"]["metadata"]["exception"]
    assert [i["data"]["message"] for i in items][-1] == "after the broken one"


async def test_handler_with_agent_id_writes_agent_logs(server: Server) -> None:
    """With agent_id, records become that agent's logs: level mapped, message as content, `extra` in
    payload, the configured event_type."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        _, (agent,) = await make_agents(c, 1)
    handler = OrchlogHandler(server.url, agent_id=agent, event_type="py-log")
    logger = isolated_logger(handler)
    try:
        logger.warning("careful at step %d", 2, extra={"step": 2, "tool": "Bash"})
        logger.info("fine")
        assert handler.sender.flush(timeout=30) is True
    finally:
        logger.removeHandler(handler)
        handler.close()
    items = await stored(server.url)
    assert [i["kind"] for i in items] == ["agent_log", "agent_log"]
    first, second = (i["data"] for i in items)
    assert first["agent_id"] == agent
    assert (first["content"], first["level"], first["event_type"]) == (
        "careful at step 2",
        "WARNING",
        "py-log",
    )
    assert first["payload"]["step"] == 2 and first["payload"]["tool"] == "Bash"
    assert (second["content"], second["level"]) == ("fine", "INFO")
