"""Validation and limits, pure (orchlog.validation, orchlog.models, orchlog.config.Limits): what a
posted item becomes, and the 422 details that name the item index and the field. The HTTP side
(400/413/415 while reading the body) is tests/api/test_ingest.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import annotated_types
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from orchlog.config import Limits, Settings
from orchlog.errors import OrchlogError, ValidationFailed
from orchlog.model_fields import Strict, Timestamp, UUIDStr, bounded
from orchlog.models import (
    MAX_JSON_DEPTH,
    AgentCreate,
    AgentLogIn,
    EntityPatch,
    OrchestratorAgentCreate,
    PromptCreate,
    SystemLogIn,
    canonical_ts,
    canonical_uuid,
    format_ts,
    id_was_sent,
    normalize_level,
    now_ts,
)
from orchlog.validation import MAX_REPORTED, validate_logs, validate_one

DEFAULT = Limits()
SMALL = Limits(max_content_chars=50, max_field_chars=40, max_payload_bytes=20)  # a UUID is 36 chars
AGENT = str(uuid.uuid4())


def agent(**fields: Any) -> dict[str, Any]:
    return {"agent_id": AGENT, "event_category": "hook", "event_type": "PreToolUse", **fields}


def details(kind: str, items: list[Any], limits: Limits = DEFAULT, *, single: bool = False) -> list[dict[str, Any]]:
    with pytest.raises(ValidationFailed) as info:
        validate_logs(kind, items, limits, single=single)
    found: list[dict[str, Any]] = info.value.details
    assert found and str(info.value), "a 422 always says what is wrong"
    return found


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("2024-03-10T12:00:00+02:00", "2024-03-10T10:00:00.000000Z"),
        ("2024-03-10T12:00:00.123-05:30", "2024-03-10T17:30:00.123000Z"),
        ("2024-03-10T12:00:00z", "2024-03-10T12:00:00.000000Z"),
        ("2024-03-10T12:00:00", "2024-03-10T12:00:00.000000Z"),  # naive means UTC
    ],
)
def test_times_are_canonical_utc_with_microseconds(raw: str, canonical: str) -> None:
    assert canonical_ts(raw) == canonical
    assert SystemLogIn.model_validate({"message": "m", "timestamp": raw}).timestamp == canonical


def test_uuids_and_levels_are_normalised() -> None:
    upper = AGENT.upper()
    assert canonical_uuid(f" {upper} ") == AGENT
    assert canonical_uuid(uuid.UUID(AGENT)) == AGENT
    assert normalize_level(" warn ") == "WARNING" and normalize_level("error") == "ERROR"
    item = AgentLogIn.model_validate(agent(agent_id=upper, level="warn"))
    assert (item.agent_id, item.level) == (AGENT, "WARNING")


def test_every_bad_item_is_reported_with_its_index_and_field() -> None:
    found = details("system_log", [{"message": "ok"}, {"message": "m", "level": "LOUD"}, {"level": "INFO"}])
    assert {(d["index"], d["field"]) for d in found} == {(1, "level"), (2, "message")}


def test_single_objects_are_reported_without_an_index() -> None:
    [found] = details("system_log", [{"message": "m", "bogus": 1}], single=True)
    assert "index" not in found and found["field"] == "bogus"
    assert "unknown field 'bogus'" in found["message"]


def test_unknown_kind_names_the_kind_field() -> None:
    found = details("event", [{"kind": "nope", "message": "m"}, {"message": "no kind"}])
    assert [(d["index"], d["field"]) for d in found] == [(0, "kind"), (1, "kind")]


def test_event_items_report_fields_without_the_union_tag() -> None:
    [found] = details("event", [{"kind": "agent_log", **agent(event_type="")}])
    assert found["field"] == "event_type"


@pytest.mark.parametrize(
    ("item", "field"),
    [
        (agent(content="x" * 51), "content"),
        (agent(summary="x" * 51), "summary"),
        (agent(task_slug="x" * 41), "task_slug"),
        (agent(event_type="x" * 41), "event_type"),
        (agent(payload={"k": "x" * 20}), "payload"),
    ],
)
def test_limits_name_the_field_over_them(item: dict[str, Any], field: str) -> None:
    [found] = details("agent_log", [item], SMALL)
    assert found["field"] == field, found


def test_values_exactly_at_the_limits_pass() -> None:
    [item] = validate_logs("agent_log", [agent(content="x" * 50, task_slug="y" * 40, event_type="t")], SMALL)
    assert item.content == "x" * 50


def test_at_most_max_reported_details() -> None:
    found = details("system_log", [{"level": "LOUD"}] * (MAX_REPORTED * 2))
    assert len(found) == MAX_REPORTED


def test_validate_one_names_the_field() -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_one(SystemLogIn, {"message": 3}, Limits())
    assert info.value.details[0]["field"] == "message"


def test_settings_limits_come_from_the_environment_and_bad_ones_name_the_setting() -> None:
    settings = Settings.load(environ={"ORCHLOG_MAX_ITEMS": "50", "ORCHLOG_MAX_CONTENT_CHARS": "1000"})
    assert (settings.limits.max_items, settings.limits.max_content_chars) == (50, 1000)
    with pytest.raises(OrchlogError, match="ORCHLOG_PORT"):
        Settings.load(environ={"ORCHLOG_PORT": "70000"})
    assert Settings.load({"port": 9}, environ={"ORCHLOG_PORT": "8"}).port == 9, "flags win over the environment"


@pytest.mark.parametrize(
    "raw",
    [
        "0b1c1d6e-1111-4111-8111-11111111111",  # one digit short
        "0b1c1d6e-1111-4111-8111-1111111111111",  # one digit long
        "0b1c1d6e111141118111111111111111x",
        "",
    ],
)
def test_the_canonical_uuid_fast_path_still_refuses_what_is_not_a_uuid(raw: str) -> None:
    with pytest.raises(ValueError, match="UUID"):
        canonical_uuid(raw)


@pytest.mark.parametrize(
    "raw", ["{0B1C1D6E-1111-4111-8111-111111111111}", "urn:uuid:0b1c1d6e-1111-4111-8111-111111111111"]
)
def test_other_uuid_spellings_become_canonical(raw: str) -> None:
    assert canonical_uuid(raw) == "0b1c1d6e-1111-4111-8111-111111111111"


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_payload_depth_is_checked_exactly_at_the_limit() -> None:
    assert AgentLogIn.model_validate(agent(payload=nested(MAX_JSON_DEPTH))).payload
    found = details("agent_log", [agent(payload=nested(MAX_JSON_DEPTH + 1))])
    assert found[0]["field"] == "payload" and "deeper" in found[0]["message"]


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    """The bracket count only decides whether to walk the tree; a shallow payload whose strings
    are full of brackets is walked and passes."""
    shallow = {"code": "[" * 500 + "{" * 500, "list": [["x"]]}
    assert AgentLogIn.model_validate(agent(payload=shallow)).payload == shallow


def test_only_ids_the_client_chose_count_as_sent() -> None:
    """The writer looks up (for duplicates) exactly the ids a client sent; a server-made id is a
    fresh UUIDv7 and is not looked up."""
    made = AgentLogIn.model_validate(agent())
    chosen = AgentLogIn.model_validate(agent(id=AGENT))
    assert not id_was_sent(made) and uuid.UUID(str(made.id)).version == 7
    assert id_was_sent(chosen) and chosen.id == AGENT
    assert made.timestamp and made.timestamp.endswith("Z") and len(made.timestamp) == 27


def test_times_keep_four_digit_years() -> None:
    assert format_ts(datetime(1000, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == "1000-01-02T03:04:05.000006Z"
    assert format_ts(datetime(2024, 1, 2)) == "2024-01-02T00:00:00.000000Z"  # naive is UTC


def test_now_is_the_canonical_form_of_the_clock() -> None:
    before = datetime.now(UTC)
    text = now_ts()
    after = datetime.now(UTC)
    assert canonical_ts(text) == text
    assert format_ts(before) <= text <= format_ts(after)


def test_nesting_past_what_orjson_writes_is_a_422_not_a_crash() -> None:
    found = details("agent_log", [agent(payload=nested(300))])
    assert found[0]["field"] == "payload" and "deeper" in found[0]["message"]


def test_over_limit_strings_say_how_long_and_the_limit() -> None:
    [found] = details("agent_log", [agent(content="x" * 51)], SMALL)
    assert (found["field"], found["type"]) == ("content", "string_too_long")
    assert found["message"] == "content is 51 characters long; the limit is 50"


@pytest.mark.parametrize(
    "model", [AgentLogIn, SystemLogIn, AgentCreate, OrchestratorAgentCreate, EntityPatch, PromptCreate]
)
def test_every_free_text_field_of_every_client_model_is_bounded(model: type[Strict]) -> None:
    """``bounded`` holds every ``str`` field to the limits (fail closed: a new field is bounded
    without anyone listing it); the canonical-form fields (UUIDs, times, levels) are bounded by
    their forms."""
    checked = bounded(model, SMALL)
    text = [name for name, info in model.model_fields.items() if info.annotation in (str, str | None)]
    canonical = {"id", "agent_id", "orchestrator_agent_id", "timestamp"}
    assert text, model
    for name in text:
        info = checked.model_fields[name]
        limits = [m.max_length for m in info.metadata if isinstance(m, annotated_types.MaxLen)]
        if name in canonical:
            continue
        assert limits in ([SMALL.max_field_chars], [SMALL.max_content_chars]), (name, info)


def test_an_explicit_null_id_or_time_is_made_like_a_missing_one() -> None:
    [item] = validate_logs("system_log", [{"message": "m", "id": None, "timestamp": None}], DEFAULT)
    assert uuid.UUID(item.id).version == 7 and canonical_ts(item.timestamp) == item.timestamp


def test_a_bad_uuid_is_one_error_on_its_field() -> None:
    found = details("agent_log", [agent(agent_id="nope"), agent(agent_id=7), agent(id="x")])
    assert [(d["index"], d["field"], d["message"]) for d in found] == [
        (0, "agent_id", "not a valid UUID"),
        (1, "agent_id", "not a valid UUID"),
        (2, "id", "not a valid UUID"),
    ]


def test_limits_other_than_the_defaults_get_their_own_models() -> None:
    """``bounded`` is per ``Limits``: a server with other limits never shares a validator."""
    assert bounded(AgentLogIn, SMALL) is bounded(AgentLogIn, Limits(**SMALL.model_dump()))
    assert bounded(AgentLogIn, SMALL) is not bounded(AgentLogIn, DEFAULT)
    assert validate_logs("agent_log", [agent(content="x" * 51)], DEFAULT)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1], "Input should be a valid dictionary"),
        ("{}", "Input should be a valid dictionary"),
        ({1: "a"}, "cannot be stored as JSON"),  # only Python callers can build these
        ({"n": 2**64}, "cannot be stored as JSON"),
    ],
)
def test_a_payload_that_is_not_a_json_object_is_a_422_on_payload(payload: Any, message: str) -> None:
    [found] = details("agent_log", [agent(payload=payload)])
    assert found["field"] == "payload" and message in found["message"], found


def _either(parse: Any, value: Any) -> Any:
    try:
        return parse(value)
    except (ValueError, ValidationError):
        return "refused"


@given(
    st.one_of(
        st.datetimes(min_value=datetime(999, 12, 30), max_value=datetime(9999, 12, 31)).map(
            lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # mostly canonical already
        ),
        st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}[Zz]\Z"),  # any digits
        # any Unicode digits (pydantic-core's regex takes \d as those: its pattern must not)
        st.from_regex(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z\Z"),
    )
)
@example("2023-02-28T23:59:59.999999Z")
@example("2023-02-29T00:00:00.000000Z")
@example("2024-02-29T00:00:00.000000Z")
@example("2024-04-31T00:00:00.000000Z")
@example("2024-01-01T24:00:00.000000Z")
@example("2024-01-01T00:00:60.000000Z")
@example("0999-12-31T23:59:59.999999Z")
@example("1000-01-01T00:00:00.000000z")
@example("2\uff1024-01-02T03:04:05.123456Z")  # a fullwidth zero
@example("2024-01-02T03:04:05.12345\u0666Z")  # an Arabic-Indic six
def test_the_native_time_fast_path_agrees_with_canonical_ts(text: str) -> None:
    """A time in the canonical form is accepted by pydantic-core's pattern, without Python: for
    every such string it gives what canonical_ts gives, and refuses what canonical_ts refuses
    (February 30th, hour 24, year 0999)."""
    native = TypeAdapter(Timestamp).validate_python
    assert _either(native, text) == _either(canonical_ts, text)


@given(st.uuids().map(str) | st.text(alphabet="0123456789abcdefABCDEF-{}", min_size=30, max_size=40))
def test_the_native_uuid_fast_path_agrees_with_canonical_uuid(text: str) -> None:
    native = TypeAdapter(UUIDStr).validate_python
    assert _either(native, text) == _either(canonical_uuid, text)


def test_times_with_digits_other_than_ascii_are_refused_naming_the_field() -> None:
    """pydantic-core's regex engine takes \\d as any Unicode digit; such a time must not pass the
    canonical fast path and reach the database (its CHECK answered without a field; PostgreSQL's
    time parser raised a 500)."""
    found = details("agent_log", [agent(timestamp="2\uff1024-01-02T03:04:05.123456Z")])
    assert [(d["index"], d["field"], d["type"]) for d in found] == [(0, "timestamp", "time_invalid")]


def test_times_are_refused_with_one_clear_error() -> None:
    found = details("system_log", [{"message": "m", "timestamp": t} for t in ("yesterday", "2023-02-29T00:00:00Z")])
    assert [(d["index"], d["field"]) for d in found] == [(0, "timestamp"), (1, "timestamp")]
    assert all("ISO-8601" in d["message"] and "1000 to 9999" in d["message"] for d in found)
