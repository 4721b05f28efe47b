"""JSON responses encoded with orjson (rows carry pre-serialised JSON as ``orjson.Fragment``)."""

from __future__ import annotations

import math
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..errors import OrchlogError
from ..runtime import Runtime
from ..store.base import jsonable


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=jsonable)


def error_response(exc: OrchlogError) -> JSON:
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, (int, float)):
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return JSON(exc.to_dict(), status_code=exc.status, headers=headers)


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def query_lists(request: Request) -> dict[str, list[str]]:
    """Query parameters as name → every value given (repeats kept)."""
    out: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        out.setdefault(key, []).append(value)
    return out
