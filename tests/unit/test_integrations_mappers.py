"""The integration mappers, pure: Claude Code hook input → agent log item
(orchlog.integrations.claude_code) and OTLP logs → event items (orchlog.integrations.otlp).
End to end (the HTTP hook, `orchlog hook`, the OTel SDK exporter) is tests/e2e/test_integrations.py."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

from orchlog.config import Limits
from orchlog.errors import BadRequest
from orchlog.integrations import claude_code as cc
from orchlog.integrations import otlp
from orchlog.models import AgentLogIn
from orchlog.validation import validate_logs

AGENT = str(uuid.uuid4())
SESSION = "3f1c2a9e-0000-4000-8000-00000000abcd"

# ---------------------------------------------------------------- Claude Code hooks


def hook(event: str, **fields: Any) -> dict[str, Any]:
    return {"session_id": SESSION, "transcript_path": "/t.jsonl", "cwd": "/w", "hook_event_name": event, **fields}


@pytest.mark.parametrize(
    ("body", "content", "level"),
    [
        (hook("PreToolUse", tool_name="Bash", tool_input={"command": "ls -la\nrm x"}), "Bash: ls -la", "INFO"),
        (hook("PostToolUse", tool_name="Read", tool_input={"file_path": "/a.py"}), "Read: /a.py", "INFO"),
        (hook("PostToolUse", tool_name="Odd", tool_input={"x": 1, "y": "first"}), "Odd: first", "INFO"),
        (hook("PostToolUse", tool_name="Odd", tool_input=[1, 2]), "Odd", "INFO"),
        (
            hook("PostToolUseFailure", tool_name="Bash", tool_input={"command": "make"}, error="exit 2\nmore"),
            "Bash: make failed: exit 2",
            "ERROR",
        ),
        (hook("PermissionRequest", tool_name="Write", tool_input={"path": "/etc"}), "Write: /etc", "WARNING"),
        (hook("UserPromptSubmit", prompt="  fix the bug\nplease"), "fix the bug", "INFO"),
        (hook("Notification", message="needs you"), "needs you", "WARNING"),
        (hook("PreCompact", trigger="manual"), "compacting (manual)", "INFO"),
        (hook("PreCompact"), "compacting (auto)", "INFO"),
        (hook("SessionStart", source="resume"), "session started (resume)", "INFO"),
        (hook("SessionEnd"), "session ended (exit)", "INFO"),
        (hook("Stop"), "stopped", "INFO"),
        (hook("SubagentStop"), "subagent stopped", "INFO"),
        (hook("SomethingNew"), "SomethingNew", "INFO"),
    ],
)
def test_hook_content_and_level(body: dict[str, Any], content: str, level: str) -> None:
    item = cc.to_agent_log(body, AGENT)
    assert (item["content"], item["level"]) == (content, level)
    assert item["event_category"] == "hook" and item["event_type"] == body["hook_event_name"]
    assert item["payload"] == body, "the whole hook input is kept as the payload"
    assert item["session_id"] == SESSION
    AgentLogIn.model_validate(item)  # what the mapper makes is what ingest accepts


def test_long_first_lines_are_cut_with_an_ellipsis() -> None:
    item = cc.to_agent_log(hook("UserPromptSubmit", prompt="x" * 500), AGENT)
    assert len(item["content"]) == 200 and item["content"].endswith("…")


def test_long_strings_in_the_payload_are_truncated_and_marked() -> None:
    body = hook("PostToolUse", tool_name="Bash", tool_input={"command": "ok"}, tool_response={"stdout": "y" * 300})
    body["list"] = ["short", "z" * 300]
    item = cc.to_agent_log(body, AGENT, max_field_chars=100)
    assert item["payload"]["tool_response"]["stdout"] == "y" * 100 + "…[truncated 200 chars]"
    assert item["payload"]["list"][0] == "short"
    assert item["payload"]["_truncated"] == ["tool_response.stdout", "list[1]"]
    assert "_truncated" not in cc.to_agent_log(hook("Stop"), AGENT)["payload"]


def test_envelope_id_and_timestamp_are_used_and_not_stored_in_the_payload() -> None:
    ident = str(uuid.uuid4())
    body = hook("Stop", orchlog={"id": ident, "timestamp": "2024-01-01T00:00:00Z"})
    item = cc.to_agent_log(body, AGENT)
    assert (item["id"], item["timestamp"]) == (ident, "2024-01-01T00:00:00Z")
    assert "orchlog" not in item["payload"]


def test_agent_names_and_ids_are_stable() -> None:
    assert cc.agent_name(hook("Stop")) == "claude-3f1c2a9e"
    assert cc.agent_name({}) == "claude-code"
    assert cc.agent_name(hook("Stop"), "builder") == "builder"
    assert cc.agent_id_for("builder") == cc.agent_id_for("builder") != cc.agent_id_for("other")
    assert cc.agent_id_for("builder") == str(uuid.uuid5(cc.NAMESPACE, "claude-code:agent:builder"))


# ---------------------------------------------------------------- OTLP


def kv(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": value}


def request(*records: dict[str, Any], resource: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": resource or []},
                "scopeLogs": [{"scope": {"name": "svc.mod", "version": "1"}, "logRecords": list(records)}],
            }
        ]
    }


@pytest.mark.parametrize(
    ("number", "text", "level"),
    [
        (1, None, "DEBUG"),
        (8, None, "DEBUG"),
        (9, None, "INFO"),
        (13, None, "WARNING"),
        (17, None, "ERROR"),
        (21, None, "CRITICAL"),
        (24, None, "CRITICAL"),
        (0, "warn", "WARNING"),
        (None, "FATAL", "CRITICAL"),
        (None, "error", "ERROR"),
        (None, "chatty", "INFO"),
        ("13", None, "WARNING"),
    ],
)
def test_severity_to_level(number: Any, text: Any, level: str) -> None:
    assert otlp.level_for(number, text) == level


def test_bad_severity_number_is_a_400() -> None:
    with pytest.raises(BadRequest, match="severityNumber"):
        otlp.level_for("loud", None)


def test_any_value_to_plain_json() -> None:
    value = {
        "kvlistValue": {
            "values": [
                kv("s", {"stringValue": "x"}),
                kv("i", {"intValue": "42"}),
                kv("d", {"doubleValue": 1.5}),
                kv("b", {"boolValue": False}),
                kv("a", {"arrayValue": {"values": [{"intValue": 1}, {"stringValue": "two"}]}}),
                kv("n", {}),
            ]
        }
    }
    assert otlp.any_value(value) == {"s": "x", "i": 42, "d": 1.5, "b": False, "a": [1, "two"], "n": None}


def test_records_become_system_logs_with_metadata() -> None:
    record = {
        "timeUnixNano": "1704067200000000000",
        "severityNumber": 17,
        "body": {"stringValue": "disk full"},
        "attributes": [kv("code.file.path", {"stringValue": "/app/x.py"}), kv("k", {"intValue": 3})],
        "traceId": "ab" * 16,
        "spanId": "cd" * 8,
    }
    [item] = otlp.map_export(request(record, resource=[kv("service.name", {"stringValue": "api"})])).items
    assert item == {
        "kind": "system_log",
        "level": "ERROR",
        "message": "disk full",
        "file_path": "/app/x.py",
        "timestamp": "2024-01-01T00:00:00.000000Z",
        "metadata": {
            "attributes": {"code.file.path": "/app/x.py", "k": 3},
            "resource": {"service.name": "api"},
            "scope": {"name": "svc.mod", "version": "1"},
            "traceId": "ab" * 16,
            "spanId": "cd" * 8,
        },
    }
    validate_logs("event", [item], Limits())  # what the mapper makes is what ingest accepts


def test_agent_attribute_makes_an_agent_log_and_structured_bodies_are_kept() -> None:
    on_record = {
        "body": {"kvlistValue": {"values": [kv("x", {"intValue": 1})]}},
        "attributes": [kv(otlp.AGENT_ATTRIBUTE, {"stringValue": AGENT})],
    }
    on_resource = {"observedTimeUnixNano": "1704067200500000000"}
    resource = [kv(otlp.AGENT_ATTRIBUTE, {"stringValue": AGENT})]
    a, b = otlp.map_export(request(on_record, on_resource, resource=resource)).items
    assert a["kind"] == b["kind"] == "agent_log" and a["agent_id"] == b["agent_id"] == AGENT
    assert a["event_type"] == "svc.mod" and a["event_category"] == "response"
    assert a["content"] == "{'x': 1}" and a["payload"]["body"] == {"x": 1}
    assert b["timestamp"] == "2024-01-01T00:00:00.500000Z", "observed time when there is no event time"
    for item in (a, b):
        validate_logs("event", [item], Limits())  # what the mapper makes is what ingest accepts


def test_empty_and_out_of_range_records_still_map() -> None:
    [item] = otlp.map_export(request({"timeUnixNano": str(10**30)})).items
    assert item["message"] == "(empty)" and "timestamp" not in item


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ([], "resourceLogs"),
        ({"resourceLogs": {}}, "resourceLogs"),
        ({"resourceLogs": [1]}, "resourceLogs[0]"),
        ({"resourceLogs": [{"scopeLogs": {}}]}, "resourceLogs[0].scopeLogs"),
        ({"resourceLogs": [{"scopeLogs": [{"logRecords": [7]}]}]}, "resourceLogs[0].scopeLogs[0].logRecords[0]"),
    ],
)
def test_malformed_requests_are_400_naming_where(body: Any, where: str) -> None:
    with pytest.raises(BadRequest) as info:
        otlp.map_export(body)
    assert where in str(info.value)


def test_protobuf_decodes_to_the_json_shape_with_hex_ids() -> None:
    record = LogRecord(
        time_unix_nano=1704067200000000000,
        severity_number=9,
        body=AnyValue(string_value="hi"),
        trace_id=bytes.fromhex("ab" * 16),
        span_id=bytes.fromhex("cd" * 8),
        attributes=[KeyValue(key="k", value=AnyValue(int_value=5))],
    )
    raw = ExportLogsServiceRequest(resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[record])])])
    [item] = otlp.map_export(otlp.decode_protobuf(raw.SerializeToString())).items
    assert (item["message"], item["level"]) == ("hi", "INFO")
    assert item["metadata"]["traceId"] == "ab" * 16 and item["metadata"]["spanId"] == "cd" * 8
    assert item["metadata"]["attributes"] == {"k": 5}
    with pytest.raises(BadRequest, match="protobuf"):
        otlp.decode_protobuf(b"\xff\xff\xff")


def test_response_in_the_requests_encoding_with_partial_success() -> None:
    body, ctype = otlp.encode_response(0, "", protobuf=False)
    assert (body, ctype) == (b"{}", "application/json")
    body, ctype = otlp.encode_response(2, "unknown agent", protobuf=True)
    assert ctype == "application/x-protobuf"
    parsed = ExportLogsServiceResponse.FromString(body)
    assert parsed.partial_success.rejected_log_records == 2
    assert parsed.partial_success.error_message == "unknown agent"
