"""The benchmarks' own parts (bench/ingest.py, naive.py, prefill.py, fanout.py, qfilter.py,
replay.py): the baselines must store what they ack and every case must count what it claims, or
the ratios orchlog is judged by mean nothing. The live-path cases run here in tiny sizes."""

from __future__ import annotations

import random
import sqlite3
import sys
from pathlib import Path

import httpx

from orchlog.bench.common import free_port
from orchlog.bench.fanout import run_fanout, table_row
from orchlog.bench.ingest import _process, bench_raw, parse_rows
from orchlog.bench.prefill import prefill
from orchlog.bench.qfilter import run_qfilter
from orchlog.bench.replay import _dechunk, catchup
from orchlog.bench.run import issue_table


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
    """Subscribers in their own processes (two here: their counts add up); the server's CPU comes
    from /proc (issue 21)."""
    row = run_fanout(3, 100, 0.5, False, processes=2)
    assert row["delivered"] == row["expected"] > 0 and row["client_processes"] == 2
    assert row["server_cpu_us_per_delivery"] > 0 and row["client_cpu"] > 0
    assert row["timed"] == row["delivered"]  # 3 subscribers: every message is timed
    assert table_row(row).startswith("| 3 subscribers, 100 ev/s, single-event frames |")


def test_fanout_bench_lean_client_counts_what_the_websockets_client_counts() -> None:
    """The lean client (bench/wsclient.py) is checked against the ``websockets`` library's."""
    ws, lean = (run_fanout(2, 200, 0.3, True, client=client) for client in ("websockets", "lean"))
    assert (ws["client"], lean["client"]) == ("websockets", "lean")
    for row in (ws, lean):  # two runs post a little differently: each counts exactly its own
        assert row["delivered"] == row["expected"] > 0
        assert row["timed"] == row["delivered"]  # every message of 2 subscribers is timed


def test_qfilter_bench_measures_ingest_and_healthz_with_and_without_subscribers() -> None:
    """Non-matching ``q`` subscribers stay attached and get nothing; both phases are rated (issue 21)."""
    row = run_qfilter(5, 300, repeat=1, cap_s=60)
    assert row["attached"] == 5 and row["matched"] == 0 and not row["capped"]
    assert row["without_events_per_s"] > 0 and row["with_events_per_s"] > 0
    assert row["x_without"] == round(row["with_events_per_s"] / row["without_events_per_s"], 2)
    for key in ("without_healthz_p50_ms", "without_healthz_p99_ms", "with_healthz_p50_ms", "with_healthz_p99_ms"):
        assert row[key] > 0, key
    assert row["healthz_samples"] >= 1 and row["healthz_not_ok"] == 0
    table = issue_table([row])
    assert "| 5 subscribers with 5 distinct non-matching `q` filters | ingest " in table
    assert f"= {row['x_without']}x of" in table


def test_catchup_bench_replays_every_event_over_ws_and_sse() -> None:
    """The SSE figure sits next to the WS ones, in the record and in the table (issue 21)."""
    row = catchup(1500, repeat=1)
    assert row["batched_events_per_s"] > 0 and row["single_events_per_s"] > 0 and row["sse_events_per_s"] > 0
    assert row["sse_server_us_per_event"] > 0
    assert row["x_sse_single"] == round(row["sse_events_per_s"] / row["single_events_per_s"], 2)
    lines = issue_table([row]).splitlines()
    assert len(lines) == 5 and "over SSE" in lines[-1] and f"{row['sse_events_per_s']:,} ev/s" in lines[-1]


def test_sse_dechunking_joins_chunks_split_anywhere() -> None:
    """The SSE reader's chunked decoder: the same body whatever the read boundaries."""
    parts = [b"retry: 2000\n\n", b"event: agent_log\nid: 1\ndata: {}\n\n" * 3, b"x" * 300]
    wire = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    rng = random.Random(21)
    for _ in range(50):
        raw, body, ended, pos = bytearray(), bytearray(), False, 0
        while not ended:
            assert pos < len(wire), "the last chunk was never seen"
            step = rng.randint(1, 40)
            raw += wire[pos : pos + step]
            pos += step
            ended = _dechunk(raw, body)
        assert bytes(body) == b"".join(parts)


def test_bench_directories_are_removed_when_the_bench_exits() -> None:
    """A full ingest run writes gigabytes (5M-row prefills); none of it outlives the process."""
    import subprocess

    code = "from orchlog.bench.common import tmpdir; d = tmpdir(); (d / 'x.db').write_bytes(b'x'); print(d)"
    made = Path(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip())
    assert made.name.startswith("orchlog-bench-") and not made.exists()
