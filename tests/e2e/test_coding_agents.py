"""Coding agents out of the box (issue 17), end to end against a real ``orchlog serve`` with
tokens on, each README "Connect your agents" block taken from the README itself:

- the hook as ``orchlog hook install`` writes it, run the way Claude Code runs it (``sh -c``,
  ``PATH=/usr/bin:/bin``, JSON on stdin): stored with the token, spooled and said so without;
- a Claude Code session exported by the real OTel SDK exporter configured only by the README's
  environment variables: one agent, exact cost, five logs on history, the stream, the compat API;
- a Codex session sent as the README's ``[otel]`` block says (protobuf, Bearer header);
- gzip bodies, partial success in JSON and protobuf, Bearer auth from OTEL_EXPORTER_OTLP_HEADERS.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import shlex
import socket
import sqlite3
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.json_format import ParseDict
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from websockets.asyncio.client import connect

from helpers import REPO, Server, TokenServer, bearer, create_token, wait_until
from helpers.otel_payloads import CODEX_RESOURCE, SESSION, claude, claude_session, codex_session, export
from helpers.pg import needs_pg, throwaway_database

README = REPO / "README.md"
NAMESPACE = uuid.UUID("6b1e5f0e-3c1d-4c59-9d0e-0f6a1c2b7d10")  # claude_code.NAMESPACE, restated on purpose


def readme_blocks() -> dict[str, str]:
    """The fenced code blocks of README's "Connect your agents" section, by language."""
    text = README.read_text()
    section = text[text.index("## Connect your agents") :]
    section = section[: section.index("\n## ", 3)]
    blocks: dict[str, list[str]] = {}
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S):
        blocks.setdefault(lang, []).append(body)
    assert [len(v) for v in blocks.values()] == [2, 1] and list(blocks) == ["sh", "toml"], blocks
    return {"hooks": blocks["sh"][0], "telemetry": blocks["sh"][1], "codex": blocks["toml"][0]}


def with_server(text: str, url: str) -> str:
    return text.replace("http://127.0.0.1:8000", url)


class Box:
    def __init__(self, server: TokenServer, db: Path, ingest: str, admin: str, reader: str) -> None:
        self.server, self.db, self.ingest, self.admin, self.reader = server, db, ingest, admin, reader

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.server.url, headers=bearer(self.admin), timeout=30)


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    directory = tmp_path_factory.mktemp("coding-agents")
    db = directory / "orchlog.db"
    ingest = create_token(db, "agents", "ingest")
    admin = create_token(db, "boss", "admin")
    reader = create_token(db, "viewer", "read")
    server = TokenServer(db)
    server.start()
    try:
        yield Box(server, db, ingest, admin, reader)
    finally:
        server.stop()


def agent_uuid(kind: str, name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}:agent:{name}"))


async def agent_rows(client: httpx.AsyncClient, agent_id: str) -> list[dict[str, Any]]:
    r = await client.get("/api/v1/events", params={"agent_id": agent_id, "after": 0, "limit": 1000})
    assert r.status_code == 200, r.text
    return [item["data"] for item in r.json()["items"]]


async def rows_when(client: httpx.AsyncClient, agent_id: str, n: int) -> list[dict[str, Any]] | None:
    rows = await agent_rows(client, agent_id)
    return rows if len(rows) >= n else None


# ---------------------------------------------------------------- Claude Code hooks


def hook_env(tmp: Path, token: str) -> dict[str, str]:
    """Claude Code's environment as a hook sees it: a bare PATH (no venv), the user's token."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "XDG_CACHE_HOME": str(tmp / "cache"), "ORCHLOG_TOKEN": token}


def pre_tool_use(session: str, n: int) -> dict[str, Any]:
    return {
        "session_id": session,
        "transcript_path": f"/home/dev/.claude/projects/shop/{session}.jsonl",
        "cwd": "/home/dev/shop",
        "hook_event_name": "PreToolUse",
        "permission_mode": "default",
        "tool_name": "Bash",
        "tool_input": {"command": f"npm test -- --shard {n}", "description": "Run the tests"},
        "tool_use_id": f"toolu_hook_{n:03d}",
    }


def run_command(
    command: str, payload: dict[str, Any], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", command],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=30,
    )


def spool_count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM spool").fetchone()[0])
    finally:
        conn.close()


def spooled_now(path: Path) -> int:
    """spool_count for a spool another process may be creating right now (0 until it exists)."""
    if not path.exists():
        return 0
    try:
        return spool_count(path)
    except sqlite3.OperationalError:  # the table is not created yet
        return 0


def install_from_readme(box: Box, project: Path) -> list[str]:
    """Run the README's install line in ``project``; every command it wrote, one per hook entry."""
    line = with_server(readme_blocks()["hooks"].strip(), box.server.url)
    words = shlex.split(line)
    assert words[:3] == ["orchlog", "hook", "install"], line
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHLOG_")}
    done = subprocess.run(
        [sys.executable, "-m", "orchlog", *words[1:]], cwd=project, capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no warning: no secret was written
    settings = json.loads((project / ".claude" / "settings.json").read_text())
    commands = [h["command"] for entries in settings["hooks"].values() for e in entries for h in e["hooks"]]
    assert len(commands) >= 10
    return commands


async def test_installed_hook_runs_with_claude_codes_path_and_token(box: Box, tmp_path: Path) -> None:
    """Done-when: install with --project --url U --token-env ORCHLOG_TOKEN; every written command,
    run with PATH=/usr/bin:/bin and the token in the environment, stores a PreToolUse event;
    with a wrong token the event is spooled and -v says 401; fixed token → delivered."""
    project = tmp_path / "shop"
    project.mkdir()
    commands = install_from_readme(box, project)
    assert box.ingest not in (project / ".claude" / "settings.json").read_text()
    session = "1ab2c3d4-0000-4000-8000-0000000000aa"
    env = hook_env(tmp_path, box.ingest)
    for n, command in enumerate(commands):
        done = run_command(command, pre_tool_use(session, n), env, project)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), command
    agent_id = agent_uuid("claude-code", f"claude-{session[:8]}")
    async with box.client() as client:
        rows = await wait_until(lambda: rows_when(client, agent_id, len(commands)), 10, "the hook events")
        assert [r["payload"]["tool_use_id"] for r in rows] == [f"toolu_hook_{n:03d}" for n in range(len(commands))]
        assert {(r["event_category"], r["event_type"]) for r in rows} == {("hook", "PreToolUse")}

        # a wrong token: refused, kept, and -v says why (never "sent")
        bad = hook_env(tmp_path, "olg_" + "x" * 43)
        done = run_command(commands[0] + " -v", pre_tool_use(session, 100), bad, project)
        assert (done.returncode, done.stdout) == (0, "")
        assert "401" in done.stderr and "spooled" in done.stderr and "sent" not in done.stderr, done.stderr
        spool = tmp_path / "cache" / "orchlog" / "hook-spool.db"
        assert spool_count(spool) == 1
        # a token without the ingest scope: refused (403), kept too
        done = run_command(commands[0] + " -v", pre_tool_use(session, 100), hook_env(tmp_path, box.reader), project)
        assert "403" in done.stderr and "spooled" in done.stderr, done.stderr
        assert spool_count(spool) == 2
        # the token fixed: the spooled event goes out first, then the new one
        done = run_command(commands[0] + " -v", pre_tool_use(session, 101), env, project)
        assert "sent (with 2 spooled)" in done.stderr, done.stderr
        rows = await wait_until(lambda: rows_when(client, agent_id, len(commands) + 3), 10, "the spooled events")
        assert [r["payload"]["tool_use_id"] for r in rows[len(commands) :]] == [
            "toolu_hook_100",
            "toolu_hook_100",  # the same hook input twice, sent by two runs: two events
            "toolu_hook_101",
        ]
        assert spool_count(spool) == 0


async def test_hook_drops_what_the_server_can_never_accept(box: Box, tmp_path: Path) -> None:
    """A spooled item the server refuses with 422 is dropped (with a message), the rest is sent."""
    project = tmp_path / "p"
    project.mkdir()
    command = install_from_readme(box, project)[0]
    env = hook_env(tmp_path, box.ingest)
    spool = tmp_path / "cache" / "orchlog" / "hook-spool.db"
    spool.parent.mkdir(parents=True)
    conn = sqlite3.connect(spool)
    conn.execute("CREATE TABLE spool (n INTEGER PRIMARY KEY AUTOINCREMENT, item TEXT NOT NULL)")
    conn.execute("INSERT INTO spool (item) VALUES ('[1, 2, 3]')")  # not a hook object: 422 for ever
    conn.commit()
    conn.close()
    session = "2bc3d4e5-0000-4000-8000-0000000000bb"
    done = run_command(command + " -v", pre_tool_use(session, 7), env, project)
    assert (done.returncode, done.stdout) == (0, "")
    assert "dropped" in done.stderr and "422" in done.stderr, done.stderr
    assert "PreToolUse sent" in done.stderr, done.stderr
    assert spool_count(spool) == 0
    async with box.client() as client:
        rows = await wait_until(lambda: rows_when(client, agent_uuid("claude-code", "claude-2bc3d4e5"), 1), 10, "x")
        assert rows[0]["payload"]["tool_use_id"] == "toolu_hook_007"


async def test_hook_drops_an_event_over_the_servers_body_limit(server_factory: Any, tmp_path: Path) -> None:
    """413 can never succeed for the same bytes: dropped (said with -v), not kept for ever."""
    server = server_factory(env={"ORCHLOG_MAX_BODY_BYTES": "4096"})
    spool = tmp_path / "spool.db"
    cmd = [sys.executable, "-m", "orchlog.hook", "--url", server.url, "--spool", str(spool), "-v"]
    env = hook_env(tmp_path, "")
    huge = {**pre_tool_use("3cd4e5f6-0000-4000-8000-0000000000cc", 1), "tool_response": {"stdout": "ok\n" * 5000}}
    done = run_command(shlex.join(cmd), huge, env, tmp_path)
    assert (done.returncode, done.stdout) == (0, "")
    assert "dropped" in done.stderr and "413" in done.stderr, done.stderr
    assert spool_count(spool) == 0
    small = pre_tool_use("3cd4e5f6-0000-4000-8000-0000000000cc", 2)
    done = run_command(shlex.join(cmd), small, env, tmp_path)
    assert "PreToolUse sent" in done.stderr, done.stderr
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        rows = await agent_rows(client, agent_uuid("claude-code", "claude-3cd4e5f6"))
        assert [r["payload"]["tool_use_id"] for r in rows] == ["toolu_hook_002"]


async def test_hook_killed_while_posting_loses_nothing(server_factory: Any, tmp_path: Path) -> None:
    """The event is in the spool before the post: a hook killed while the server hangs (Claude
    Code's hook timeout) leaves it there, and the next run delivers it."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections are accepted by the kernel; nobody ever answers
    spool = tmp_path / "spool.db"
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    session = "4de5f607-0000-4000-8000-0000000000dd"
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "orchlog.hook", "--url", url, "--spool", str(spool), "--wait", "30"],
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=hook_env(tmp_path, ""),
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(pre_tool_use(session, 1)).encode())
        proc.stdin.close()
        await wait_until(lambda: spooled_now(spool) == 1, 10, "the event in the spool")
        assert proc.returncode is None  # still waiting for the silent server
        proc.kill()
        await proc.wait()
    finally:
        silent.close()
        if proc.returncode is None:
            proc.kill()
    assert spool_count(spool) == 1
    server = server_factory()
    cmd = shlex.join([sys.executable, "-m", "orchlog.hook", "--url", server.url, "--spool", str(spool), "-v"])
    done = run_command(cmd, pre_tool_use(session, 2), hook_env(tmp_path, ""), tmp_path)
    assert "sent (with 1 spooled)" in done.stderr, done.stderr
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        rows = await agent_rows(client, agent_uuid("claude-code", "claude-4de5f607"))
        assert [r["payload"]["tool_use_id"] for r in rows] == ["toolu_hook_001", "toolu_hook_002"]


def test_install_with_token_writes_it_and_warns(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHLOG_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchlog",
            "hook",
            "install",
            "--project",
            "--url",
            "http://h:1",
            "--token",
            "olg_s3cr3t",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    path = tmp_path / ".claude" / "settings.json"
    assert "olg_s3cr3t" in path.read_text()
    assert "warning" in done.stderr and "plain text" in done.stderr and str(path) in done.stderr
    assert path.stat().st_mode & 0o077 == 0  # not readable by others


# ---------------------------------------------------------------- Claude Code telemetry


def readme_otel_env(url: str, token: str) -> dict[str, str]:
    """The README's `export NAME=VALUE` lines, with the test server and token."""
    env: dict[str, str] = {}
    for line in readme_blocks()["telemetry"].splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        assert words[0] == "export" and len(words) == 2, line
        name, _, raw = words[1].partition("=")
        env[name] = with_server(raw, url).replace("${ORCHLOG_TOKEN}", token)
    return env


def emit_claude_session(logger: Any, session: str) -> None:
    """One Claude Code session as Claude Code emits it: a prompt, two tool results, two API requests."""

    def emit(event: str, n: int, **attrs: Any) -> None:
        standard = {
            "event.name": event,
            "event.timestamp": f"2026-02-01T10:00:0{n}.000Z",
            "event.sequence": n,
            "session.id": session,
            "prompt.id": "9f8e7d6c-0000-4000-8000-000000000001",
            "terminal.type": "vscode",
        }
        logger.emit(body=f"claude_code.{event}", attributes={**standard, **attrs})

    emit("user_prompt", 0, prompt_length=25, prompt="Make the cart test pass.")
    emit("tool_result", 1, tool_name="Read", tool_use_id="toolu_r", success="true", duration_ms=8)
    emit("api_request", 2, model="claude-sonnet-4-5", cost_usd=0.0123, input_tokens=1500, output_tokens=220,
         cache_read_tokens=12000, cache_creation_tokens=300, duration_ms=2400)  # fmt: skip
    emit("tool_result", 3, tool_name="Bash", tool_use_id="toolu_b", success="true", duration_ms=5100,
         tool_parameters=json.dumps({"bash_command": "npm test"}))  # fmt: skip
    emit("api_request", 4, model="claude-sonnet-4-5", cost_usd=0.0456, input_tokens=900, output_tokens=140,
         duration_ms=1800)  # fmt: skip


async def test_claude_code_telemetry_session_is_one_agent_with_exact_cost(
    box: Box, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Done-when: the README's telemetry variables, the real SDK exporter (protobuf, gzip, Bearer
    from OTEL_EXPORTER_OTLP_HEADERS); one agent, total_cost exactly 0.0579, five agent logs in
    order on /list_agents, history, the stream and /get_events."""
    for name, val in readme_otel_env(box.server.url, box.ingest).items():
        monkeypatch.setenv(name, val)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")  # what the SDKs are commonly set to send
    session = "5e55104e-c1a0-4de0-9b6e-0123456789ab"
    agent_id = agent_uuid("claude-code", f"claude-{session[:8]}")
    async with box.client() as client:
        head = (await client.get("/api/v1/events", params={"limit": 1})).json()["head_seq"]
        async with connect(
            f"{box.server.ws}/api/v1/stream?agent_id={agent_id}&after={head}",
            additional_headers=bearer(box.admin),
            ping_interval=None,
        ) as ws:
            exporter = OTLPLogExporter()  # endpoint, headers, compression: all from the environment
            assert exporter._compression.value == "gzip"
            provider = LoggerProvider(
                resource=Resource.create({"service.name": "claude-code", "service.version": "2.0.14"})
            )
            provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
            emit_claude_session(provider.get_logger("com.anthropic.claude_code.events", "2.0.14"), session)
            assert provider.force_flush(10_000)
            provider.shutdown()

            rows = await wait_until(lambda: rows_when(client, agent_id, 5), 10, "the five Claude Code events")
            expected = [
                ("hook", "UserPromptSubmit", "Make the cart test pass."),
                ("hook", "PostToolUse", "Read (8 ms)"),
                ("response", "api_request", None),
                ("hook", "PostToolUse", "Bash: npm test (5100 ms)"),
                ("response", "api_request", None),
            ]
            assert len(rows) == 5
            for row, (category, event_type, content) in zip(rows, expected, strict=True):
                assert (row["event_category"], row["event_type"], row["session_id"]) == (category, event_type, session)
                if content is not None:
                    assert row["content"] == content
            ids = [r["id"] for r in rows]

            frames = []
            while len(frames) < 5:
                frame = json.loads(await ws.recv())
                if frame["type"] == "agent_log":
                    frames.append(frame["data"]["id"])
            assert frames == ids  # the stream: the same five, in order

        agents = (await client.get("/api/v1/agents", params={"name": f"claude-{session[:8]}"})).json()["items"]
        assert [a["id"] for a in agents] == [agent_id]
        agent = agents[0]
        assert Decimal(str(agent["total_cost"])) == Decimal("0.0579")
        assert str(agent["total_cost"]) == "0.0579"
        assert (agent["input_tokens"], agent["output_tokens"]) == (2400, 360)
        assert agent["model"] == "claude-sonnet-4-5"
        assert agent["session_id"] == session

        listed = {a["id"]: a for a in (await client.get("/list_agents")).json()["agents"]}
        assert listed[agent_id]["log_count"] == 5
        assert str(listed[agent_id]["total_cost"]) == "0.0579"
        compat = (await client.get("/get_events", params={"agent_id": agent_id, "event_types": "agent_logs"})).json()
        assert [e["id"] for e in compat["events"]] == ids
        assert {e["sourceType"] for e in compat["events"]} == {"agent_log"}

        # the same export again (an exporter retry after a lost answer): no new rows, no added cost
        retry = claude(
            "api_request", 9, model="m", cost_usd=0.5, **{"session.id": "ae7e1000-0000-4000-8000-00000000000e"}
        )
        body = gzip.compress(json.dumps(export([retry], {})).encode())
        for _ in range(2):
            r = await client.post(
                "/v1/logs",
                content=body,
                headers={"content-type": "application/json", "content-encoding": "gzip", **bearer(box.ingest)},
            )
            assert r.status_code == 200, r.text
        retried = (await client.get("/api/v1/agents", params={"name": "claude-ae7e1000"})).json()["items"]
        assert str(retried[0]["total_cost"]) == "0.5"
        assert len(await agent_rows(client, retried[0]["id"])) == 1


async def test_otlp_auth_partial_success_and_encodings(box: Box) -> None:
    records = [claude("api_request", 0, model="m", cost_usd="free"), claude("user_prompt", 1, prompt="hi")]
    request = export(records, {"service.name": "claude-code"})
    async with box.client() as client:
        r = await client.post("/v1/logs", json=request, headers={"Authorization": ""})
        assert r.status_code == 401, r.text

        r = await client.post("/v1/logs", json=request, headers=bearer(box.ingest))
        assert r.status_code == 200, r.text
        partial = r.json()["partialSuccess"]
        assert partial["rejectedLogRecords"] == 1 and "cost_usd" in partial["errorMessage"]

        message = ParseDict(request, ExportLogsServiceRequest())
        r = await client.post(
            "/v1/logs",
            content=gzip.compress(message.SerializeToString()),
            headers={"content-type": "application/x-protobuf", "content-encoding": "gzip", **bearer(box.ingest)},
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/x-protobuf"
        answer = ExportLogsServiceResponse.FromString(r.content)
        assert answer.partial_success.rejected_log_records == 1

        bomb = gzip.compress(b"\0" * (40 << 20))
        r = await client.post(
            "/v1/logs",
            content=bomb,
            headers={"content-type": "application/json", "content-encoding": "gzip", **bearer(box.ingest)},
        )
        assert r.status_code == 413, r.text
        r = await client.post(
            "/v1/logs",
            content=b"{}",
            headers={"content-type": "application/json", "content-encoding": "zstd", **bearer(box.ingest)},
        )
        assert r.status_code == 415 and "Content-Encoding" in r.text, r.text


# ---------------------------------------------------------------- Codex


async def test_codex_readme_config_delivers_a_session(box: Box) -> None:
    config = tomllib.loads(readme_blocks()["codex"])["otel"]
    exporter = config["exporter"]["otlp-http"]
    assert exporter["endpoint"] == "http://127.0.0.1:8000/v1/logs"
    assert exporter["protocol"] == "binary"  # protobuf
    headers = {k: v.replace("${ORCHLOG_TOKEN}", box.ingest) for k, v in exporter["headers"].items()}
    body = ParseDict(codex_session(), ExportLogsServiceRequest()).SerializeToString()
    async with httpx.AsyncClient(timeout=30) as raw:
        r = await raw.post(
            with_server(exporter["endpoint"], box.server.url),
            content=body,
            headers={"content-type": "application/x-protobuf", **headers},
        )
    assert r.status_code == 200, r.text
    assert ExportLogsServiceResponse.FromString(r.content).partial_success.rejected_log_records == 0
    name = "codex-019a7c3e"
    agent_id = agent_uuid("codex", name)
    async with box.client() as client:
        rows = await agent_rows(client, agent_id)
        assert [r["event_type"] for r in rows] == [
            "SessionStart",
            "UserPromptSubmit",
            "api_request",
            "PreToolUse",
            "PreToolUse",
            "PostToolUse",
            "response.output_text.delta",
            "response.completed",
        ]
        agent = (await client.get(f"/api/v1/agents/{agent_id}")).json()
        assert (agent["name"], agent["model"]) == (name, "gpt-5-codex")
        assert (agent["input_tokens"], agent["output_tokens"], agent["total_cost"]) == (5120, 640, 0)
        orchestrators = (await client.get("/api/v1/orchestrator-agents")).json()["items"]
        assert agent["orchestrator_agent_id"] in {o["id"] for o in orchestrators}
        # one orchestrator per service and host
        assert CODEX_RESOURCE["host.name"] in json.dumps([o["metadata"] for o in orchestrators])


# ---------------------------------------------------------------- both stores


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=needs_pg)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "store.db")
        return
    with throwaway_database() as url:
        yield url


async def test_session_usage_is_exact_on_both_stores(store_url: str, tmp_path: Path) -> None:
    """The write ops the OTLP route uses (ensure agent, insert, add_* increments) on SQLite and
    PostgreSQL: the Claude Code session costs exactly 0.0579, and a resent export adds nothing."""
    server = Server(tmp_path / "unused.db")
    server.db = store_url  # type: ignore[assignment]  # a path or a postgresql:// URL: passed as --db
    server.start()
    try:
        body = gzip.compress(json.dumps(claude_session()).encode())
        headers = {"content-type": "application/json", "content-encoding": "gzip"}
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            for _ in range(2):
                r = await client.post("/v1/logs", content=body, headers=headers)
                assert (r.status_code, r.json()) == (200, {}), r.text
            agent_id = agent_uuid("claude-code", f"claude-{SESSION[:8]}")
            agent = (await client.get(f"/api/v1/agents/{agent_id}")).json()
            assert str(agent["total_cost"]) == "0.0579"
            assert (agent["input_tokens"], agent["output_tokens"]) == (2000, 405)
            assert len(await agent_rows(client, agent_id)) == 5
    finally:
        server.stop()
