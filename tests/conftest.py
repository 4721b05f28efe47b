"""Shared fixtures: real `orchlog serve` processes on free ports over real SQLite files.

Nothing of orchlog is mocked. ``Server`` starts the CLI in a subprocess (as users run it) and
waits for ``/healthz``; ``wait_until`` polls a condition with a deadline instead of sleeping.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One `orchlog serve` subprocess."""

    def __init__(self, db: Path, *args: str, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.db = db
        self.port = port or free_port()
        self.args = args
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHLOG_")}
        self.env.update(env or {})
        self.env["PYTHONUNBUFFERED"] = "1"
        self.log = db.parent / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Server:
        cmd = [
            sys.executable,
            "-m",
            "orchlog",
            "serve",
            "--db",
            str(self.db),
            "--port",
            str(self.port),
            *self.args,
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}: {self.log_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not answer /healthz in {timeout}s: {self.log_text()[-2000:]}")
            time.sleep(0.05)

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

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "orchlog.db"


@pytest.fixture
def server(db_path: Path) -> Iterator[Server]:
    srv = Server(db_path).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        yield c


async def make_agents(client: httpx.AsyncClient, n: int = 2) -> tuple[str, list[str]]:
    """An orchestrator and n agents, created through the API."""
    r = await client.post("/api/v1/orchestrator-agents", json={"system_prompt": "test", "status": "idle"})
    assert r.status_code == 201, r.text
    orch = r.json()["id"]
    agents = []
    for i in range(n):
        r = await client.post(
            "/api/v1/agents",
            json={"orchestrator_agent_id": orch, "name": f"agent-{i}", "model": "test-model"},
        )
        assert r.status_code == 201, r.text
        agents.append(r.json()["id"])
    return orch, agents


def agent_event(agent_id: str, text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {
        "agent_id": agent_id,
        "event_category": "hook",
        "event_type": "PreToolUse",
        "content": text,
        **extra,
    }


async def history(client: httpx.AsyncClient, params: dict[str, Any] | None = None, after: int = 0) -> list[dict]:
    """Every matching event after `after`, following next_after."""
    out: list[dict] = []
    while True:
        r = await client.get("/api/v1/events", params={**(params or {}), "after": after, "limit": 1000})
        assert r.status_code == 200, r.text
        body = r.json()
        out.extend(body["items"])
        if not body["has_more"]:
            return out
        after = body["next_after"]


async def wait_until(pred: Callable[[], Any | Awaitable[Any]], timeout: float, what: str) -> Any:  # noqa: ASYNC109
    """Poll a condition until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------- additions for the foundation suite


def start_server(directory: Path, env: dict[str, str] | None = None) -> Server:
    """A started server over a fresh database in `directory` (caller stops it)."""
    directory.mkdir(parents=True, exist_ok=True)
    return Server(directory / "orchlog.db", env=env).start()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server shared by the tests of a module that do not disturb each other."""
    srv = start_server(tmp_path_factory.mktemp("module-server"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def mclient(module_server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """An async client of the module's shared server."""
    async with httpx.AsyncClient(base_url=module_server.url, timeout=30) as c:
        yield c


def make_agents_sync(client: httpx.Client, n: int = 2, prefix: str = "agent") -> tuple[str, list[str]]:
    """`make_agents` for synchronous (module-scoped) setup code."""
    r = client.post("/api/v1/orchestrator-agents", json={"system_prompt": "test", "status": "idle"})
    assert r.status_code == 201, r.text
    orch = r.json()["id"]
    agents = []
    for i in range(n):
        r = client.post(
            "/api/v1/agents",
            json={"orchestrator_agent_id": orch, "name": f"{prefix}-{i}", "model": "test-model"},
        )
        assert r.status_code == 201, r.text
        agents.append(r.json()["id"])
    return orch, agents


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the one JSON error shape with this status and code; returns `error`."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    assert "Traceback" not in response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"], body
    return error


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers with their own settings: ``server_factory(env={...}, db=path)``; all stopped after."""
    started: list[Server] = []

    def make(*args: str, env: dict[str, str] | None = None, db: Path | None = None) -> Server:
        srv = Server(db or tmp_path / "orchlog.db", *args, env=env)
        started.append(srv)
        return srv.start()

    yield make
    for srv in reversed(started):
        srv.stop()


# ---------------------------------------------------------------- additions for the security suite


def orchlog_cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m orchlog ARGS`` (no ORCHLOG_* settings inherited); output captured as text."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHLOG_")}
    return subprocess.run(
        [sys.executable, "-m", "orchlog", *args], capture_output=True, text=True, env=env, timeout=timeout
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


def bearer(token: str | None) -> dict[str, str]:
    """The Authorization header for `token` (none for None)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


class TokenServer(Server):
    """A `Server` whose start() counts ANY HTTP answer from /healthz as "up" (uvicorn answers only
    after the lifespan started), so servers with tokens configured can be started whatever /healthz
    answers without a token; the security tests assert that answer themselves."""

    def start(self, timeout: float = 20.0) -> Server:
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
                httpx.get(self.url + "/healthz", timeout=1)
                return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not answer /healthz in {timeout}s: {self.log_text()[-2000:]}")
            time.sleep(0.05)
