"""Integrations (issue 11): Claude Code hooks (HTTP hook endpoint, ``orchlog hook`` with its
spool, ``orchlog hook install``) and OpenTelemetry logs over OTLP/HTTP (real SDK exporter,
stdlib ``logging`` bridge). Hand-written OTLP JSON, protobuf and malformed payloads are in
tests/api/test_otlp_http.py (in-process).

Everything runs against real ``orchlog serve`` processes; ``orchlog hook`` and ``orchlog hook
install`` run as subprocesses exactly as Claude Code would run them (JSON on stdin).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shlex
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from helpers import Server, free_port, head_seq, history, make_agents, system_logs, wait_until

NAMESPACE = uuid.UUID("6b1e5f0e-3c1d-4c59-9d0e-0f6a1c2b7d10")  # claude_code.NAMESPACE, restated on purpose
TRUNCATE_AT = 8192  # default cut for long strings in a hook payload
HOOK_EVENTS = (
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "UserPromptSubmit",
    "Notification",
    "Stop",
    "SubagentStop",
    "PreCompact",
    "SessionStart",
    "SessionEnd",
)


# ---------------------------------------------------------------- realistic Claude Code hook inputs


def big_stdout() -> str:
    """A test run's output, far over the truncation size."""
    lines = [f"  PASS  src/cart/test_{i:04d}.spec.ts ({i % 97} ms)" for i in range(2000)]
    return "\n".join(lines) + "\nTest Suites: 2000 passed, 2000 total\n"


BIG_STDOUT = big_stdout()
assert len(BIG_STDOUT) > 6 * TRUNCATE_AT


def hook_samples(session: str) -> list[tuple[dict[str, Any], str, str]]:
    """(hook input, expected content, expected level) for every event type Claude Code sends."""
    cwd = "/home/dev/shop"
    common = {
        "session_id": session,
        "transcript_path": f"/home/dev/.claude/projects/-home-dev-shop/{session}.jsonl",
        "cwd": cwd,
        "permission_mode": "default",
    }

    def tool(event: str, name: str, tool_input: dict[str, Any], use_id: str, **extra: Any) -> dict[str, Any]:
        return {
            **common,
            "hook_event_name": event,
            "tool_name": name,
            "tool_input": tool_input,
            "tool_use_id": use_id,
            **extra,
        }

    stdout = BIG_STDOUT
    edit = {
        "file_path": f"{cwd}/src/app.py",
        "old_string": "def checkout(cart):\n    return cart.total",
        "new_string": "def checkout(cart):\n    cart.validate()\n    return cart.total",
        "replace_all": False,
    }
    write = {"file_path": f"{cwd}/tests/test_cart.py", "content": "import pytest\n\n\ndef test_empty():\n    ...\n"}
    grep = {"pattern": "def checkout", "path": f"{cwd}/src", "output_mode": "content", "-n": True}
    fetch = {"url": "https://docs.python.org/3/library/asyncio-task.html", "prompt": "How does TaskGroup cancel?"}
    task = {
        "description": "Find flaky tests",
        "prompt": "Look through tests/ for tests that depend on wall-clock time.\nReport file and line.",
        "subagent_type": "general-purpose",
    }
    prompt = "Fix the failing checkout test.\nThen run the whole suite\n\nand summarize what changed."
    failure = "Command failed with exit code 2\nsrc/app.ts(3,1): error TS2304: Cannot find name 'cart'."
    return [
        (
            tool(
                "PreToolUse",
                "Bash",
                {"command": "npm test", "description": "Run the unit tests", "timeout": 120000},
                "toolu_01Bash",
            ),
            "Bash: npm test",
            "INFO",
        ),
        (tool("PreToolUse", "Edit", edit, "toolu_02Edit"), f"Edit: {cwd}/src/app.py", "INFO"),
        (
            tool("PreToolUse", "Read", {"file_path": f"{cwd}/README.md", "offset": 1, "limit": 200}, "toolu_03Read"),
            f"Read: {cwd}/README.md",
            "INFO",
        ),
        (tool("PreToolUse", "Write", write, "toolu_04Write"), f"Write: {cwd}/tests/test_cart.py", "INFO"),
        # the summary picks `path` before `pattern` (see claude_code._DETAIL_KEYS)
        (tool("PreToolUse", "Grep", grep, "toolu_05Grep"), f"Grep: {cwd}/src", "INFO"),
        (tool("PreToolUse", "WebFetch", fetch, "toolu_06Fetch"), f"WebFetch: {fetch['url']}", "INFO"),
        (tool("PreToolUse", "Task", task, "toolu_07Task"), "Task: Find flaky tests", "INFO"),
        (
            tool(
                "PostToolUse",
                "Bash",
                {"command": "npm test", "description": "Run the unit tests"},
                "toolu_01Bash",
                tool_response={"stdout": stdout, "stderr": "", "interrupted": False, "isImage": False},
            ),
            "Bash: npm test",
            "INFO",
        ),
        (
            tool(
                "PostToolUseFailure",
                "Bash",
                {"command": "npm run build", "description": "Type-check and build"},
                "toolu_08Build",
                error=failure,
                is_interrupt=False,
            ),
            "Bash: npm run build failed: Command failed with exit code 2",
            "ERROR",
        ),
        ({**common, "hook_event_name": "UserPromptSubmit", "prompt": prompt}, "Fix the failing checkout test.", "INFO"),
        (
            {
                **common,
                "hook_event_name": "Notification",
                "message": "Claude needs your permission to use Bash",
                "notification_type": "permission_prompt",
            },
            "Claude needs your permission to use Bash",
            "WARNING",
        ),
        ({**common, "hook_event_name": "Stop", "stop_hook_active": False}, "stopped", "INFO"),
        (
            {
                **common,
                "hook_event_name": "SubagentStop",
                "stop_hook_active": False,
                "agent_id": "a3f9c2d1",
                "agent_transcript_path": f"/home/dev/.claude/projects/-home-dev-shop/{session}/agent-a3f9c2d1.jsonl",
            },
            "subagent stopped",
            "INFO",
        ),
        (
            {
                **common,
                "hook_event_name": "PreCompact",
                "trigger": "manual",
                "custom_instructions": "Keep the failing test output and the plan.",
            },
            "compacting (manual)",
            "INFO",
        ),
        (
            {**common, "hook_event_name": "SessionStart", "source": "startup", "model": "claude-sonnet-4-5"},
            "session started (startup)",
            "INFO",
        ),
        (
            {**common, "hook_event_name": "SessionEnd", "reason": "prompt_input_exit"},
            "session ended (prompt_input_exit)",
            "INFO",
        ),
    ]


def expected_payload(hook: dict[str, Any]) -> dict[str, Any]:
    """The hook input as stored: strings over TRUNCATE_AT cut and listed in ``_truncated``."""
    payload = copy.deepcopy(hook)
    response = payload.get("tool_response")
    if isinstance(response, dict) and len(response.get("stdout", "")) > TRUNCATE_AT:
        full = response["stdout"]
        response["stdout"] = full[:TRUNCATE_AT] + f"…[truncated {len(full) - TRUNCATE_AT} chars]"
        payload["_truncated"] = ["tool_response.stdout"]
    return payload


def key_of(hook: dict[str, Any]) -> tuple[str, str | None]:
    return hook["hook_event_name"], hook.get("tool_use_id")


def agent_uuid(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"claude-code:agent:{name}"))


def check_rows(rows: list[dict[str, Any]], samples: list[tuple[dict[str, Any], str, str]], agent_id: str) -> None:
    """Every sample stored exactly once, field by field; payloads compared last (after all other
    fields of all rows) so a payload difference is reported on its own."""
    assert all(r["kind"] == "agent_log" for r in rows), rows
    by_key: dict[tuple[str, str | None], dict[str, Any]] = {}
    for row in rows:
        key = key_of(row["data"]["payload"])
        assert key not in by_key, f"stored twice: {key}"
        by_key[key] = row["data"]
    assert set(by_key) == {key_of(h) for h, _, _ in samples}
    for hook, content, level in samples:
        data = by_key[key_of(hook)]
        where = key_of(hook)
        assert data["agent_id"] == agent_id, where
        assert data["event_category"] == "hook", where
        assert data["event_type"] == hook["hook_event_name"], where
        assert data["session_id"] == hook["session_id"], where
        assert data["content"] == content, where
        assert data["level"] == level, where
        assert data["timestamp"], where
    for hook, _, _ in samples:
        data = by_key[key_of(hook)]
        assert data["payload"] == expected_payload(hook), (
            f"{key_of(hook)}: payload is not the hook input; extra keys "
            f"{sorted(set(data['payload']) - set(expected_payload(hook)))}, missing "
            f"{sorted(set(expected_payload(hook)) - set(data['payload']))}"
        )
    big = by_key[("PostToolUse", "toolu_01Bash")]["payload"]
    assert big["_truncated"] == ["tool_response.stdout"]
    assert len(big["tool_response"]["stdout"]) < TRUNCATE_AT + 100
    assert big["tool_response"]["stdout"].endswith(f"[truncated {len(BIG_STDOUT) - TRUNCATE_AT} chars]")


async def agents_named(client: httpx.AsyncClient, name: str) -> list[dict[str, Any]]:
    r = await client.get("/api/v1/agents", params={"limit": 1000})
    assert r.status_code == 200, r.text
    return [a for a in r.json()["items"] if a["name"] == name]


async def agent_logs(client: httpx.AsyncClient, after: int = 0) -> list[dict[str, Any]]:
    return [e for e in await history(client, after=after) if e["kind"] == "agent_log"]


async def rows_when(client: httpx.AsyncClient, n: int, after: int = 0) -> list[dict[str, Any]] | None:
    rows = await agent_logs(client, after)
    return rows if len(rows) >= n else None


# ---------------------------------------------------------------- running `orchlog hook`


def cli_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHLOG_")}
    env["XDG_CACHE_HOME"] = str(tmp / "xdg-cache")  # never the developer's real default spool
    env.update(extra)
    return env


def hook_cmd(url: str, spool: Path, agent: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "orchlog", "hook", "--url", url, "--spool", str(spool)]
    return [*cmd, "--agent", agent] if agent else cmd


def run_hook_text(
    text: str, url: str, spool: Path, tmp: Path, agent: str | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    """`orchlog hook` with `text` on stdin; returns the finished process and its wall time."""
    started = time.monotonic()
    done = subprocess.run(
        hook_cmd(url, spool, agent), input=text, capture_output=True, text=True, env=cli_env(tmp), timeout=30
    )
    return done, time.monotonic() - started


def run_hook(
    hook: dict[str, Any], url: str, spool: Path, tmp: Path, agent: str | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    return run_hook_text(json.dumps(hook), url, spool, tmp, agent)


def run_shell(command: str, stdin: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A hook command as Claude Code runs it: through a shell, the hook JSON on stdin."""
    return subprocess.run(
        ["sh", "-c", command], input=stdin, capture_output=True, text=True, env=env, cwd=cwd, timeout=30
    )


def run_hooks_parallel(
    jobs: list[tuple[dict[str, Any], Path]], url: str, tmp: Path, agent: str | None = None
) -> list[tuple[int, str, str, float]]:
    """Start one `orchlog hook` per (input, spool) at once, like parallel tool calls; returns
    (exit code, stdout, stderr, seconds) per job."""
    started = time.monotonic()
    procs = []
    for hook, spool in jobs:
        proc = subprocess.Popen(
            hook_cmd(url, spool, agent),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(tmp),
        )
        procs.append((proc, json.dumps(hook)))
    out = []
    for proc, text in procs:
        stdout, stderr = proc.communicate(text, timeout=30)
        out.append((proc.returncode, stdout, stderr, time.monotonic() - started))
    return out


def bash_hook(session: str, step: int) -> dict[str, Any]:
    return {
        "session_id": session,
        "transcript_path": f"/home/dev/.claude/projects/-home-dev-shop/{session}.jsonl",
        "cwd": "/home/dev/shop",
        "hook_event_name": "PreToolUse",
        "permission_mode": "acceptEdits",
        "tool_name": "Bash",
        "tool_input": {"command": f"make step-{step}", "description": f"Step {step}"},
        "tool_use_id": f"toolu_step_{step:03d}",
    }


def spool_count(spool: Path) -> int:
    conn = sqlite3.connect(spool)
    try:
        return int(conn.execute("SELECT count(*) FROM spool").fetchone()[0])
    finally:
        conn.close()


# ---------------------------------------------------------------- Claude Code: HTTP hook endpoint


async def test_http_hook_every_event_type_stored_field_by_field(mclient: httpx.AsyncClient) -> None:
    client = mclient
    start = await head_seq(client)
    session = "5f3c9a1e-7b42-4d0e-9a61-2c8e4f1b7d03"
    samples = hook_samples(session)
    acked = []
    for hook, _, _ in samples:
        r = await client.post("/api/v1/hooks/claude-code", json=hook)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["count"] == 1 and len(body["items"]) == 1, body
        acked.append(body["items"][0])
    assert [a["duplicate"] for a in acked] == [False] * len(samples)

    rows = await agent_logs(client, start)
    assert [r["data"]["id"] for r in rows] == [a["id"] for a in acked]  # in posting order
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows)
    name = f"claude-{session[:8]}"
    check_rows(rows, samples, agent_uuid(name))

    agents = await agents_named(client, name)
    assert len(agents) == 1, agents
    assert agents[0]["id"] == agent_uuid(name)
    assert agents[0]["model"] == "claude-code"

    # ?agent=NAME groups the events under that name instead (a second, stable agent)
    hook = samples[0][0]
    r = await client.post("/api/v1/hooks/claude-code", params={"agent": "reviewer"}, json=hook)
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/hooks/claude-code", params={"agent": "reviewer"}, json=hook)
    assert r.status_code == 201, r.text
    reviewer = await agents_named(client, "reviewer")
    assert [a["id"] for a in reviewer] == [agent_uuid("reviewer")]
    assert len(await agents_named(client, name)) == 1
    rows = await agent_logs(client, start)
    assert [r["data"]["agent_id"] for r in rows[-2:]] == [agent_uuid("reviewer")] * 2


async def test_http_hook_refuses_non_objects_and_wrong_content_type(mclient: httpx.AsyncClient) -> None:
    client = mclient
    start = await head_seq(client)
    r = await client.post("/api/v1/hooks/claude-code", json=[{"hook_event_name": "Stop", "session_id": "s"}, 7])
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["index"] == 1
    r = await client.post(
        "/api/v1/hooks/claude-code", content=b"hook_event_name=Stop", headers={"content-type": "text/plain"}
    )
    assert r.status_code == 415, r.text
    r = await client.post(
        "/api/v1/hooks/claude-code", content=b'{"hook_event_name": ', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert await history(client, after=start) == []  # nothing half-stored


# ---------------------------------------------------------------- Claude Code: `orchlog hook`


async def test_cli_hook_every_event_type_stored_field_by_field(
    module_server: Server, mclient: httpx.AsyncClient, tmp_path: Path
) -> None:
    server, client = module_server, mclient
    start = await head_seq(client)
    session = "c0ffee42-1d2e-4f5a-8b6c-7d8e9f0a1b2c"
    samples = hook_samples(session)
    jobs = [(hook, tmp_path / f"spool-{i}.db") for i, (hook, _, _) in enumerate(samples)]
    results = run_hooks_parallel(jobs, server.url, tmp_path, agent="builder-1")
    for (hook, _), (code, stdout, stderr, _) in zip(jobs, results, strict=True):
        assert code == 0, (key_of(hook), stderr)
        assert stdout == "", (key_of(hook), stdout)  # a hook's stdout is read by Claude Code

    rows = await wait_until(
        lambda: rows_when(client, len(samples), start), timeout=10, what=f"{len(samples)} hook events"
    )
    check_rows(rows, samples, agent_uuid("builder-1"))
    agents = await agents_named(client, "builder-1")
    assert [a["id"] for a in agents] == [agent_uuid("builder-1")]
    assert await agents_named(client, f"claude-{session[:8]}") == []
    for _, spool in jobs:
        assert spool_count(spool) == 0

    # the same name over the HTTP endpoint is the same agent (stable id, no second registration)
    r = await client.post("/api/v1/hooks/claude-code", params={"agent": "builder-1"}, json=samples[0][0])
    assert r.status_code == 201, r.text
    assert len(await agents_named(client, "builder-1")) == 1


async def test_cli_hook_session_agent_and_quiet_on_garbage(
    module_server: Server, mclient: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Without --agent the agent is claude-<session[:8]>; garbage on stdin is ignored quietly."""
    server, client = module_server, mclient
    start = await head_seq(client)
    session = "9b8a7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
    done, _ = run_hook(bash_hook(session, 1), server.url, tmp_path / "spool.db", tmp_path)
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    rows = await wait_until(lambda: rows_when(client, 1, start), timeout=10, what="the hook event")
    name = f"claude-{session[:8]}"
    assert rows[0]["data"]["agent_id"] == agent_uuid(name)
    assert rows[0]["data"]["content"] == "Bash: make step-1"
    assert [a["id"] for a in await agents_named(client, name)] == [agent_uuid(name)]

    for garbage in ("", "not json", "[1, 2]"):
        proc, _ = run_hook_text(garbage, server.url, tmp_path / "spool.db", tmp_path)
        assert (proc.returncode, proc.stdout) == (0, ""), (garbage, proc.stderr)
    assert len(await agent_logs(client, start)) == 1


async def test_cli_hook_server_down_exits_fast_then_delivers_in_order_exactly_once(
    tmp_path: Path, db_path: Path
) -> None:
    port = free_port()  # nothing listens here yet
    url = f"http://127.0.0.1:{port}"
    spool = tmp_path / "hook-spool.db"
    session = "0d15ea5e-0000-4000-8000-00000000d0e5"
    for step in range(3):
        done, took = run_hook(bash_hook(session, step), url, spool, tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout == ""
        assert took < 5, f"hook {step} took {took:.2f}s with the server down"
    assert spool_count(spool) == 3  # kept durably while the server is away

    srv = Server(db_path, port=port).start()
    try:
        done, took = run_hook(bash_hook(session, 3), url, spool, tmp_path)
        assert (done.returncode, done.stdout) == (0, ""), done.stderr
        assert took < 5
        async with httpx.AsyncClient(base_url=srv.url, timeout=30) as client:
            rows = await wait_until(lambda: rows_when(client, 4), timeout=10, what="the 4 spooled hook events")
            stored = await agent_logs(client)
            assert len(stored) == 4, [r["data"]["content"] for r in stored]  # exactly once
            assert [r["data"]["payload"]["tool_use_id"] for r in rows] == [f"toolu_step_{i:03d}" for i in range(4)]
            assert [r["data"]["content"] for r in rows] == [f"Bash: make step-{i}" for i in range(4)]
            assert len({r["data"]["id"] for r in rows}) == 4
            name = f"claude-{session[:8]}"
            assert [a["id"] for a in await agents_named(client, name)] == [agent_uuid(name)]
        assert spool_count(spool) == 0
    finally:
        srv.stop()


async def test_cli_hook_parallel_hooks_sharing_one_spool(tmp_path: Path, db_path: Path) -> None:
    """Parallel tool calls run several hooks at once, all with the same (default) spool: every
    event arrives exactly once, whether the server was up or down when the hooks ran."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    spool = tmp_path / "shared-spool.db"
    session = "7e57ab1e-1111-4222-8333-444455556666"
    down = run_hooks_parallel([(bash_hook(session, i), spool) for i in range(3)], url, tmp_path)
    for code, stdout, stderr, took in down:
        assert (code, stdout) == (0, ""), stderr
        # all three start at once on a possibly small, busy machine: a looser bound than the 5 s
        # asserted for a single hook, but still bounded
        assert took < 10, f"{took:.2f}s with the server down"

    srv = Server(db_path, port=port).start()
    try:
        up = run_hooks_parallel([(bash_hook(session, i), spool) for i in range(3, 6)], url, tmp_path)
        for code, stdout, stderr, _ in up:
            assert (code, stdout) == (0, ""), stderr
        done, _ = run_hook(bash_hook(session, 6), url, spool, tmp_path)
        assert done.returncode == 0, done.stderr
        async with httpx.AsyncClient(base_url=srv.url, timeout=30) as client:
            await wait_until(lambda: rows_when(client, 7), timeout=10, what="7 hook events")
            rows = await agent_logs(client)
            ids = [r["data"]["payload"]["tool_use_id"] for r in rows]
            assert sorted(ids) == [f"toolu_step_{i:03d}" for i in range(7)], ids  # none lost, none twice
            assert ids[-1] == "toolu_step_006"  # the spool went out before the newest event
            name = f"claude-{session[:8]}"
            assert len(await agents_named(client, name)) == 1
    finally:
        srv.stop()


# ---------------------------------------------------------------- Claude Code: `orchlog hook install`


EXISTING_SETTINGS: dict[str, Any] = {
    "$schema": "https://json.schemastore.org/claude-code-settings.json",
    "model": "claude-sonnet-4-5",
    "permissions": {"allow": ["Bash(npm test)", "Read(./src/**)"], "deny": ["Read(./.env)"]},
    "env": {"NODE_ENV": "test"},
    "hooks": {
        "PreToolUse": [
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "./scripts/guard-bash.sh", "timeout": 5}]}
        ],
        "Stop": [{"hooks": [{"type": "command", "command": "notify-send 'Claude is done'"}]}],
        "PostToolUse": [{"matcher": "Edit|Write", "hooks": [{"type": "command", "command": "npx prettier --write"}]}],
    },
}


def install_cli(cwd: Path, *args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = cli_env(cwd)
    if home is not None:
        env["HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "orchlog", "hook", "install", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def orchlog_entries(settings: dict[str, Any], event: str) -> list[dict[str, Any]]:
    return [
        h
        for entry in settings["hooks"].get(event, [])
        for h in entry.get("hooks", [])
        if "orchlog" in h.get("command", "") and "hook" in h.get("command", "")  # any form, old or new
    ]


def test_hook_install_project_merges_keeps_everything_and_is_idempotent(tmp_path: Path) -> None:
    project = tmp_path / "shop"
    (project / ".claude").mkdir(parents=True)
    settings_file = project / ".claude" / "settings.json"
    settings_file.write_text(json.dumps(EXISTING_SETTINGS, indent=2))

    done = install_cli(project, "--project")
    assert done.returncode == 0, done.stderr
    assert str(settings_file) in done.stdout
    merged = json.loads(settings_file.read_text())

    for key in ("$schema", "model", "permissions", "env"):
        assert merged[key] == EXISTING_SETTINGS[key], key
    for event, entries in EXISTING_SETTINGS["hooks"].items():
        assert merged["hooks"][event][: len(entries)] == entries, f"{event}: the user's own hooks changed"
    for event in HOOK_EVENTS:
        ours = orchlog_entries(merged, event)
        assert len(ours) == 1, (event, merged["hooks"].get(event))
        assert ours[0]["type"] == "command"
        # the interpreter by absolute path (Claude Code's PATH has no venv), the stdlib-only module
        assert shlex.split(ours[0]["command"])[:3] == [sys.executable, "-m", "orchlog.hook"]
    tool_entries = [e for e in merged["hooks"]["PreToolUse"] if orchlog_entries({"hooks": {"x": [e]}}, "x")]
    assert tool_entries[0].get("matcher") in ("*", "", None)  # every tool, not only some

    first = settings_file.read_text()
    again = install_cli(project, "--project")
    assert again.returncode == 0, again.stderr
    assert settings_file.read_text() == first  # idempotent: no duplicate entries
    assert not list((project / ".claude").glob("*.orchlog-tmp"))


def test_hook_install_dry_run_prints_and_writes_nothing(tmp_path: Path) -> None:
    project = tmp_path / "shop"
    (project / ".claude").mkdir(parents=True)
    settings_file = project / ".claude" / "settings.json"
    original = json.dumps(EXISTING_SETTINGS, indent=2)
    settings_file.write_text(original)
    before = settings_file.stat().st_mtime_ns

    done = install_cli(project, "--project", "--dry-run", "--agent", "builder-1", "--url", "http://10.0.0.5:8000")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)  # the whole output is the merged JSON
    assert printed["model"] == EXISTING_SETTINGS["model"]
    assert printed["hooks"]["PreToolUse"][0] == EXISTING_SETTINGS["hooks"]["PreToolUse"][0]
    command = orchlog_entries(printed, "PreToolUse")[0]["command"]
    assert "--agent builder-1" in command and "--url http://10.0.0.5:8000" in command
    assert settings_file.read_text() == original
    assert settings_file.stat().st_mtime_ns == before

    empty = tmp_path / "fresh"
    empty.mkdir()
    done = install_cli(empty, "--project", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert set(HOOK_EVENTS) <= set(json.loads(done.stdout)["hooks"])
    assert not (empty / ".claude").exists()


def test_hook_install_user_scope_and_broken_settings(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    elsewhere = tmp_path / "somewhere"
    elsewhere.mkdir()
    done = install_cli(elsewhere, "--user", home=home)
    assert done.returncode == 0, done.stderr
    written = json.loads((home / ".claude" / "settings.json").read_text())
    assert all(len(orchlog_entries(written, e)) == 1 for e in HOOK_EVENTS)
    assert not (elsewhere / ".claude").exists()

    project = tmp_path / "broken"
    (project / ".claude").mkdir(parents=True)
    (project / ".claude" / "settings.json").write_text('["not", "an", "object"]')
    done = install_cli(project, "--project")
    assert done.returncode != 0
    assert "settings.json" in done.stderr
    assert (project / ".claude" / "settings.json").read_text() == '["not", "an", "object"]'  # not clobbered


async def test_installed_hook_command_runs_end_to_end(
    module_server: Server, mclient: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The command `hook install` writes, run the way Claude Code runs it (a shell, JSON on stdin)."""
    server, client = module_server, mclient
    start = await head_seq(client)
    project = tmp_path / "shop"
    project.mkdir()
    done = install_cli(project, "--project", "--agent", "fleet-7", "--url", server.url)
    assert done.returncode == 0, done.stderr
    settings = json.loads((project / ".claude" / "settings.json").read_text())
    command = orchlog_entries(settings, "PreToolUse")[0]["command"]
    env = cli_env(tmp_path, ORCHLOG_SPOOL=str(tmp_path / "spool.db"))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    hook = bash_hook("aa11bb22-cc33-4d44-8e55-ff6677889900", 42)
    proc = run_shell(command, json.dumps(hook), env, project)
    assert (proc.returncode, proc.stdout) == (0, ""), proc.stderr
    rows = await wait_until(lambda: rows_when(client, 1, start), timeout=10, what="the installed hook's event")
    assert rows[0]["data"]["agent_id"] == agent_uuid("fleet-7")
    assert rows[0]["data"]["content"] == "Bash: make step-42"


# ---------------------------------------------------------------- OpenTelemetry: the real SDK


TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7


def span_context() -> Any:
    span = NonRecordingSpan(
        SpanContext(trace_id=TRACE_ID, span_id=SPAN_ID, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    )
    return trace.set_span_in_context(span)


@pytest.fixture
def otel(module_server: Server) -> Iterator[Any]:
    """make(resource attrs, batch=True) → a LoggerProvider exporting OTLP/HTTP to the server."""
    providers: list[LoggerProvider] = []

    def make(resource: dict[str, Any] | None = None, batch: bool = True) -> LoggerProvider:
        provider = LoggerProvider(resource=Resource.create(resource or {"service.name": "checkout"}))
        exporter = OTLPLogExporter(endpoint=f"{module_server.url}/v1/logs", timeout=5)
        processor = BatchLogRecordProcessor(exporter) if batch else SimpleLogRecordProcessor(exporter)
        provider.add_log_record_processor(processor)
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        provider.shutdown()


def server_trouble(server: Server) -> str:
    """The server log without its access lines (so a traceback shows)."""
    lines = [line for line in server.log_text().splitlines() if "HTTP/1.1" not in line]
    return "\n".join(lines[-12:])


def parse_ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


async def test_otel_sdk_exporter_records_become_system_logs(
    module_server: Server, mclient: httpx.AsyncClient, otel: Any
) -> None:
    server, client = module_server, mclient
    start = await head_seq(client)
    provider = otel({"service.name": "checkout", "deployment.environment": "test"})
    logger = provider.get_logger("checkout.api", "1.2.0")
    moment = datetime(2026, 3, 14, 15, 9, 26, 535_000, tzinfo=UTC)
    cases = [
        (SeverityNumber.DEBUG, "DEBUG", "cache miss for cart 17", "DEBUG"),
        (SeverityNumber.INFO, "INFO", "order A-17 placed", "INFO"),
        (SeverityNumber.WARN, "WARN", "payment provider slow: 2.3s", "WARNING"),
        (SeverityNumber.ERROR, "ERROR", "payment declined", "ERROR"),
        (SeverityNumber.FATAL, "FATAL", "database unreachable, giving up", "CRITICAL"),
    ]
    attrs = {"http.route": "/cart/{id}", "cart.items": 3, "retry": True, "ratio": 0.25, "tags": ["eu", "web"]}
    for i, (number, text, body, _) in enumerate(cases):
        logger.emit(
            timestamp=int(moment.replace(microsecond=0).timestamp()) * 10**9 + 535_000_000 + i * 1_000_000,
            severity_number=number,
            severity_text=text,
            body=body,
            attributes={**attrs, "case": i},
            context=span_context(),
        )
    logger.emit(severity_number=SeverityNumber.INFO, body={"event": "cart.updated", "items": 3})
    assert provider.force_flush(10_000)

    try:
        logs = await wait_until(
            lambda: system_when(client, len(cases) + 1, start), timeout=3, what="the OTLP records as system logs"
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; server log:\n{server_trouble(server)}") from None
    assert [log["message"] for log in logs[: len(cases)]] == [body for _, _, body, _ in cases]
    for i, (log, (_, _, _, level)) in enumerate(zip(logs, cases, strict=False)):
        assert log["level"] == level, (i, log)
        meta = log["metadata"]
        assert meta["attributes"] == {**attrs, "case": i}
        assert meta["resource"]["service.name"] == "checkout"
        assert meta["resource"]["deployment.environment"] == "test"
        assert meta["resource"]["telemetry.sdk.language"] == "python"
        assert meta["scope"] == {"name": "checkout.api", "version": "1.2.0"}
        assert meta["traceId"] == f"{TRACE_ID:032x}"
        assert meta["spanId"] == f"{SPAN_ID:016x}"
        assert abs((parse_ts(log["timestamp"]) - moment).total_seconds() - i / 1000) < 0.001
    structured = logs[len(cases)]
    assert structured["metadata"]["body"] == {"event": "cart.updated", "items": 3}
    assert structured["message"]


async def system_when(client: httpx.AsyncClient, n: int, after: int) -> list[dict[str, Any]] | None:
    logs = await system_logs(client, after)
    return logs if len(logs) >= n else None


# the brief's bridge: opentelemetry-sdk's own LoggingHandler (deprecated there in favour of
# opentelemetry-instrumentation-logging, which is not installed)
@pytest.mark.filterwarnings("ignore:.*LoggingHandler.*:DeprecationWarning")
async def test_otel_stdlib_logging_bridge(module_server: Server, mclient: httpx.AsyncClient, otel: Any) -> None:
    server, client = module_server, mclient
    start = await head_seq(client)
    provider = otel({"service.name": "worker"}, batch=False)
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    log = logging.getLogger("shop.worker")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.addHandler(handler)
    try:
        with trace.use_span(trace.get_current_span(span_context())):
            log.info("order %s placed", "A-17", extra={"order.total": 99.5, "customer": "c-42"})
        log.warning("stock low for %s", "sku-9")
        try:
            raise ZeroDivisionError("division by zero")
        except ZeroDivisionError:
            log.exception("checkout crashed")
        handler.flush()
        assert provider.force_flush(10_000)
    finally:
        log.removeHandler(handler)

    try:
        logs = await wait_until(lambda: system_when(client, 3, start), timeout=3, what="the bridged log records")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; server log:\n{server_trouble(server)}") from None
    assert [(entry["level"], entry["message"]) for entry in logs] == [
        ("INFO", "order A-17 placed"),
        ("WARNING", "stock low for sku-9"),
        ("ERROR", "checkout crashed"),
    ]
    first = logs[0]["metadata"]
    assert first["attributes"]["order.total"] == 99.5
    assert first["attributes"]["customer"] == "c-42"
    assert first["scope"]["name"] == "shop.worker"
    assert first["resource"]["service.name"] == "worker"
    assert first["traceId"] == f"{TRACE_ID:032x}" and first["spanId"] == f"{SPAN_ID:016x}"
    assert "traceId" not in logs[1]["metadata"]
    crash = logs[2]["metadata"]["attributes"]
    assert crash["exception.type"] == "ZeroDivisionError"
    assert "Traceback" in crash["exception.stacktrace"]
    # the SDK names the source file `code.file.path` (current semantic conventions)
    assert logs[0]["file_path"] == __file__, (logs[0]["file_path"], first["attributes"])


async def test_otel_agent_attribute_makes_agent_logs(
    module_server: Server, mclient: httpx.AsyncClient, otel: Any
) -> None:
    server, client = module_server, mclient
    _, (planner, coder) = await make_agents(client, 2)
    start = await head_seq(client)
    provider = otel({"service.name": "fleet"})
    logger = provider.get_logger("planner")
    logger.emit(
        severity_number=SeverityNumber.WARN,
        body="plan has 3 open questions",
        attributes={"orchlog.agent_id": planner, "step": "plan"},
        context=span_context(),
    )
    # the agent named by the resource instead of the record
    by_resource = otel({"service.name": "coder", "orchlog.agent_id": coder})
    by_resource.get_logger("coder.loop").emit(severity_number=SeverityNumber.INFO, body="wrote 2 files")
    assert provider.force_flush(10_000) and by_resource.force_flush(10_000)

    try:
        rows = await wait_until(lambda: rows_when(client, 2, start), timeout=3, what="the OTLP agent logs")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; server log:\n{server_trouble(server)}") from None
    by_agent = {r["data"]["agent_id"]: r["data"] for r in rows}
    first = by_agent[planner]
    assert first["level"] == "WARNING"
    assert first["content"] == "plan has 3 open questions"
    assert first["event_type"] == "planner"
    assert first["payload"]["attributes"]["step"] == "plan"
    assert first["payload"]["traceId"] == f"{TRACE_ID:032x}"
    second = by_agent[coder]
    assert (second["level"], second["content"], second["event_type"]) == ("INFO", "wrote 2 files", "coder.loop")
    assert second["payload"]["resource"]["service.name"] == "coder"
    assert await system_logs(client, start) == []


# ---------------------------------------------------------------- OpenTelemetry: OTLP JSON by hand
