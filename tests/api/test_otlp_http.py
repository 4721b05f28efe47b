"""OTLP/HTTP logs (``POST /v1/logs``), in-process: hand-written OTLP JSON, protobuf bodies and
malformed payloads against the real app (moved from tests/e2e/test_integrations.py, which keeps the
real OTel SDK exporter and ``orchlog hook`` subprocesses)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

from helpers import head_seq, history, system_logs


def kv(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": value}


def otlp_json(*records: dict[str, Any], resource: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": resource or [kv("service.name", {"stringValue": "billing"})]},
                "scopeLogs": [{"scope": {"name": "billing.jobs", "version": "0.9"}, "logRecords": list(records)}],
            }
        ]
    }


async def test_otlp_json_mapping(mclient: httpx.AsyncClient) -> None:
    client = mclient
    start = await head_seq(client)
    body = otlp_json(
        {
            "timeUnixNano": "1773500966535000000",
            "severityNumber": 17,
            "severityText": "ERROR",
            "body": {"stringValue": "invoice 981 failed"},
            "attributes": [
                kv("invoice.id", {"intValue": "981"}),
                kv("retryable", {"boolValue": False}),
                kv("amount", {"doubleValue": 12.5}),
                kv("codes", {"arrayValue": {"values": [{"stringValue": "E1"}, {"intValue": "2"}]}}),
                kv("customer", {"kvlistValue": {"values": [kv("tier", {"stringValue": "gold"})]}}),
                kv("code.filepath", {"stringValue": "/srv/billing/jobs.py"}),
            ],
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "eee19b7ec3c1b174",
        },
        {"observedTimeUnixNano": "1773500967000000000", "severityText": "WARN", "body": {"stringValue": "slow"}},
        {"severityNumber": 9, "body": {"kvlistValue": {"values": [kv("rows", {"intValue": "7"})]}}},
    )
    r = await client.post("/v1/logs", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {} or r.json().get("partialSuccess", {}).get("rejectedLogRecords", 0) == 0, r.text
    logs = await system_logs(client, start)
    assert len(logs) == 3
    first = logs[0]
    assert (first["level"], first["message"]) == ("ERROR", "invoice 981 failed")
    assert first["file_path"] == "/srv/billing/jobs.py"
    assert first["metadata"]["attributes"] == {
        "invoice.id": 981,
        "retryable": False,
        "amount": 12.5,
        "codes": ["E1", 2],
        "customer": {"tier": "gold"},
        "code.filepath": "/srv/billing/jobs.py",
    }
    assert first["metadata"]["resource"] == {"service.name": "billing"}
    assert first["metadata"]["scope"] == {"name": "billing.jobs", "version": "0.9"}
    assert (first["metadata"]["traceId"], first["metadata"]["spanId"]) == (
        "5b8efff798038103d269b633813fc60c",
        "eee19b7ec3c1b174",
    )
    assert first["timestamp"] == "2026-03-14T15:09:26.535000Z"
    assert (logs[1]["level"], logs[1]["message"]) == ("WARNING", "slow")  # severityText only
    assert logs[1]["timestamp"] == "2026-03-14T15:09:27.000000Z"  # observed time when no time
    assert logs[2]["metadata"]["body"] == {"rows": 7}


async def test_otlp_unknown_agent_rejects_only_that_record(mclient: httpx.AsyncClient) -> None:
    """Partial success (OTLP spec): the bad record is counted in rejectedLogRecords, the good
    records of the same request are kept."""
    client = mclient
    start = await head_seq(client)
    body = otlp_json(
        {"severityNumber": 9, "body": {"stringValue": "good record"}},
        {
            "severityNumber": 9,
            "body": {"stringValue": "names an agent that does not exist"},
            "attributes": [kv("orchlog.agent_id", {"stringValue": str(uuid.uuid4())})],
        },
    )
    r = await client.post("/v1/logs", json=body)
    assert r.status_code == 200, r.text
    partial = r.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == 1, partial
    assert partial["errorMessage"]
    assert [log["message"] for log in await system_logs(client, start)] == ["good record"]


MALFORMED_JSON = [
    pytest.param(b'{"resourceLogs": [', "malformed OTLP JSON", id="truncated"),
    pytest.param(b"[]", "resourceLogs", id="array"),
    pytest.param(b'{"resourceLogs": {}}', "resourceLogs", id="resourceLogs-object"),
    pytest.param(b'{"resourceLogs": [1]}', "resourceLogs[0]", id="resourceLogs-item"),
    pytest.param(b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [1]}]}]}', "logRecord", id="record-not-object"),
    pytest.param(b'{"resourceLogs": [{"scopeLogs": [1]}]}', "scopeLogs", id="scopeLogs-item"),
    pytest.param(b'{"resourceLogs": [{"scopeLogs": [{"logRecords": 5}]}]}', "logRecords", id="logRecords-number"),
    pytest.param(b'{"resourceLogs": [{"resource": "x", "scopeLogs": []}]}', "resource", id="resource-string"),
    pytest.param(
        b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"severityNumber": "loud"}]}]}]}',
        "severityNumber",
        id="severity-not-a-number",
    ),
]


@pytest.mark.parametrize(("raw", "reason"), MALFORMED_JSON)
async def test_otlp_malformed_json_is_400_with_reason(mclient: httpx.AsyncClient, raw: bytes, reason: str) -> None:
    r = await mclient.post("/v1/logs", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400, (r.status_code, r.text)
    message = r.json()["error"]["message"]
    assert reason in message, message
    assert "Traceback" not in r.text


async def test_otlp_out_of_range_time_is_not_a_server_error(mclient: httpx.AsyncClient) -> None:
    body = otlp_json({"timeUnixNano": "999999999999999999999999", "body": {"stringValue": "from the far future"}})
    r = await mclient.post("/v1/logs", json=body)
    assert r.status_code in (200, 400), (r.status_code, r.text)


async def test_otlp_bad_protobuf_and_unknown_content_type(mclient: httpx.AsyncClient) -> None:
    client = mclient
    start = await head_seq(client)
    r = await client.post(
        "/v1/logs", content=b"\xff\xff\xff\x01garbage", headers={"content-type": "application/x-protobuf"}
    )
    assert r.status_code == 400, r.text
    assert "malformed OTLP protobuf" in r.json()["error"]["message"]

    r = await client.post("/v1/logs", content=b"level=info msg=hi", headers={"content-type": "text/plain"})
    assert r.status_code == 415, r.text
    assert "application/json" in r.json()["error"]["message"]
    assert await history(client, after=start) == []


async def test_otlp_protobuf_answer_is_protobuf(mclient: httpx.AsyncClient) -> None:
    """OTLP/HTTP: the response uses the request's encoding (an ExportLogsServiceResponse)."""
    client = mclient
    start = await head_seq(client)
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                scope_logs=[
                    ScopeLogs(
                        log_records=[
                            LogRecord(
                                body=AnyValue(string_value="hand-made protobuf"),
                                attributes=[KeyValue(key="k", value=AnyValue(int_value=5))],
                            )
                        ]
                    )
                ]
            )
        ]
    )
    r = await client.post(
        "/v1/logs", content=request.SerializeToString(), headers={"content-type": "application/x-protobuf"}
    )
    assert r.status_code == 200, r.text
    logs = await system_logs(client, start)
    assert [(log["message"], log["metadata"]["attributes"]) for log in logs] == [("hand-made protobuf", {"k": 5})]
    assert r.headers["content-type"].split(";")[0] == "application/x-protobuf", r.headers
    ExportLogsServiceResponse().ParseFromString(r.content)
