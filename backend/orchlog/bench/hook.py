"""``orchlog bench hook``: the wall time of one Claude Code hook run, as Claude Code pays it.

Claude Code waits for a command hook around every tool call, so the figure that matters is the
whole process: interpreter start, imports, spool, HTTP post, exit. Measured with the command
``orchlog hook install`` writes (``PYTHON -m orchlog.hook``), once with a server up (event
stored) and once with nothing listening (event spooled). Targets: median < 100 ms up,
< 150 ms down. The bare interpreter start (``python -c pass``) is the same-run baseline.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from .common import ServerProcess, free_port, percentile, record, tmpdir

TARGET_UP_MS = 100.0
TARGET_DOWN_MS = 150.0


def _payload(step: int) -> str:
    return json.dumps(
        {
            "session_id": "b3nc4000-0000-4000-8000-000000000000",
            "transcript_path": "/tmp/bench.jsonl",
            "cwd": "/tmp",
            "hook_event_name": "PreToolUse",
            "permission_mode": "default",
            "tool_name": "Bash",
            "tool_input": {"command": f"make step-{step}", "description": "bench"},
            "tool_use_id": f"toolu_bench_{step:05d}",
        }
    )


def _time_runs(cmd: list[str], runs: int, env: dict[str, str], stdin: bool = True) -> list[float]:
    times = []
    for step in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, input=_payload(step) if stdin else "", text=True, env=env, capture_output=True, check=False)
        times.append((time.perf_counter() - started) * 1000)
    return times


def _row(name: str, times: list[float], target: float | None) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "runs": len(times),
        "median_ms": round(statistics.median(times), 1),
        "p90_ms": round(percentile(times, 90), 1),
    }
    if target is not None:
        fields["target_ms"] = target
        fields["met"] = fields["median_ms"] < target
    return record(name, **fields)


def main(quick: bool) -> list[dict[str, Any]]:
    runs = 15 if quick else 40
    work = tmpdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHLOG_")}
    env["XDG_CACHE_HOME"] = str(work / "cache")
    baseline = _time_runs([sys.executable, "-c", "pass"], runs, env, stdin=False)
    rows = [_row("hook_baseline_python_start", baseline, None)]
    with ServerProcess(work / "orchlog.db") as server:
        cmd = [sys.executable, "-m", "orchlog.hook", "--url", server.url, "--spool", str(work / "up.db")]
        _time_runs(cmd, 2, env)  # warm the page cache and the server's first request
        rows.append(_row("hook_server_up", _time_runs(cmd, runs, env), TARGET_UP_MS))
    down_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    cmd = [sys.executable, "-m", "orchlog.hook", "--url", down_url, "--spool", str(work / "down.db")]
    rows.append(_row("hook_server_down_spooled", _time_runs(cmd, runs, env), TARGET_DOWN_MS))
    for row in rows:
        print(f"# {row['name']}: median {row['median_ms']} ms (p90 {row['p90_ms']} ms)", flush=True)
    return rows
