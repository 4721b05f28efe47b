"""Coding-agent integrations as pure functions (issue 17): the Claude Code and Codex OTel event
mappers, the usage they add, gzip bodies, the hook's settings merge and its import set.

Inputs are OTLP JSON shaped after the documented event catalogues (Claude Code "Monitoring":
``claude_code.*`` events keyed by ``session.id``; Codex ``[otel]``: ``codex.*`` events keyed by
``conversation.id``). End-to-end checks against a real server live in test_coding_agents.py.
"""

from __future__ import annotations

import gzip
import json
import random
import shlex
import subprocess
import sys
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from helpers.otel_payloads import (
    CLAUDE_RESOURCE,
    CODEX_RESOURCE,
    CONVERSATION,
    SESSION,
    claude,
    claude_session,
    codex,
    codex_session,
    export,
    record,
)
from orchlog.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from orchlog.hook_install import hook_command, is_orchlog_command, merge_settings
from orchlog.integrations import claude_code, otlp
from orchlog.integrations.agents import agent_patches, stable_id
from orchlog.models import DEFAULT_LIMITS, EntityPatch
from orchlog.validation import validate_logs

# ---------------------------------------------------------------- Claude Code


def test_claude_session_is_one_agent_five_logs_and_exact_usage() -> None:
    mapped = otlp.map_export(claude_session())
    assert mapped.rejected == 0
    name = f"claude-{SESSION[:8]}"
    agent_id = claude_code.agent_id_for(name)  # the agent the hook endpoint uses for this session
    assert list(mapped.agents) == [agent_id]
    spec = mapped.agents[agent_id]
    assert spec.name == name
    assert spec.orchestrator_id == stable_id("otel", "orchestrator", "claude-code", "")
    assert [(i["kind"], i["agent_id"], i["session_id"]) for i in mapped.items] == [("agent_log", agent_id, SESSION)] * 5
    assert [(i["event_category"], i["event_type"], i["level"]) for i in mapped.items] == [
        ("hook", "UserPromptSubmit", "INFO"),
        ("hook", "PostToolUse", "INFO"),
        ("response", "api_request", "INFO"),
        ("hook", "PostToolUseFailure", "ERROR"),
        ("response", "api_request", "INFO"),
    ]
    contents = [i["content"] for i in mapped.items]
    assert contents[0] == "Fix the failing checkout test."
    assert contents[1] == "Bash: npm test (412 ms)"
    assert contents[3] == "Edit (3 ms) failed: Error:ENOENT"
    assert "1200 in / 310 out" in contents[2] and "$0.0123" in contents[2]
    assert mapped.items[1]["payload"]["tool_use_id"] == "toolu_01"  # joins the hook events of the call
    assert mapped.items[1]["payload"]["attributes"]["duration_ms"] == 412
    assert mapped.items[0]["timestamp"] == "2025-12-29T09:20:00.000000Z"

    patches = agent_patches(mapped.mapped, [True] * 5)
    assert patches == {
        agent_id: {
            "add_input_tokens": 2000,
            "add_output_tokens": 405,
            "add_cost": Decimal("0.0579"),  # exactly: 0.0123 + 0.0456, no float drift
            "model": "claude-sonnet-4-5",
            "session_id": SESSION,
        }
    }
    # a duplicate (an exporter retry acked as already stored) adds nothing
    only_first = agent_patches(mapped.mapped, [True, True, True, True, False])
    assert only_first[agent_id]["add_cost"] == Decimal("0.0123")
    assert only_first[agent_id]["add_input_tokens"] == 1200


def test_claude_record_ids_are_stable_per_record() -> None:
    first = [i["id"] for i in otlp.map_export(claude_session()).items]
    again = [i["id"] for i in otlp.map_export(claude_session()).items]
    assert first == again  # a resent export is recognised as duplicates
    assert len(set(first)) == 5


def test_claude_prompt_stored_only_when_exported() -> None:
    redacted = claude("user_prompt", 0, prompt_length=57, prompt="<REDACTED>")
    absent = claude("user_prompt", 1, prompt_length=12)
    items = otlp.map_export(export([redacted, absent], CLAUDE_RESOURCE)).items
    assert [i["content"] for i in items] == [
        "prompt submitted (57 chars, text not exported)",
        "prompt submitted (12 chars, text not exported)",
    ]
    assert "prompt" not in items[0]["payload"]["attributes"]
    assert items[0]["payload"]["attributes"]["prompt_length"] == 57


def test_claude_decisions_errors_and_unknown_events() -> None:
    records = [
        claude("tool_decision", 0, tool_name="Write", decision="reject", source="user_reject", tool_use_id="t9"),
        claude("tool_decision", 1, tool_name="Read", decision="accept", source="config"),
        claude("api_error", 2, model="claude-opus-4-1", error="Overloaded", status_code=529, attempt=3),
        claude("api_refusal", 3, model="claude-opus-4-1"),
    ]
    items = otlp.map_export(export(records, CLAUDE_RESOURCE)).items
    assert [(i["event_category"], i["event_type"], i["level"], i["content"]) for i in items] == [
        ("hook", "PreToolUse", "WARNING", "Write: reject (user_reject)"),
        ("hook", "PreToolUse", "INFO", "Read: accept (config)"),
        ("response", "api_error", "ERROR", "claude-opus-4-1: HTTP 529 Overloaded (attempt 3)"),
        ("response", "api_refusal", "INFO", "api_refusal"),
    ]


def test_claude_bad_cost_rejects_only_that_record() -> None:
    records = [
        claude("api_request", 0, model="m", cost_usd="lots", input_tokens=1),
        claude("api_request", 1, model="m", cost_usd=-0.5),
        claude("api_request", 2, model="m", cost_usd=0.25, input_tokens=-3),
        claude("api_request", 3, model="m", cost_usd="0.0001", input_tokens="7"),
    ]
    mapped = otlp.map_export(export(records, CLAUDE_RESOURCE))
    assert mapped.rejected == 3
    assert any("cost_usd" in r for r in mapped.reasons) and any("input_tokens" in r for r in mapped.reasons)
    assert len(mapped.items) == 1
    patch = next(iter(agent_patches(mapped.mapped, [True]).values()))
    assert (patch["add_cost"], patch["add_input_tokens"]) == (Decimal("0.0001"), 7)


def test_other_records_keep_the_generic_mapping() -> None:
    plain = export([record("order placed", {"cart": 3})], {"service.name": "checkout"})
    no_session = export([record("claude_code.user_prompt", {"event.name": "user_prompt"})], CLAUDE_RESOURCE)
    for request in (plain, no_session):
        mapped = otlp.map_export(request)
        assert [i["kind"] for i in mapped.items] == ["system_log"]
        assert mapped.mapped == [None] and mapped.agents == {}
    assert otlp.map_export(plain).items[0]["message"] == "order placed"


def test_one_orchestrator_per_service_and_host() -> None:
    a = otlp.map_export(export([claude("user_prompt", 0)], {**CLAUDE_RESOURCE, "host.name": "dev-1"}))
    b = otlp.map_export(export([claude("user_prompt", 0)], {**CLAUDE_RESOURCE, "host.name": "dev-2"}))
    (spec_a,), (spec_b,) = a.agents.values(), b.agents.values()
    assert spec_a.orchestrator_id != spec_b.orchestrator_id
    assert spec_a.agent_id == spec_b.agent_id  # the session decides the agent
    assert spec_a.metadata["host.name"] == "dev-1"


# ---------------------------------------------------------------- Codex


def test_codex_conversation_is_one_agent_with_tokens() -> None:
    mapped = otlp.map_export(codex_session())
    assert mapped.rejected == 0
    agent_id = stable_id("codex", "agent", f"codex-{CONVERSATION[:8]}")
    assert list(mapped.agents) == [agent_id]
    assert mapped.agents[agent_id].name == f"codex-{CONVERSATION[:8]}"
    assert mapped.agents[agent_id].model == "gpt-5-codex"
    assert [(i["event_category"], i["event_type"], i["level"]) for i in mapped.items] == [
        ("hook", "SessionStart", "INFO"),
        ("hook", "UserPromptSubmit", "INFO"),
        ("response", "api_request", "INFO"),
        ("hook", "PreToolUse", "WARNING"),
        ("hook", "PreToolUse", "INFO"),
        ("hook", "PostToolUse", "INFO"),
        ("response", "response.output_text.delta", "DEBUG"),
        ("response", "response.completed", "INFO"),
    ]
    assert {i["session_id"] for i in mapped.items} == {CONVERSATION}
    assert mapped.items[1]["content"] == "prompt submitted (20 chars, text not exported)"
    assert "prompt" not in mapped.items[1]["payload"]["attributes"]
    assert mapped.items[3]["content"] == "shell: denied (user)"
    result = mapped.items[5]
    assert result["content"] == 'shell: {"command":["pytest","-q"]} (5400 ms)'
    assert result["payload"]["call_id"] == "call_2"
    assert len(result["payload"]["attributes"]["output"]) < 9000  # long tool output is cut, and says so
    assert result["payload"]["_truncated"] == ["attributes.output"]
    patches = agent_patches(mapped.mapped, [True] * len(mapped.items))
    assert patches[agent_id]["add_input_tokens"] == 5120
    assert patches[agent_id]["add_output_tokens"] == 640
    assert "add_cost" not in patches[agent_id]  # Codex exports no cost


def test_codex_prompt_kept_when_exported_and_failures_flagged() -> None:
    records = [
        codex("user_prompt", 0, prompt_length=11, prompt="add a test"),
        codex("api_request", 1, attempt=2, **{"http.response.status_code": 429, "error.message": "rate limited"}),
        codex("tool_result", 2, tool_name="apply_patch", success="false", duration_ms=1),
    ]
    items = otlp.map_export(export(records, CODEX_RESOURCE)).items
    assert items[0]["content"] == "add a test"
    assert (items[1]["level"], items[1]["content"]) == ("ERROR", "gpt-5-codex: HTTP 429, attempt 2: rate limited")
    assert (items[2]["event_type"], items[2]["level"]) == ("PostToolUseFailure", "ERROR")


# ---------------------------------------------------------------- gzip bodies


def test_gzip_roundtrip_and_limits_after_decompression() -> None:
    body = json.dumps(claude_session()).encode()
    assert otlp.decode_body(gzip.compress(body), "gzip", max_bytes=len(body)) == body
    assert otlp.decode_body(body, None, max_bytes=len(body)) == body
    with pytest.raises(PayloadTooLarge, match="limit"):
        otlp.decode_body(gzip.compress(body), "gzip", max_bytes=len(body) - 1)


def test_gzip_bomb_refused_by_ratio_without_inflating_it() -> None:
    bomb = gzip.compress(b"\0" * (64 << 20))  # 64 MiB of zeros, ~65 KB compressed
    assert len(bomb) < 100_000
    with pytest.raises(PayloadTooLarge, match="decompression bomb"):
        otlp.gunzip(bomb, max_bytes=1 << 30)


def test_gzip_garbage_truncation_and_unknown_encodings() -> None:
    good = gzip.compress(b'{"resourceLogs": []}')
    with pytest.raises(BadRequest, match="malformed gzip"):
        otlp.decode_body(b"not gzip at all", "gzip", max_bytes=1000)
    with pytest.raises(BadRequest, match="truncated"):
        otlp.decode_body(good[:-12], "gzip", max_bytes=1000)
    with pytest.raises(UnsupportedMediaType, match="br"):
        otlp.decode_body(zlib.compress(b"{}"), "br", max_bytes=1000)


# ---------------------------------------------------------------- hook install: the command and the merge


def test_hook_command_quotes_an_interpreter_path_with_spaces() -> None:
    command = hook_command(url="http://h:1", python="/opt/My Tools/venv/bin/python", agent="fleet 7")
    assert shlex.split(command) == [
        "/opt/My Tools/venv/bin/python",
        "-m",
        "orchlog.hook",
        "--url",
        "http://h:1",
        "--token-env",
        "ORCHLOG_TOKEN",
        "--agent",
        "fleet 7",
    ]
    assert "--token " not in command


@pytest.mark.parametrize(
    ("command", "ours"),
    [
        ("orchlog hook", True),
        ("orchlog hook --agent builder --url http://x", True),
        ("/home/me/.venv/bin/orchlog hook", True),
        ("'/opt/My Tools/python' -m orchlog.hook --url http://x", True),
        ("python3 -m orchlog hook", True),
        ("./scripts/guard-bash.sh", False),
        ("notify-send 'orchlog hook done'", False),
        ("echo 'unbalanced", False),
    ],
)
def test_earlier_orchlog_commands_are_recognised(command: str, ours: bool) -> None:
    assert is_orchlog_command(command) is ours


def test_reinstall_replaces_old_entries_and_keeps_the_users() -> None:
    theirs = {"type": "command", "command": "./scripts/guard-bash.sh"}
    old = {"type": "command", "command": "orchlog hook --agent builder", "timeout": 10}
    settings = {
        "model": "x",
        "hooks": {
            "PreToolUse": [{"matcher": "Bash", "hooks": [theirs, old]}],
            "Stop": [{"hooks": [{"type": "command", "command": "/old/venv/bin/python -m orchlog.hook"}]}],
        },
    }
    new = hook_command(url="http://h:1")
    merged = merge_settings(settings, new)
    assert merged["model"] == "x"
    assert merged["hooks"]["PreToolUse"][0] == {"matcher": "Bash", "hooks": [theirs]}
    commands = [h["command"] for e in merged["hooks"]["Stop"] for h in e["hooks"]]
    assert commands == [new]
    assert merge_settings(merged, new) == merged  # idempotent


# ---------------------------------------------------------------- the hook's import set


HOOK = (sys.executable, "-X", "importtime", "-m", "orchlog.hook")


def test_hook_imports_only_the_standard_library(tmp_path: Path) -> None:
    """What Claude Code pays on every tool call: no pydantic, httpx, starlette, click, orjson,
    nor any server module is imported by ``python -m orchlog.hook`` (whole path: spool + post)."""
    hook = {"session_id": "s", "hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {}}
    done = subprocess.run(
        [*HOOK, "--url", "http://127.0.0.1:9", "-v", "--spool", str(tmp_path / "spool.db"), "--wait", "0.5"],
        input=json.dumps(hook),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, done.stdout) == (0, "")
    modules = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert {"orchlog", "urllib.request", "sqlite3"} <= modules, sorted(modules)  # it did run the whole path
    assert "spooled" in done.stderr
    banned = ("pydantic", "httpx", "httpcore", "starlette", "click", "orjson", "anyio", "uvicorn")
    heavy = sorted(m for m in modules if m.split(".")[0] in banned)
    assert heavy == [], heavy
    server_side = sorted(m for m in modules if m.startswith("orchlog.") and m != "orchlog.hook")
    assert server_side == [], server_side


# ---------------------------------------------------------------- odd values: rejected alone, never a crash

ODD_VALUES: list[Any] = [None, "", "x", "-1", "0.5", "1e400", "NaN", 0, -7, 3, 2.5, -0.1, True, "true", "false"]
ODD_VALUES += ["<REDACTED>", "é" * 300, "{not json", '{"bash_command": 7}', "[1, 2]"]


def test_odd_attribute_values_map_to_valid_items_or_reject_the_record_alone() -> None:
    """Random values in every attribute the mappers read: each record is either rejected alone
    (a reason given) or mapped to an item the ingest validation accepts."""
    rng = random.Random(17)
    keys = [
        "cost_usd", "cost_usd_micros", "input_tokens", "output_tokens", "cache_read_tokens", "duration_ms",
        "success", "prompt", "prompt_length", "tool_name", "tool_parameters", "tool_input", "decision",
        "source", "status_code", "attempt", "model", "error", "error_type", "event.kind", "input_token_count",
        "output_token_count", "arguments", "output", "http.response.status_code", "error.message", "call_id",
    ]  # fmt: skip
    claude_events = ["user_prompt", "tool_result", "tool_decision", "api_request", "api_error", "other"]
    codex_events = ["conversation_starts", "user_prompt", "tool_decision", "tool_result", "api_request", "sse_event"]
    for case in range(300):
        attrs = {k: rng.choice(ODD_VALUES) for k in rng.sample(keys, rng.randint(0, len(keys)))}
        attrs = {k: v for k, v in attrs.items() if v is not None}
        if case % 2:
            rec = claude(rng.choice(claude_events), case, **attrs)
            request = export([rec], CLAUDE_RESOURCE)
        else:
            rec = codex(rng.choice(codex_events), case, **attrs)
            request = export([rec], CODEX_RESOURCE)
        mapped = otlp.map_export(request)
        assert len(mapped.items) + mapped.rejected == 1, (case, attrs)
        if mapped.rejected:
            assert mapped.reasons and "logRecords[0]" in mapped.reasons[0], mapped.reasons
            continue
        validate_logs("event", mapped.items, DEFAULT_LIMITS)  # raises if the item is not ingestible
        for patch in agent_patches(mapped.mapped, [True]).values():
            EntityPatch(**patch)  # the increments are valid patches (non-negative, exact)
