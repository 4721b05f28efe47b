"""`orchlog backup` refuses what would surprise: a missing folder, an existing file (unless --force)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import orchlog_cli


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
