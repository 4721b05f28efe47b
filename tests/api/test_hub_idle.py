"""The hub's poll for other processes' commits (issue 21, idle CPU).

With nobody subscribed the hub only has to keep its cursor near the head, so it checks
``PRAGMA data_version`` rarely (the local writer still wakes it at once); the first subscriber
brings back the normal rate, so cross-process tailing stays prompt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from helpers import wait_until
from orchlog.config import Settings
from orchlog.filters import MATCH_ALL
from orchlog.models import SystemLogIn
from orchlog.runtime import Runtime
from orchlog.store.base import InsertLogs


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = Runtime(Settings(db=str(tmp_path / "orchlog.db"), maintenance_interval_s=3600, poll_interval_ms=5))
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def polls_during(rt: Runtime, seconds: float) -> int:
    before = rt.hub.polls
    await asyncio.sleep(seconds)  # a measuring window, not a wait for something to happen
    return rt.hub.polls - before


async def test_no_subscribers_polls_rarely_and_the_first_subscriber_restores_the_rate(rt: Runtime) -> None:
    idle = await polls_during(rt, 0.6)
    assert idle <= 5, f"{idle} data_version polls in 0.6 s with nobody listening (5 ms would be ~120)"
    sub = rt.hub.subscribe(MATCH_ALL)
    try:
        busy = await polls_during(rt, 0.3)
    finally:
        rt.hub.unsubscribe(sub)
    assert busy >= 10, f"only {busy} polls in 0.3 s with a subscriber (want the 5 ms rate)"


async def test_commits_by_another_writer_reach_a_new_subscriber_without_an_announce(
    rt: Runtime, tmp_path: Path
) -> None:
    """The other runtime's writer never calls ``rt.hub.announce``: only ``rt``'s poll sees it."""
    other = Runtime(Settings(db=str(tmp_path / "orchlog.db"), maintenance_interval_s=3600))
    await other.start()
    try:
        await polls_during(rt, 0.05)  # rt's hub now sits in an idle (slow) poll
        sub = rt.hub.subscribe(MATCH_ALL)
        try:
            started = time.monotonic()
            await other.writer.submit(InsertLogs([SystemLogIn.model_validate({"message": "from elsewhere"})]))
            await wait_until(lambda: sub.events, 5, "the other writer's event offered to rt's subscriber")
            took = time.monotonic() - started
            assert [e.data["message"] for e in sub.events] == ["from elsewhere"]
            assert took < 0.2, f"{took:.3f}s: the subscriber waited for the idle poll"
        finally:
            rt.hub.unsubscribe(sub)
    finally:
        await other.stop()
