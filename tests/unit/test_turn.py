"""stream/turn.py: work deferred to the end of the loop's turn, for many objects, in one callback."""

from __future__ import annotations

import asyncio
import logging

import pytest

from orchlog.stream.turn import at_end_of_turn


async def test_deferred_calls_run_after_the_turn_in_order_and_calls_made_meanwhile_join_the_pass() -> None:
    order: list[str] = []
    loop = asyncio.get_running_loop()
    scheduled = 0
    real_call_soon = loop.call_soon

    def counting_call_soon(*args: object, **kw: object) -> asyncio.Handle:
        nonlocal scheduled
        scheduled += 1
        return real_call_soon(*args, **kw)  # type: ignore[arg-type]

    loop.call_soon = counting_call_soon  # type: ignore[method-assign]
    try:
        for name in ("a", "b", "c"):
            at_end_of_turn(lambda name=name: order.append(name))
        at_end_of_turn(lambda: at_end_of_turn(lambda: order.append("joined")))
        order.append("this turn")
        assert scheduled == 1, "one loop callback for every deferred call of the turn"
    finally:
        loop.call_soon = real_call_soon  # type: ignore[method-assign]
    await asyncio.sleep(0)
    assert order == ["this turn", "a", "b", "c", "joined"]


async def test_a_failing_call_is_logged_and_does_not_hold_back_the_others(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[int] = []

    def boom() -> None:
        raise RuntimeError("broken transport")

    at_end_of_turn(lambda: ran.append(1))
    at_end_of_turn(boom)
    at_end_of_turn(lambda: ran.append(2))
    with caplog.at_level(logging.ERROR, logger="orchlog.stream"):
        await asyncio.sleep(0)
    assert ran == [1, 2]
    assert "deferred stream callback failed" in caplog.text
    at_end_of_turn(lambda: ran.append(3))  # the next turn starts a new pass
    await asyncio.sleep(0)
    assert ran == [1, 2, 3]
