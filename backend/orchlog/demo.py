"""``orchlog demo``: a small simulated fleet, so a new user sees the dashboard and ``tail -f``
come alive in a minute. Uses only the public client; starts a server if none answers."""

from __future__ import annotations

import contextlib
import random
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit

import httpx

from .client import AuthError, Client, EventSender, OrchlogClientError, SenderStats

AGENTS = [
    ("planner", "claude-opus"),
    ("builder", "claude-sonnet"),
    ("reviewer", "claude-sonnet"),
    ("tester", "claude-haiku"),
    ("docs", "claude-haiku"),
    ("ops", "claude-sonnet"),
]
TOOLS = [
    ("Bash", "command", ["npm test", "pytest -q", "git status", "make lint", "ls -la src", "cargo build"]),
    ("Read", "file_path", ["src/app.py", "README.md", "src/api/routes.ts", "pyproject.toml"]),
    ("Edit", "file_path", ["src/app.py", "src/models.py", "tests/test_api.py", "docs/guide.md"]),
    ("Grep", "pattern", ["TODO", "def handle_", "async fn", "import orjson"]),
    ("WebFetch", "url", ["https://docs.python.org/3/library/asyncio.html", "https://sqlite.org/wal.html"]),
]
SAYINGS = [
    "Looking at the failing test first.",
    "The fix is in the writer: batches were not flushed.",
    "All checks pass now.",
    "I'll split this into two commits.",
    "Waiting for the reviewer.",
]


def _reachable(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _start_server(url: str, db: str) -> subprocess.Popen[bytes]:
    parts = urlsplit(url)
    cmd = [
        sys.executable,
        "-m",
        "orchlog",
        "serve",
        "--db",
        db,
        "--host",
        parts.hostname or "127.0.0.1",
        "--port",
        str(parts.port or 8000),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + 20
    while not _reachable(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise OrchlogClientError(f"could not start a server for the demo ({' '.join(cmd)})")
        time.sleep(0.1)
    return proc


def _fleet(client: Client, count: int) -> list[tuple[str, str]]:
    """A new orchestrator and agents named ``demo-<role>-<run>``: names nobody else uses, so the
    demo never posts as (or takes over) an agent you already have."""
    run = uuid.uuid4().hex[:4]
    orch = client.create_orchestrator(
        status="executing", system_prompt="orchlog demo fleet", metadata={"orchlog_demo": run}
    )["id"]
    fleet = []
    for role, model in AGENTS[:count]:
        name = f"demo-{role}-{run}"
        fleet.append(
            (name, client.create_agent(orch, name, model, status="idle", metadata={"orchlog_demo": run})["id"])
        )
    return fleet


def _tick(sender: EventSender, client: Client, fleet: list[tuple[str, str]]) -> int:
    """Post one round of a random agent's activity; returns how many events were submitted."""
    name, agent_id = random.choice(fleet)
    tool, key, values = random.choice(TOOLS)
    value = random.choice(values)
    session = f"demo-{name}"
    sender.log_agent(
        agent_id,
        "PreToolUse",
        f"{tool}: {value}",
        session_id=session,
        payload={"tool_name": tool, "tool_input": {key: value}},
    )
    failed = random.random() < 0.05
    sender.log_agent(
        agent_id,
        "PostToolUseFailure" if failed else "PostToolUse",
        f"{tool}: {value}" + (" failed: exit 1" if failed else ""),
        level="ERROR" if failed else "INFO",
        session_id=session,
        payload={"tool_name": tool, "tool_response": {"ok": not failed}},
    )
    sender.log_agent(
        agent_id,
        random.choice(["text", "thinking"]),
        random.choice(SAYINGS),
        event_category="response",
        session_id=session,
        level="WARNING" if random.random() < 0.05 else "INFO",
    )
    posted = 3
    if random.random() < 0.05:
        sender.log_system(random.choice(["INFO", "WARNING"]), f"scheduler: {name} queue depth {random.randint(0, 9)}")
        posted += 1
    if random.random() < 0.03:
        with contextlib.suppress(OrchlogClientError):
            client.update_agent(
                agent_id,
                status=random.choice(["executing", "idle", "waiting"]),
                add_input_tokens=random.randint(100, 2000),
                add_cost="0.0031",
            )
    return posted


def summary(posted: int, stats: SenderStats) -> str:
    """Counts that add up: posted = stored + duplicates + rejected + dropped + unsent."""
    unsent = max(0, posted - stats.sent - stats.duplicates - stats.rejected - stats.dropped)
    return (
        f"orchlog demo: posted {posted} events: {stats.sent} stored, {stats.duplicates} duplicates, "
        f"{stats.rejected} rejected, {stats.dropped} dropped, {unsent} unsent"
    )


def run_demo(url: str, *, token: str | None = None, db: str, agents: int, rate: float, seconds: float | None) -> int:
    server = None if _reachable(url) else _start_server(url, db)
    try:
        with Client(url, token=token) as client:
            try:
                fleet = _fleet(client, agents)
            except AuthError as exc:
                print(
                    f"orchlog demo: {url} refused the demo: {exc}. Pass --token or set ORCHLOG_TOKEN "
                    "(a token with the ingest scope: `orchlog token create --name demo --scope ingest`)",
                    file=sys.stderr,
                )
                return 3
            print(f"orchlog demo: {len(fleet)} agents posting ~{rate:g} events/s to {url}")
            print(f"  agents:     {', '.join(name for name, _ in fleet)}")
            print(f"  dashboard:  {url}/")
            print(f"  terminal:   orchlog tail -f --url {url} --agent {fleet[0][0]}")
            print("  Ctrl-C to stop.")
            sender = EventSender(url, token=token, batch_size=200, flush_interval=0.05)
            started = time.monotonic()
            posted = 0
            try:
                while seconds is None or time.monotonic() - started < seconds:
                    posted += _tick(sender, client, fleet)
                    time.sleep(3 / max(rate, 0.1))
            except KeyboardInterrupt:
                pass
            finally:
                sender.close(timeout=5)
            print("\n" + summary(posted, sender.stats))
            if sender.stats.refused_status in (401, 403):
                print(f"orchlog demo: the server refused the events: {sender.stats.last_error}", file=sys.stderr)
                return 3
            return 0 if sender.stats.sent + sender.stats.duplicates == posted else 1
    finally:
        if server is not None:
            server.terminate()
            server.wait(15)
