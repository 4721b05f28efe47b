"""The throwaway PostgreSQL databases the two-store tests use (``ORCHLOG_TEST_PG_URL``)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

PG_URL = os.environ.get("ORCHLOG_TEST_PG_URL", "")
needs_pg = pytest.mark.skipif(not PG_URL, reason="PostgreSQL half skipped: set ORCHLOG_TEST_PG_URL (.ci/run does)")


def _pg_admin(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    # on its own thread: callers may be inside a running event loop (async fixtures)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture
def pg_db() -> Iterator[str]:
    """A throwaway database on the test PostgreSQL server; its URL."""
    name = f"orchlog_t_{uuid.uuid4().hex[:10]}"
    _pg_admin(f"CREATE DATABASE {name}")
    base = PG_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
