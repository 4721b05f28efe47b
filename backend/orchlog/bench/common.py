"""Shared plumbing for the benchmarks: a real server process, stats, result records."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    """``orchlog serve`` in a subprocess on a fresh database (what users run)."""

    db: Path | str  # a SQLite path or a postgresql:// URL
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHLOG_")}
        env.update({"ORCHLOG_LOG_LEVEL": "warning", **self.env})
        cmd = [sys.executable, "-m", "orchlog", "serve", "--db", str(self.db), "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.__exit__()  # a server that never answered is not left running
        raise RuntimeError(f"orchlog serve --db {self.db} did not become healthy within 30 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def rss_kb(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


_MADE: list[Path] = []


def tmpdir() -> Path:
    """A fresh directory for a benchmark's files, removed when the bench exits: a full ingest run
    writes gigabytes (a 5M-row prefill is 3.4 GB), and every run used to leave them in /tmp."""
    path = Path(tempfile.mkdtemp(prefix="orchlog-bench-"))
    _MADE.append(path)
    return path


def remove_tmpdir(path: Path) -> None:
    """Give a finished case's space back now rather than at exit."""
    shutil.rmtree(path, ignore_errors=True)
    if path in _MADE:
        _MADE.remove(path)


@atexit.register
def _remove_tmpdirs() -> None:
    for path in list(_MADE):
        remove_tmpdir(path)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(values: list[float]) -> dict[str, float]:
    """Median and spread (min to max) over repeated runs."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def record(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, **fields}
