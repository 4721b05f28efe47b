"""OTLP/HTTP logs (``POST /v1/logs``) → orchlog events. JSON per the OTLP spec; protobuf via
``opentelemetry-proto`` when installed (converted to the same JSON shape first).

Mapping: each LogRecord becomes a system log (an agent log when a record or resource attribute
``orchlog.agent_id`` names an agent); severityNumber → level; body → message; attributes,
resource attributes, scope, trace and span ids → metadata.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..errors import BadRequest
from ..models import format_ts

AGENT_ATTRIBUTE = "orchlog.agent_id"


def level_for(severity_number: Any, severity_text: Any) -> str:
    try:
        n = int(severity_number or 0)
    except (TypeError, ValueError):
        raise BadRequest(f"severityNumber {severity_number!r} is not a number") from None
    if n >= 21:
        return "CRITICAL"
    if n >= 17:
        return "ERROR"
    if n >= 13:
        return "WARNING"
    if n >= 9:
        return "INFO"
    if n >= 1:
        return "DEBUG"
    text = str(severity_text or "").upper()
    return {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(
        text, text if text in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else "INFO"
    )


def any_value(value: Any) -> Any:
    """OTLP AnyValue ({"stringValue": ...}, {"kvlistValue": ...}, ...) → plain JSON."""
    if not isinstance(value, dict):
        return value
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return value["intValue"]
    if "arrayValue" in value:
        return [any_value(v) for v in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return attributes((value["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in items or []:
        if isinstance(kv, dict) and "key" in kv:
            out[str(kv["key"])] = any_value(kv.get("value"))
    return out


def _time(nanos: Any) -> str | None:
    try:
        n = int(nanos or 0)
        return format_ts(datetime.fromtimestamp(n / 1e9, UTC)) if n > 0 else None
    except (TypeError, ValueError, OverflowError, OSError):
        return None  # out of range: the server's receive time is used instead


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{where} must be a list")
    return value


def _obj(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be an object")
    return value


def to_events(request: Any) -> list[dict[str, Any]]:
    """ExportLogsServiceRequest (JSON form) → event items for POST /api/v1/events."""
    if not isinstance(request, dict) or not isinstance(request.get("resourceLogs", []), list):
        raise BadRequest('not an OTLP ExportLogsServiceRequest: expected {"resourceLogs": [...]}')
    events: list[dict[str, Any]] = []
    for r_index, resource_logs in enumerate(_list(request.get("resourceLogs"), "resourceLogs")):
        where = f"resourceLogs[{r_index}]"
        resource_logs = _obj(resource_logs, where)
        resource = attributes(
            _list(
                _obj(resource_logs.get("resource"), f"{where}.resource").get("attributes"),
                f"{where}.resource.attributes",
            )
        )
        for s_index, scope_logs in enumerate(_list(resource_logs.get("scopeLogs"), f"{where}.scopeLogs")):
            swhere = f"{where}.scopeLogs[{s_index}]"
            scope_logs = _obj(scope_logs, swhere)
            scope = _obj(scope_logs.get("scope"), f"{swhere}.scope")
            for l_index, record in enumerate(_list(scope_logs.get("logRecords"), f"{swhere}.logRecords")):
                record = _obj(record, f"{swhere}.logRecords[{l_index}]")
                attrs = attributes(_list(record.get("attributes"), f"{swhere}.logRecords[{l_index}].attributes"))
                body = any_value(record.get("body"))
                message = body if isinstance(body, str) else ("" if body is None else str(body))
                meta: dict[str, Any] = {"attributes": attrs, "resource": resource}
                if scope.get("name"):
                    meta["scope"] = {"name": scope.get("name"), "version": scope.get("version")}
                for key in ("traceId", "spanId"):
                    if record.get(key):
                        meta[key] = record[key]
                if not isinstance(body, str) and body is not None:
                    meta["body"] = body
                level = level_for(record.get("severityNumber"), record.get("severityText"))
                timestamp = _time(record.get("timeUnixNano")) or _time(record.get("observedTimeUnixNano"))
                agent = attrs.get(AGENT_ATTRIBUTE) or resource.get(AGENT_ATTRIBUTE)
                if agent:
                    item: dict[str, Any] = {
                        "kind": "agent_log",
                        "agent_id": str(agent),
                        "event_category": "response",
                        "event_type": str(scope.get("name") or "otel.log")[:200],
                        "level": level,
                        "content": message,
                        "payload": meta,
                    }
                else:
                    item = {"kind": "system_log", "level": level, "message": message or "(empty)", "metadata": meta}
                    path = attrs.get("code.file.path") or attrs.get("code.filepath")
                    if path:
                        item["file_path"] = str(path)
                if timestamp:
                    item["timestamp"] = timestamp
                events.append(item)
    return events


def decode_protobuf(raw: bytes) -> dict[str, Any]:
    try:
        from google.protobuf.json_format import MessageToDict
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    except ImportError:
        raise BadRequest(
            "protobuf OTLP needs the opentelemetry-proto package on the server; send OTLP JSON instead"
        ) from None
    message = ExportLogsServiceRequest()
    try:
        message.ParseFromString(raw)
    except Exception as exc:  # noqa: BLE001 - the protobuf library raises its own DecodeError
        raise BadRequest(f"malformed OTLP protobuf: {exc}") from None
    converted: dict[str, Any] = MessageToDict(message, use_integers_for_enums=True)
    # MessageToDict renders trace/span ids as base64; OTLP JSON uses hex
    for rl in converted.get("resourceLogs", []):
        for sl in rl.get("scopeLogs", []):
            for rec in sl.get("logRecords", []):
                for key in ("traceId", "spanId"):
                    if key in rec:
                        import base64

                        rec[key] = base64.b64decode(rec[key]).hex()
    return converted


def encode_response(rejected: int, message: str, *, protobuf: bool) -> tuple[bytes, str]:
    """The ExportLogsServiceResponse in the request's encoding (partial success when rejected)."""
    if protobuf:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

        response = ExportLogsServiceResponse()
        if rejected:
            response.partial_success.rejected_log_records = rejected
            response.partial_success.error_message = message
        return response.SerializeToString(), "application/x-protobuf"
    import orjson

    body: dict[str, Any] = {}
    if rejected:
        body = {"partialSuccess": {"rejectedLogRecords": rejected, "errorMessage": message}}
    return orjson.dumps(body), "application/json"
