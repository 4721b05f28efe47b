"""OTLP/HTTP logs (``POST /v1/logs``) → orchlog events. JSON per the OTLP spec; protobuf via
``opentelemetry-proto`` when installed (converted to the same JSON shape first).

Mapping: Claude Code and Codex events become agent logs of their session's agent (see
``claude_otel`` and ``codex``); every other LogRecord becomes a system log (an agent log when a
record or resource attribute ``orchlog.agent_id`` names an agent); severityNumber → level; body
→ message; attributes, resource attributes, scope, trace and span ids → metadata. Bodies may be
gzip-compressed (``Content-Encoding: gzip``, what the OTel SDK sends by default).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from ..models import LEVELS, MAX_INT, MAX_JSON_DEPTH, MIN_INT, format_ts
from . import claude_otel, codex
from .agents import AgentSpec, Mapped, Record, RecordError

AGENT_ATTRIBUTE = "orchlog.agent_id"
MAX_GZIP_RATIO = 100  # JSON/protobuf logs compress 5-20x; far more than this is a bomb
RATIO_FLOOR_BYTES = 1 << 20  # small bodies may expand more (the size limit still holds)
GZIP_CHUNK = 1 << 16


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
    return {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(text, text if text in LEVELS else "INFO")


def any_value(value: Any, depth: int = 0) -> Any:
    """OTLP AnyValue ({"stringValue": ...}, {"kvlistValue": ...}, ...) → plain JSON. An intValue
    outside int64 (the OTLP type) stays its text; nesting is bounded like any payload."""
    if depth > MAX_JSON_DEPTH:
        raise BadRequest(f"an OTLP attribute value nests deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(value, dict):
        return value
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        try:
            number = int(value["intValue"])
            return number if MIN_INT <= number <= MAX_INT else str(value["intValue"])
        except (TypeError, ValueError):
            return value["intValue"]
    if "arrayValue" in value:
        return [any_value(v, depth + 1) for v in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return attributes((value["kvlistValue"] or {}).get("values", []), depth + 1)
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes(items: Any, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in items or []:
        if isinstance(kv, dict) and "key" in kv:
            out[str(kv["key"])] = any_value(kv.get("value"), depth)
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


def records(request: Any) -> Iterator[Record]:
    """Every LogRecord of an ExportLogsServiceRequest (JSON form), attributes decoded, with its
    resource and scope; a structurally wrong payload is a 400 naming the place."""
    if not isinstance(request, dict) or not isinstance(request.get("resourceLogs", []), list):
        raise BadRequest('not an OTLP ExportLogsServiceRequest: expected {"resourceLogs": [...]}')
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
                lwhere = f"{swhere}.logRecords[{l_index}]"
                record = _obj(record, lwhere)
                attrs = attributes(_list(record.get("attributes"), f"{lwhere}.attributes"))
                yield Record(resource, scope, record, attrs, any_value(record.get("body")), lwhere)


def generic_event(rec: Record) -> dict[str, Any]:
    """Today's mapping for a record no agent mapper claims: a system log, or an agent log when
    ``orchlog.agent_id`` names an (existing) agent."""
    attrs, resource, scope, record, body = rec.attrs, rec.resource, rec.scope, rec.record, rec.body
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
    return item


def _timestamp(rec: Record) -> str | None:
    return _time(rec.record.get("timeUnixNano")) or _time(rec.record.get("observedTimeUnixNano"))


@dataclass
class Export:
    """One OTLP export mapped for the ingest pipeline (see ``integrations.agents``).

    ``items`` are event items in record order; ``mapped[i]`` is the agent mapping of
    ``items[i]`` (None for a generically mapped record); ``agents`` the agents to ensure before
    the insert, in first-seen order; ``rejected``/``reasons`` the records refused already (the
    OTLP partial-success answer counts them)."""

    items: list[dict[str, Any]] = field(default_factory=list)
    mapped: list[Mapped | None] = field(default_factory=list)
    agents: dict[str, AgentSpec] = field(default_factory=dict)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def keep(self, indexes: Iterable[int]) -> Export:
        """The same export with only ``indexes`` of items (after validation dropped some)."""
        chosen = sorted(set(indexes))
        kept = Export(
            [self.items[i] for i in chosen],
            [self.mapped[i] for i in chosen],
            rejected=self.rejected + len(self.items) - len(chosen),
            reasons=list(self.reasons),
        )
        for one in kept.mapped:
            if one is not None:
                kept.agents.setdefault(one.agent.agent_id, one.agent)
        return kept


MAPPERS = (claude_otel, codex)


def map_export(request: Any) -> Export:
    """Claude Code and Codex events → agent logs of their session's agent (with usage); every
    other record → today's generic mapping. A recognised record with bad data is rejected alone."""
    export = Export()
    for rec in records(request):
        mapped: Mapped | None = None
        try:
            for mapper in MAPPERS:
                event = mapper.recognise(rec)
                session = mapper.session_of(rec) if event else None
                if event and session:
                    mapped = mapper.map_record(rec, event, session)
                    break
        except RecordError as exc:
            export.rejected += 1
            export.reasons.append(str(exc))
            continue
        item = mapped.item if mapped is not None else generic_event(rec)
        if timestamp := _timestamp(rec):
            item["timestamp"] = timestamp
        if mapped is not None:
            export.agents.setdefault(mapped.agent.agent_id, mapped.agent)
        export.items.append(item)
        export.mapped.append(mapped)
    return export


def gunzip(body: bytes, *, max_bytes: int, max_ratio: int = MAX_GZIP_RATIO) -> bytes:
    """Decompress a ``Content-Encoding: gzip`` body incrementally, refusing (413) as soon as the
    output passes ``max_bytes`` (the limit a plain body has) or ``max_ratio`` times the input
    (a decompression bomb), without ever holding more than the limit in memory."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out: list[bytes] = []
    total = 0
    pending = body
    ratio_limit = max(max_ratio * len(body), RATIO_FLOOR_BYTES)
    try:
        while pending:
            chunk = inflater.decompress(pending, GZIP_CHUNK)
            pending = inflater.unconsumed_tail
            total += len(chunk)
            if total > max_bytes:
                raise PayloadTooLarge(
                    f"the gzip body decompresses to over the {max_bytes}-byte limit; send smaller batches"
                )
            if total > ratio_limit:
                raise PayloadTooLarge(f"the gzip body expands more than {max_ratio}x; refused as a decompression bomb")
            out.append(chunk)
            if inflater.eof:
                break
        if not inflater.eof:
            raise BadRequest("the gzip body is truncated")
    except zlib.error as exc:
        raise BadRequest(f"malformed gzip body: {exc}") from None
    return b"".join(out)


def decode_body(body: bytes, content_encoding: str | None, *, max_bytes: int) -> bytes:
    """The request body after its ``Content-Encoding`` (identity or gzip; others are 415)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        return gunzip(body, max_bytes=max_bytes)
    raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding")


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
