"""The test PostgreSQL server (``ORCHLOG_TEST_PG_URL``, set by .ci/run): throwaway databases."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

PG_URL = os.environ.get("ORCHLOG_TEST_PG_URL", "")
needs_pg = pytest.mark.skipif(not PG_URL, reason="PostgreSQL half skipped: set ORCHLOG_TEST_PG_URL (.ci/run does)")


def pg_admin(sql: str) -> None:
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


@contextmanager
def throwaway_database() -> Iterator[str]:
    """A new database on the test server, dropped afterwards; yields its URL."""
    name = f"orchlog_t_{uuid.uuid4().hex[:10]}"
    pg_admin(f"CREATE DATABASE {name}")
    base = PG_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
