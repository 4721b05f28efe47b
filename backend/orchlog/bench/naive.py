"""The baseline app: orchestrator_3_stream's write pattern served over HTTP, nothing more.

``python -m orchlog.bench.naive DB PORT`` serves ``POST /api/v1/agent-logs`` with a minimal
Starlette endpoint that parses the body, inserts each event with its own awaited aiosqlite
INSERT (as the seed app does) and COMMITs once per request, into the same schema orchlog uses,
and replies 201.
No validation, auth, metrics or fan-out: what orchlog is measured against.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..ids import new_id
from ..models import now_ts
from ..store.rules import AGENT_COLS
from ..store.sqlite import insert_sql

_SQL = insert_sql("agent_logs", AGENT_COLS[1:])  # the seed app lets the database number rows


def _row(item: dict[str, Any]) -> tuple[Any, ...]:
    return (
        new_id(),
        item["agent_id"],
        item.get("session_id"),
        item.get("task_slug"),
        item.get("adw_id"),
        item.get("adw_step"),
        item.get("entry_index"),
        item["event_category"],
        item["event_type"],
        item.get("level", "INFO"),
        item.get("content"),
        orjson.dumps(item.get("payload", {})).decode(),
        item.get("summary"),
        now_ts(),
    )


def app(db_path: str) -> Starlette:
    state: dict[str, aiosqlite.Connection] = {}
    lock = asyncio.Lock()

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        conn = await aiosqlite.connect(db_path)
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        state["db"] = conn
        yield
        await conn.close()

    async def post(request: Request) -> Response:
        body = orjson.loads(await request.body())
        rows = [_row(it) for it in (body if isinstance(body, list) else [body])]
        async with lock:  # one request's inserts + COMMIT at a time on the one connection
            for row in rows:  # the seed app awaits one INSERT per event
                await state["db"].execute(_SQL, row)
            await state["db"].commit()
        return Response(orjson.dumps({"count": len(rows)}), status_code=201, media_type="application/json")

    return Starlette(routes=[Route("/api/v1/agent-logs", post, methods=["POST"])], lifespan=lifespan)


if __name__ == "__main__":
    uvicorn.run(app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
