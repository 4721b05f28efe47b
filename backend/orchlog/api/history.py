"""GET /api/v1/events: keyset pages by seq over both log tables, with the stream's filters."""

from __future__ import annotations

from starlette.requests import Request

from ..errors import BadParameter
from ..filters import EventFilter, parse_int
from .responses import JSON, query_lists, runtime
from .security import principal_of

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


async def get_events(request: Request) -> JSON:
    rt = runtime(request)
    params = query_lists(request)
    flt = principal_of(request).restrict(EventFilter.from_params(params, fulltext=True))
    after = parse_int("after", request.query_params.get("after"))
    before = parse_int("before", request.query_params.get("before"))
    limit = parse_int("limit", request.query_params.get("limit"), minimum=1, maximum=MAX_LIMIT) or DEFAULT_LIMIT
    if after is not None and before is not None and before <= after:
        raise BadParameter("before", f"must be greater than after ({after})")
    if flt.fts:
        await rt.index_fulltext()  # a search sees every committed event, indexed or not yet
    events, has_more = await rt.store.read_events(flt, after=after, before=before, limit=limit)
    meta = await rt.store.meta()
    items = [{"kind": e.kind, "seq": e.seq, "data": e.data} for e in events]
    if events:
        next_after = events[-1].seq
    else:
        next_after = after if after is not None else (before - 1 if before is not None else meta.head_seq)
    return JSON(
        {
            "items": items,
            "has_more": has_more,
            "next_after": next_after,
            "next_before": events[0].seq if events else before,
            "head_seq": meta.head_seq,
            "floor_seq": meta.floor_seq,
        }
    )
