"""OTLP log exports shaped like Claude Code's and Codex's own telemetry, written from their
documented event catalogues (Claude Code "Monitoring": ``claude_code.*`` events, body = full
name, ``event.name`` = short name, keyed by ``session.id``; Codex ``[otel]``: ``codex.*`` events
in ``event.name``, keyed by ``conversation.id``). Shared by the unit and end-to-end tests."""

from __future__ import annotations

import json
from typing import Any

SESSION = "4f0c2a9e-8d1b-4c3e-9a7f-0b1c2d3e4f50"
CONVERSATION = "019a7c3e-5d2f-7b10-9e44-2c8d1f0a6b3e"
T0 = 1_767_000_000_000_000_000  # ns


def value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": str(v)}


def record(body: str | None, attrs: dict[str, Any], n: int = 0) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "timeUnixNano": str(T0 + n * 1_000_000),
        "attributes": [{"key": k, "value": value(v)} for k, v in attrs.items()],
    }
    if body is not None:
        rec["body"] = {"stringValue": body}
    return rec


def export(records: list[dict[str, Any]], resource: dict[str, Any], scope: str = "x") -> dict[str, Any]:
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": k, "value": value(v)} for k, v in resource.items()]},
                "scopeLogs": [{"scope": {"name": scope}, "logRecords": records}],
            }
        ]
    }


CLAUDE_RESOURCE = {"service.name": "claude-code", "service.version": "2.0.14", "os.type": "linux"}


def claude(event: str, n: int, **attrs: Any) -> dict[str, Any]:
    """One Claude Code event as its exporter sends it: body = full name, standard attributes."""
    standard = {
        "event.name": event,
        "event.timestamp": "2026-01-01T00:00:00.000Z",
        "event.sequence": n,
        "session.id": SESSION,
        "user.id": "f00dfeed",
        "terminal.type": "xterm-256color",
        "prompt.id": "7c1d0e2f-0000-4000-8000-000000000001",
    }
    return record(f"claude_code.{event}", {**standard, **attrs}, n)


def claude_session() -> dict[str, Any]:
    return export(
        [
            claude("user_prompt", 0, prompt_length=32, prompt="Fix the failing checkout test."),
            claude(
                "tool_result",
                1,
                tool_name="Bash",
                tool_use_id="toolu_01",
                success="true",
                duration_ms=412,
                decision_type="accept",
                decision_source="config",
                tool_parameters=json.dumps({"bash_command": "npm test", "description": "Run tests"}),
            ),
            claude(
                "api_request",
                2,
                model="claude-sonnet-4-5",
                cost_usd=0.0123,
                duration_ms=2100,
                input_tokens=1200,
                output_tokens=310,
                cache_read_tokens=9000,
                cache_creation_tokens=0,
            ),
            claude(
                "tool_result",
                3,
                tool_name="Edit",
                tool_use_id="toolu_02",
                success="false",
                duration_ms=3,
                error_type="Error:ENOENT",
            ),
            claude(
                "api_request",
                4,
                model="claude-sonnet-4-5",
                cost_usd=0.0456,
                duration_ms=3900,
                input_tokens=800,
                output_tokens=95,
            ),
        ],
        CLAUDE_RESOURCE,
        scope="com.anthropic.claude_code.events",
    )


CODEX_RESOURCE = {"service.name": "codex_cli_rs", "service.version": "0.47.0", "host.name": "dev-3"}


def codex(event: str, n: int, **attrs: Any) -> dict[str, Any]:
    common = {
        "event.name": f"codex.{event}",
        "event.timestamp": "2026-01-01T00:00:00.000Z",
        "conversation.id": CONVERSATION,
        "app.version": "0.47.0",
        "auth_mode": "ApiKey",
        "model": "gpt-5-codex",
        "terminal.type": "xterm",
    }
    return record(None, {**common, **attrs}, n)


def codex_session() -> dict[str, Any]:
    return export(
        [
            codex(
                "conversation_starts",
                0,
                provider_name="OpenAI",
                approval_policy="on-request",
                sandbox_policy="workspace-write",
            ),
            codex("user_prompt", 1, prompt_length=20, prompt="[REDACTED]"),
            codex("api_request", 2, attempt=1, duration_ms=830, **{"http.response.status_code": 200}),
            codex("tool_decision", 3, tool_name="shell", call_id="call_1", decision="denied", source="user"),
            codex("tool_decision", 4, tool_name="shell", call_id="call_2", decision="approved", source="config"),
            codex(
                "tool_result",
                5,
                tool_name="shell",
                call_id="call_2",
                arguments='{"command":["pytest","-q"]}',
                duration_ms=5400,
                success="true",
                output="x" * 20_000,
            ),
            codex("sse_event", 6, **{"event.kind": "response.output_text.delta"}, duration_ms=2),
            codex(
                "sse_event",
                7,
                **{"event.kind": "response.completed"},
                input_token_count=5120,
                output_token_count=640,
                cached_token_count=4096,
            ),
        ],
        CODEX_RESOURCE,
    )
