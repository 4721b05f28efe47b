"""Work deferred to the end of the event loop's current turn, for many objects at once.

A fan-out hands one event to a thousand streams in one turn of the loop; each stream wants to
act once the turn's events are all in hand (write its frames together, send its batch as one
frame). One ``loop.call_soon`` per stream is a handle and a ready-queue entry each; here the
first caller of a turn schedules ONE callback that runs every deferred call, including calls
deferred while it runs (a stream's batch becoming its socket's write), in the same pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger("orchlog.stream")

_PENDING: dict[asyncio.AbstractEventLoop, list[Callable[[], None]]] = {}


def at_end_of_turn(callback: Callable[[], None]) -> None:
    """Run ``callback`` once the callbacks already due in this turn of the running loop have run."""
    loop = asyncio.get_running_loop()
    pending = _PENDING.get(loop)
    if pending is None:
        pending = _PENDING[loop] = []
        loop.call_soon(_run, loop)
    pending.append(callback)


def _run(loop: asyncio.AbstractEventLoop) -> None:
    pending = _PENDING[loop]
    try:
        index = 0
        while index < len(pending):  # calls deferred meanwhile join this pass
            callback = pending[index]
            index += 1
            try:
                callback()
            except Exception:  # one stream's failure must not hold back the others
                log.exception("a deferred stream callback failed")
    finally:
        del _PENDING[loop]
