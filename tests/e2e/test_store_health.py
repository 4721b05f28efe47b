"""The database file as the server's ground truth: losing it, or running out of quota, shows.

Real `orchlog serve` processes over real SQLite files. A file deleted or replaced under a running
server used to keep answering 201 (to an unlinked inode, gone after a restart) with /readyz
ready; a full disk quota answered 503 to writes while /readyz said ready.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import httpx

from helpers import Server, wait_until


async def test_deleted_database_file_refuses_writes_and_is_not_ready(tmp_path: Path) -> None:
    srv = Server(tmp_path / "gone.db").start()
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=20) as c:
            assert (await c.post("/api/v1/system-logs", json={"message": "kept"})).status_code == 201
            assert (await c.get("/readyz")).status_code == 200
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(f"{srv.db}{suffix}"):  # noqa: ASYNC240 - a test step, not server code
                    os.remove(f"{srv.db}{suffix}")
            for _ in range(3):
                r = await c.post("/api/v1/system-logs", json={"message": "would vanish"})
                assert r.status_code == 503, r.text
                assert "deleted" in r.json()["error"]["message"]
            ready = await c.get("/readyz")
            assert ready.status_code == 503
            assert any("deleted" in p for p in ready.json()["problems"])
        assert srv.log_text().count("was deleted while the server was running") == 1, srv.log_text()[-3000:]
    finally:
        srv.stop()


async def test_replaced_database_file_refuses_writes(tmp_path: Path) -> None:
    srv = Server(tmp_path / "swap.db").start()
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=20) as c:
            assert (await c.post("/api/v1/system-logs", json={"message": "kept"})).status_code == 201
            other = tmp_path / "other.db"
            sqlite3.connect(other).close()
            os.replace(other, srv.db)
            r = await c.post("/api/v1/system-logs", json={"message": "would vanish"})
            assert r.status_code == 503 and "replaced" in r.json()["error"]["message"], r.text
            assert (await c.get("/readyz")).status_code == 503
    finally:
        srv.stop()


async def test_readyz_is_not_ready_while_the_disk_quota_is_full(tmp_path: Path) -> None:
    """Writes answer 503 for space, and so does /readyz, until rows are deleted: then ready again."""
    srv = Server(tmp_path / "full.db", env={"ORCHLOG_MAX_DB_PAGES": "60"}).start()
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=20) as c:
            for i in range(400):
                batch = [{"message": f"fill {i}.{j} " + "x" * 2000} for j in range(5)]
                r = await c.post("/api/v1/system-logs", json=batch)
                if r.status_code == 503:
                    break
                assert r.status_code == 201, r.text
            else:
                raise AssertionError("the database never filled up")
            ready = await c.get("/readyz")
            assert ready.status_code == 503, ready.text
            assert any("full" in p for p in ready.json()["problems"])
            conn = sqlite3.connect(srv.db, isolation_level=None)
            try:
                conn.execute("DELETE FROM system_logs WHERE seq IN (SELECT seq FROM system_logs LIMIT 100)")
            finally:
                conn.close()

            async def ready_again() -> bool:
                return (await c.get("/readyz")).status_code == 200

            await wait_until(ready_again, 10, "/readyz ready once space was freed")
    finally:
        srv.stop()
