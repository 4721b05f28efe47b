"""Reading request bodies safely: content type first, size checked while reading, then parsing.

A body over the limit is refused as soon as the declared length or the bytes read so far pass
it (413), before it is buffered. JSON and NDJSON syntax errors are 400s that say where.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from ..config import Limits
from ..errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

JSON_TYPES = ("application/json", "text/json")
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines")


def media_type(request: Request) -> str:
    """The body's media type; none given is ``""`` and refused (415): a body without a type is
    what a foreign page can send cross-site without a CORS preflight, so it is never JSON."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_bytes(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
        if size > max_bytes:
            raise PayloadTooLarge(f"body of {size} bytes is over the {max_bytes}-byte limit; send smaller batches")
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > max_bytes:
                raise PayloadTooLarge(f"body is over the {max_bytes}-byte limit; send smaller batches")
            chunks.append(chunk)
    except ClientDisconnect:
        # the client went away mid-body: its mistake (or its network's), not a server error
        raise BadRequest(f"the client disconnected after {total} bytes of the body; nothing was stored") from None
    return b"".join(chunks)


def _syntax(exc: orjson.JSONDecodeError, where: str) -> BadRequest:
    return BadRequest(
        f"malformed JSON{where} at line {exc.lineno}, column {exc.colno}: {exc.msg}",
        details=[{"line": exc.lineno, "column": exc.colno, "message": exc.msg}],
    )


async def read_items(request: Request, limits: Limits) -> tuple[list[Any], bool]:
    """The posted items and whether the body was one bare object (not an array / NDJSON)."""
    kind = media_type(request)
    if kind not in JSON_TYPES and kind not in NDJSON_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {kind!r} is not supported; send application/json (an object or an array) "
            "or application/x-ndjson (one object per line)"
        )
    raw = await read_bytes(request, limits.max_body_bytes)
    if kind in NDJSON_TYPES:
        items: list[Any] = []
        for number, line in enumerate(raw.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise BadRequest(
                    f"malformed NDJSON on line {number}: {exc.msg}",
                    details=[{"line": number, "message": exc.msg}],
                ) from None
        single = False
    else:
        if not raw.strip():
            raise BadRequest("the body is empty; send a JSON object or array")
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _syntax(exc, "") from None
        single = not isinstance(parsed, list)
        items = [parsed] if single else parsed
    if not items:
        raise BadRequest("no items in the body; send at least one event")
    return items, single
