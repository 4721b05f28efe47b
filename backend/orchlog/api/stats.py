"""GET /api/v1/stats/volume: matching events per level over time, counted by the store in SQL.

The dashboard's histogram: it must count every stored event the filter selects, not only the
ones a page happens to hold. Same filters (and the same agent binding) as history."""

from __future__ import annotations

from starlette.requests import Request

from .. import volume
from ..filters import EventFilter, parse_int
from .responses import JSON, query_lists, runtime
from .security import principal_of


async def get_volume(request: Request) -> JSON:
    rt = runtime(request)
    flt = principal_of(request).restrict(EventFilter.from_params(query_lists(request), fulltext=True))
    bucket_s = parse_int("bucket", request.query_params.get("bucket"), minimum=1, maximum=volume.MAX_BUCKET_S)
    if flt.fts:
        await rt.index_fulltext()  # as history: a search counts every committed event
    first = last = None
    if flt.since is None or flt.until is None:
        first, last = await rt.store.time_span(flt)
    plan = volume.plan(flt.since, flt.until, first, last, bucket_s)
    counts = await rt.store.volume(flt, plan.bucket_s) if plan.count else {}
    return JSON(volume.reply(plan, counts))
