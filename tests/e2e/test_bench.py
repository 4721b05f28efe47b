"""The ingest benchmark's own parts (bench/ingest.py, bench/naive.py, bench/prefill.py): the
baselines must store what they ack, or the ratios orchlog is judged by mean nothing."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import httpx

from orchlog.bench.common import free_port
from orchlog.bench.fanout import run_fanout, table_row
from orchlog.bench.ingest import _process, bench_raw, parse_rows
from orchlog.bench.prefill import prefill


def test_rows_option_reads_suffixes() -> None:
    assert parse_rows("0,1M,5m") == (0, 1_000_000, 5_000_000)
    assert parse_rows("250k") == (250_000,)


def test_prefill_sets_the_head_and_the_fulltext_state(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    prefill(db, 2500, batch=1000)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*), max(seq) FROM agent_logs").fetchone() == (2500, 2500)
        assert conn.execute("SELECT last_seq FROM stream_meta").fetchone()[0] == 2500
        assert conn.execute("SELECT upto FROM fts_state").fetchone()[0] == 2500
        ids = [row[0] for row in conn.execute("SELECT id FROM agent_logs ORDER BY seq LIMIT 2")]
        assert all(ident[14] == "7" for ident in ids), ids  # UUIDv7
    finally:
        conn.close()


def test_naive_app_stores_every_event_it_acks(tmp_path: Path) -> None:
    db = tmp_path / "naive.db"
    agent = prefill(db, 0)
    port = free_port()
    body = [{"agent_id": agent, "event_category": "hook", "event_type": "t", "content": str(i)} for i in range(7)]
    with _process([sys.executable, "-m", "orchlog.bench.naive", str(db), str(port)], port):
        for _ in range(3):
            r = httpx.post(f"http://127.0.0.1:{port}/api/v1/agent-logs", json=body, timeout=10)
            assert r.status_code == 201 and r.json() == {"count": 7}
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM agent_logs").fetchone()[0] == 21
    finally:
        conn.close()


def test_raw_baseline_reports_rate_and_cpu() -> None:
    result = bench_raw([(1, 10, 200)])[(1, 10)]
    assert result["events_per_s"] > 0 and result["cpu_us_per_event"] > 0
    assert len(result["runs_events_per_s"]) == 3


def test_fanout_bench_counts_every_delivery_and_the_servers_cpu_per_delivery() -> None:
    """Subscribers in their own process; the server's CPU comes from /proc (issue 21)."""
    row = run_fanout(3, 100, 0.5, False)
    assert row["delivered"] == row["expected"] > 0
    assert row["server_cpu_us_per_delivery"] > 0
    assert table_row(row).startswith("| 3 subscribers, 100 ev/s, single-event frames |")
