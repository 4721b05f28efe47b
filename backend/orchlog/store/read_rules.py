"""The head-bounded read both stores use for history pages (``read_both`` over a driver's ``Pages``).

Apart from the write rules because it runs on a reader connection, never inside a write
transaction; its one rule (bound every read by the head seq read first) is what keeps a cursor
from skipping a row committed between the two tables' statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .base import StoredEvent


class Pages(Protocol):
    """One read snapshot's statements (a driver's reader connection)."""

    async def head(self) -> int: ...
    async def page(
        self, kind: str, bounds: tuple[int, int | None, int | None], descending: bool, limit: int
    ) -> list[StoredEvent]:
        """Rows of one kind with ``after < seq < before`` and ``seq <= head`` (bounds =
        (head, after, before)), in seq order (descending if asked), at most ``limit``."""
        ...


async def read_both(
    rd: Pages, kinds: Sequence[str], after: int | None, before: int | None, limit: int
) -> tuple[list[StoredEvent], bool]:
    """Matching events ascending by seq and whether more exist in the paging direction.

    The two tables are read by two statements, i.e. two snapshots: a commit between them could
    show a newer row of one table without an older row of the other, and a reader that advanced
    its cursor past it would skip that row forever. So every read is bounded by the head seq
    read FIRST: all rows at or below it were committed with it, so both statements see all of
    them, and nothing above it is returned until the next read.
    """
    head = await rd.head()
    descending = before is not None and after is None
    events: list[StoredEvent] = []
    for kind in kinds:
        events.extend(await rd.page(kind, (head, after, before), descending, limit + 1))
    if len(kinds) > 1:
        events.sort(key=lambda e: e.seq, reverse=descending)
    has_more = len(events) > limit
    events = events[:limit]
    if descending:
        events.reverse()
    return events, has_more
