"""`orchlog backup` refuses what would surprise: a missing folder, an existing file (unless --force)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from helpers import orchlog_cli


def _db(tmp_path: Path) -> Path:
    db = tmp_path / "o.db"
    assert orchlog_cli("migrate", "--db", str(db)).returncode == 0
    return db


def test_backup_into_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    """No traceback: exit 1 naming the folder, nothing written."""
    db = _db(tmp_path)
    dest = tmp_path / "nope" / "copy.db"
    done = orchlog_cli("backup", str(dest), "--db", str(db))
    assert done.returncode == 1, done
    assert str(dest.parent) in done.stderr and "does not exist" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not dest.parent.exists()


def test_backup_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    """An existing DEST is kept byte for byte without --force; --force replaces it with a valid copy."""
    db = _db(tmp_path)
    dest = tmp_path / "copy.db"
    dest.write_bytes(b"precious")
    done = orchlog_cli("backup", str(dest), "--db", str(db))
    assert done.returncode == 1 and "--force" in done.stderr and str(dest) in done.stderr, done
    assert dest.read_bytes() == b"precious"
    forced = orchlog_cli("backup", str(dest), "--db", str(db), "--force")
    assert forced.returncode == 0 and "integrity_check ok" in forced.stdout, forced
    conn = sqlite3.connect(dest)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 1
    finally:
        conn.close()


async def test_a_backup_in_many_steps_reports_progress_and_is_one_consistent_snapshot(tmp_path: Path) -> None:
    """Copied a few pages per step while posters write: progress rises to the total, and the copy
    is still one snapshot (seqs 1..k without holes, stream_meta agreeing)."""
    import asyncio

    import httpx

    from helpers import Server, wait_until
    from orchlog.store.backup import backup_database

    srv = Server(tmp_path / "live.db").start()
    stop = asyncio.Event()
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=30) as c:

            async def poster() -> None:
                while not stop.is_set():
                    r = await c.post("/api/v1/system-logs", json=[{"message": "x" * 500} for _ in range(20)])
                    assert r.status_code == 201

            async def head(at_least: int) -> bool:
                return int((await c.get("/api/v1/events", params={"limit": 1})).json()["head_seq"]) >= at_least

            task = asyncio.create_task(poster())
            await wait_until(lambda: head(2000), 30, "2000 events before the backup")
            seen: list[tuple[int, int]] = []
            dest = tmp_path / "copy.db"
            pages = await asyncio.to_thread(
                backup_database, str(srv.db), str(dest), lambda done, total: seen.append((done, total)), step_pages=8
            )
            stop.set()
            await task
    finally:
        srv.stop()
    assert len(seen) > 5 and seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == sorted(d for d, _ in seen)
    conn = sqlite3.connect(dest)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert int(conn.execute("PRAGMA page_count").fetchone()[0]) == pages
        seqs = [row[0] for row in conn.execute("SELECT seq FROM system_logs ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 2000
        assert conn.execute("SELECT last_seq FROM stream_meta").fetchone()[0] == seqs[-1]
    finally:
        conn.close()
