"""Log volume over time (``GET /api/v1/stats/volume``): the bucket arithmetic both stores share.

A bucket is ``bucket_s`` seconds aligned to the Unix epoch (bucket ``i`` covers
``[i * bucket_s, (i + 1) * bucket_s)``), so the same event lands in the same bucket on every
refresh however the range moves; the stores count by ``floor(floor(epoch seconds) / bucket_s)``
in integer arithmetic, which is exact in both dialects. Only the counting is the store's (SQL);
the range, the bucket size and the reply's shape are decided here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import BadParameter
from .models import LEVELS, format_ts

MAX_BUCKETS = 500
TARGET_BUCKETS = 120  # what an unsized request gets at most: enough bars for a 1440 px chart
MAX_BUCKET_S = 400 * 366 * 86400  # the whole 1000..9999 range needs ~18 years per bucket at 500
NICE_S = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 90 * 86400, 365 * 86400,
)  # fmt: skip
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def epoch_s(ts: str) -> int:
    """Whole seconds since the epoch, floored, of a canonical timestamp (what the SQL computes)."""
    moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return (moment.replace(microsecond=0) - _EPOCH) // timedelta(seconds=1)


@dataclass(frozen=True)
class Plan:
    """Which buckets a reply lists: indices ``first..last`` inclusive of ``bucket_s`` seconds."""

    bucket_s: int
    first: int
    last: int  # < first: no bucket (an empty range)
    since: str
    until: str

    @property
    def count(self) -> int:
        return max(0, self.last - self.first + 1)


def _span_buckets(since: str, until: str, bucket_s: int) -> tuple[int, int]:
    """Indices of the first and the last bucket touching ``[since, until)``."""
    last_instant = datetime.fromisoformat(until.replace("Z", "+00:00")) - _MICRO
    return epoch_s(since) // bucket_s, epoch_s(format_ts(last_instant)) // bucket_s


def plan(since: str | None, until: str | None, first: str | None, last: str | None, bucket_s: int | None,
         now: datetime | None = None) -> Plan:  # fmt: skip
    """The buckets for a request. Absent ``since``: the earliest matching event; absent ``until``:
    now, or just past the newest matching event if that is later (client clocks run ahead).
    ``bucket_s`` absent: the smallest round size giving at most TARGET_BUCKETS; given, it must
    give at most MAX_BUCKETS (else a 400 naming the smallest that would)."""
    if until is None:
        moment = format_ts(now or datetime.now(UTC))
        if last is not None:
            try:
                after_last = format_ts(datetime.fromisoformat(last.replace("Z", "+00:00")) + _MICRO)
            except OverflowError:  # an event at the last representable instant: its second is the end
                after_last = last
            moment = max(moment, after_last)
        until = moment
    if since is None:
        since = first if first is not None and first < until else until
    if since >= until:
        return Plan(bucket_s or NICE_S[0], 0, -1, since, until)
    span = max(1, epoch_s(until) - epoch_s(since))
    if bucket_s is None:
        wanted = -(-span // TARGET_BUCKETS)
        bucket_s = next((n for n in NICE_S if n >= wanted), wanted)
        while _count(since, until, bucket_s) > TARGET_BUCKETS:  # alignment can add one at each end
            bucket_s = next((n for n in NICE_S if n > bucket_s), bucket_s * 2)
    n = _count(since, until, bucket_s)
    if n > MAX_BUCKETS:
        smallest = -(-span // (MAX_BUCKETS - 1))
        raise BadParameter(
            "bucket", f"{bucket_s} s gives {n} buckets over this range; the limit is {MAX_BUCKETS} (use ≥ {smallest})"
        )
    lo, hi = _span_buckets(since, until, bucket_s)
    return Plan(bucket_s, lo, hi, since, until)


def _count(since: str, until: str, bucket_s: int) -> int:
    lo, hi = _span_buckets(since, until, bucket_s)
    return hi - lo + 1


def reply(p: Plan, counts: Mapping[int, Mapping[str, int]]) -> dict[str, Any]:
    """Every bucket of the plan, empty ones too (a chart needs the gaps), levels in rank order."""
    buckets = []
    for index in range(p.first, p.last + 1):
        found = counts.get(index, {})
        buckets.append(
            {
                "start": format_ts(_EPOCH + timedelta(seconds=index * p.bucket_s)),
                "counts": {lv: found[lv] for lv in LEVELS if found.get(lv)},
            }
        )
    return {"buckets": buckets, "bucket_s": p.bucket_s, "since": p.since, "until": p.until}
