"""Real `orchlog serve` processes on free ports, and the CLI run as users run it.

Used by the e2e layer (and by api tests that drive the CLI). Nothing of orchlog is mocked: ``Server``
starts the CLI in a subprocess and waits for ``/healthz``.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx

REPO = Path(__file__).resolve().parents[2]  # the checkout's root (tests/helpers/server.py)


def free_port() -> int:
    """A port that is free now. Under pytest-xdist each worker only takes ports ``p % workers == its index``,
    so two workers never pick the same port for their servers between the probe and the server's bind.

    Candidates are drawn here, not asked of the kernel with ``bind(0)``: Linux hands ``bind(0)``
    odd ports first, so with two workers the one that needs even ports would wait forever."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker) % count if worker.isdigit() else 0
    while True:
        port = random.randrange(20_000, 60_000)
        port -= (port - index) % count
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ORCHLOG_* setting (so the host's config never leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHLOG_")}
    env.update(extra)
    return env


class Server:
    """One `orchlog serve` subprocess."""

    def __init__(self, db: Path, *args: str, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.db = db
        self.port = port or free_port()
        self.own_port = port is None  # chosen here, so start() may choose another if it was taken meanwhile
        self.args = args
        self.env = clean_env(**(env or {}))
        self.env["PYTHONUNBUFFERED"] = "1"
        self.log = db.parent / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def is_up(self, response: httpx.Response) -> bool:
        """What /healthz must answer before start() returns."""
        return response.status_code == 200

    def start(self, timeout: float = 20.0) -> Server:
        for _ in range(3):
            logged = self.log.stat().st_size if self.log.exists() else 0
            try:
                return self._start(timeout)
            except AssertionError:
                # the free port was taken between free_port() and the bind (an outgoing connection's
                # ephemeral port, say): only then, and only for a port chosen here, try another one
                if not (self.own_port and "address already in use" in self.log_text()[logged:]):
                    raise
                self.port = free_port()
                self.log = self.db.parent / f"server-{self.port}.log"
        return self._start(timeout)

    def _start(self, timeout: float) -> Server:
        cmd = [sys.executable, "-m", "orchlog", "serve", "--db", str(self.db), "--port", str(self.port), *self.args]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}: {self.log_text()[-2000:]}")
            try:
                if self.is_up(httpx.get(self.url + "/healthz", timeout=1)):
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not answer /healthz in {timeout}s: {self.log_text()[-2000:]}")
            time.sleep(0.05)  # polling a subprocess's port, with a deadline

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
            return None

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> Server:
        """A new process on the same file, port and flags (after a stop or kill9)."""
        return Server(self.db, *self.args, port=self.port).start()

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


class TokenServer(Server):
    """A `Server` whose start() counts ANY HTTP answer from /healthz as "up" (uvicorn answers only
    after the lifespan started), so servers with tokens configured can be started whatever /healthz
    answers without a token; the security tests assert that answer themselves."""

    def is_up(self, response: httpx.Response) -> bool:
        return True


def start_server(directory: Path, env: dict[str, str] | None = None) -> Server:
    """A started server over a fresh database in `directory` (caller stops it)."""
    directory.mkdir(parents=True, exist_ok=True)
    return Server(directory / "orchlog.db", env=env).start()


def orchlog_cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m orchlog ARGS`` (no ORCHLOG_* settings inherited); output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "orchlog", *args], capture_output=True, text=True, env=clean_env(), timeout=timeout
    )


def create_token(db: Path, name: str, *scopes: str, agents: tuple[str, ...] = ()) -> str:
    """`orchlog token create` as a user runs it; returns the secret it printed on stdout."""
    cmd = ["token", "create", "--db", str(db), "--name", name]
    for scope in scopes:
        cmd += ["--scope", scope]
    for agent in agents:
        cmd += ["--agent", agent]
    done = orchlog_cli(*cmd)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    secret = done.stdout.strip()
    assert secret.startswith("olg_") and "\n" not in secret, done.stdout
    return secret


def role_tokens(db: Path) -> dict[str, str]:
    """One token per scope (``read``, ``ingest``, ``admin``) in ``db``, made with the CLI."""
    return {scope: create_token(db, f"{scope}-role", scope) for scope in ("read", "ingest", "admin")}


S = TypeVar("S")


@dataclass
class Gated(Generic[S]):
    server: S
    tokens: dict[str, str]  # scope -> token


@contextlib.contextmanager
def gated_server(make: Callable[..., Any], root: Path) -> Iterator[Gated[Any]]:
    """A server (``make``: in-process ``AppServer`` or subprocess ``TokenServer``) with one token
    per scope and an ingest rate of 10/s, for the gate's matrix tests in either layer."""
    db = root / "orchlog.db"
    tokens = role_tokens(db)
    server = make(db, env={"ORCHLOG_INGEST_RATE": "10"}).start()
    try:
        yield Gated(server, tokens)
    finally:
        server.stop()
