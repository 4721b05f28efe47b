"""Every input has a bound (issue 16, "no 500s"): each value that used to give ``500 internal_error``
is now a 4xx naming the parameter or field, and a property test drives every query parameter and
every numeric and time field with hostile values, asserting the server never answers 5xx.

One real ``orchlog serve`` for the module (over a real SQLite file); its log must hold no traceback.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from helpers import Server, assert_error, wait_until

BIG = 2**63  # one past SQLite's INTEGER
DEEP = 65  # one past the payload nesting limit (orchlog.models.MAX_JSON_DEPTH)


class Ctx:
    def __init__(self, srv: Server, orch: str, agent: str) -> None:
        self.srv, self.orch, self.agent = srv, orch, agent


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctx]:
    srv = Server(tmp_path_factory.mktemp("bounds") / "bounds.db").start()
    with httpx.Client(base_url=srv.url) as c:
        orch = c.post("/api/v1/orchestrator-agents", json={}).json()["id"]
        agent = c.post("/api/v1/agents", json={"orchestrator_agent_id": orch, "name": "b", "model": "m"}).json()["id"]
    try:
        yield Ctx(srv, orch, agent)
    finally:
        srv.stop()


@pytest.fixture
def http(ctx: Ctx) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ctx.srv.url, timeout=30) as c:
        yield c


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def named(error: dict[str, Any], field: str) -> None:
    details = error.get("details") or []
    fields = [d.get("field") for d in details]
    assert field in fields or field in error["message"], (field, error)
    assert "CHECK" not in error["message"] and "constraint" not in error["message"].lower(), error


# ---------------------------------------------------------------- query parameters


@pytest.mark.parametrize(
    ("path", "name", "value"),
    [
        ("/api/v1/events", "after", str(BIG)),
        ("/api/v1/events", "before", str(BIG)),
        ("/api/v1/events", "after", "9" * 5000),
        ("/api/v1/agents", "offset", str(BIG)),
        ("/api/v1/orchestrator-agents", "offset", str(BIG)),
        ("/get_events", "offset", str(BIG)),
        ("/api/v1/events", "since", "99999999999w"),
        ("/api/v1/events", "until", "9" * 400 + "w"),
        ("/api/v1/events", "since", "0001-01-01T00:00:00+14:00"),
        ("/api/v1/events", "until", "9999-12-31T23:59:59-14:00"),
        ("/api/v1/events", "since", "0999-01-01T00:00:00Z"),
        ("/api/v1/events", "contains", "x" * 50_001),
        ("/api/v1/events", "q", "x" * 50_001),
        ("/api/v1/events", "task_slug", "x" * 50_001),
    ],
)
def test_query_parameter_out_of_bounds_is_400_naming_it(http: httpx.Client, path: str, name: str, value: str) -> None:
    r = http.get(path, params={name: value})
    named(assert_error(r, 400, "bad_parameter"), name)


def test_sse_with_overflowing_since_is_400(http: httpx.Client) -> None:
    r = http.get("/api/v1/stream/sse", params={"since": "99999999999w"})
    named(assert_error(r, 400, "bad_parameter"), "since")


@pytest.mark.parametrize("path", ["/api/v1/stream", "/ws"])
async def test_websocket_with_overflowing_parameters_closes_4400(ctx: Ctx, path: str) -> None:
    query = "since=99999999999w" if path == "/api/v1/stream" else f"after={BIG}"
    async with connect(f"{ctx.srv.ws}{path}?{query}", open_timeout=10) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400, closed.value


# ---------------------------------------------------------------- body fields


def agent_log(ctx: Ctx, **fields: Any) -> dict[str, Any]:
    return {"agent_id": ctx.agent, "event_category": "hook", "event_type": "t", **fields}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("entry_index", BIG),
        ("entry_index", -BIG - 1),
        ("timestamp", "0001-01-01T00:00:00+14:00"),
        ("timestamp", "9999-12-31T23:59:59-14:00"),
        ("timestamp", "0999-12-31T23:59:59Z"),
        ("payload", nested(DEEP)),
        ("payload", nested(300)),
    ],
)
def test_agent_log_field_out_of_bounds_is_422_naming_it(ctx: Ctx, http: httpx.Client, field: str, value: Any) -> None:
    r = http.post("/api/v1/agent-logs", json=agent_log(ctx, **{field: value}))
    named(assert_error(r, 422, "validation_failed"), field)


def test_payload_at_the_depth_limit_is_stored(ctx: Ctx, http: httpx.Client) -> None:
    r = http.post("/api/v1/agent-logs", json=agent_log(ctx, payload=nested(DEEP - 1)))
    assert r.status_code == 201, r.text


def test_system_log_metadata_too_deep_is_422(http: httpx.Client) -> None:
    r = http.post("/api/v1/system-logs", json={"message": "m", "metadata": nested(DEEP)})
    named(assert_error(r, 422, "validation_failed"), "metadata")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("input_tokens", BIG),
        ("add_input_tokens", BIG),
        ("add_cost", "1e999999999"),
        ("total_cost", "1e999999"),
        ("add_cost", "1e-999999"),
        ("total_cost", "NaN"),
        ("metadata", nested(DEEP)),
    ],
)
def test_entity_patch_out_of_bounds_is_422_naming_it(ctx: Ctx, http: httpx.Client, field: str, value: Any) -> None:
    r = http.patch(f"/api/v1/agents/{ctx.agent}", json={field: value})
    named(assert_error(r, 422, "validation_failed"), field)


def test_token_increments_cannot_overflow(ctx: Ctx, http: httpx.Client) -> None:
    orch = http.post("/api/v1/orchestrator-agents", json={"input_tokens": BIG - 1}).json()["id"]
    r = http.patch(f"/api/v1/orchestrator-agents/{orch}", json={"add_input_tokens": 1})
    named(assert_error(r, 422, "validation_failed"), "add_input_tokens")
    assert http.get(f"/api/v1/orchestrator-agents/{orch}").json()["input_tokens"] == BIG - 1


def test_negative_zero_cost_is_zero(http: httpx.Client) -> None:
    r = http.post("/api/v1/orchestrator-agents", json={"total_cost": "-0"})
    assert r.status_code == 201, r.text
    assert r.json()["total_cost"] == 0


def otlp(*attributes: dict[str, Any]) -> dict[str, Any]:
    record = {"severityNumber": 9, "body": {"stringValue": "x"}, "attributes": list(attributes)}
    return {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}


def test_otlp_int_value_beyond_int64_is_kept_as_text(http: httpx.Client) -> None:
    big = str(2**64 + 1)
    r = http.post("/v1/logs", json=otlp({"key": "n", "value": {"intValue": big}}))
    assert r.status_code == 200, r.text
    head = http.get("/api/v1/events", params={"limit": 1}).json()["head_seq"]
    item = http.get("/api/v1/events", params={"after": head - 1, "kind": "system_log"}).json()["items"][-1]
    assert big in str(item["data"]["metadata"]), item


def test_otlp_array_value_nested_260_deep_is_4xx(http: httpx.Client) -> None:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(260):
        value = {"arrayValue": {"values": [value]}}
    r = http.post("/v1/logs", json=otlp({"key": "deep", "value": value}))
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])


def test_client_disconnecting_mid_body_is_a_client_error(ctx: Ctx, http: httpx.Client) -> None:
    with socket.create_connection(("127.0.0.1", ctx.srv.port)) as s:
        s.sendall(
            b"POST /api/v1/system-logs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n" + b'{"message": "half'
        )
    asyncio.run(
        wait_until(lambda: "/api/v1/system-logs 400" in ctx.srv.log_text(), 10, "the access line of the cut request")
    )
    assert "Traceback" not in ctx.srv.log_text()


# ---------------------------------------------------------------- never 5xx (property)

hostile_text = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(
        [
            str(BIG),
            str(-BIG - 1),
            "9" * 5000,
            "99999999999w",
            "1e999999999",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "0999-12-31T23:59:59Z",
            "\x00",
            "%_\\",
            "x" * 20_000,  # with up to 4 such values the URL stays under httpx's 64 KiB limit
            "NaN",
            "-0",
            "1.5h",
            ",,,",
        ]
    ),
)
QUERY_ROUTES = {
    "/api/v1/events": [
        "after", "before", "limit", "kind", "agent_id", "level", "min_level", "event_category", "event_type",
        "task_slug", "session_id", "adw_id", "since", "until", "q", "contains",
    ],
    "/api/v1/agents": ["limit", "offset", "orchestrator_agent_id", "status", "name", "archived"],
    "/api/v1/prompts": ["limit", "offset", "agent_id", "author"],
    "/get_events": ["limit", "offset", "agent_id", "task_slug", "event_types"],
    "/api/v1/stream/sse": ["after", "tail", "since", "until", "q", "agent_id", "min_level"],
}  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(sorted(QUERY_ROUTES)),
    data=st.data(),
)
def test_any_query_parameters_never_5xx(ctx: Ctx, route: str, data: st.DataObject) -> None:
    names = data.draw(st.lists(st.sampled_from(QUERY_ROUTES[route]), min_size=1, max_size=4, unique=True))
    params = {name: data.draw(hostile_text) for name in names}
    with httpx.Client(base_url=ctx.srv.url, timeout=30) as c:
        if route.endswith("/sse"):
            with c.stream("GET", route, params=params) as r:
                status = r.status_code
        else:
            r = c.get(route, params=params)
            status = r.status_code
    assert status < 500, (route, {k: v[:80] for k, v in params.items()}, status)


hostile_number = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([BIG, BIG - 1, -BIG - 1, 2**64, 2**64 + 1]),
    st.floats(allow_nan=False, allow_infinity=False),
    hostile_text,
)
NUMERIC_FIELDS = {
    "agent_log": ["entry_index", "timestamp"],
    "system_log": ["timestamp"],
    "orchestrator": ["input_tokens", "output_tokens", "total_cost"],
    "patch": [
        "input_tokens", "output_tokens", "total_cost", "add_input_tokens", "add_output_tokens", "add_cost",
    ],
    "prompt": ["timestamp"],
}  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(sorted(NUMERIC_FIELDS)), data=st.data())
def test_any_numeric_or_time_field_never_5xx(ctx: Ctx, target: str, data: st.DataObject) -> None:
    names = data.draw(st.lists(st.sampled_from(NUMERIC_FIELDS[target]), min_size=1, max_size=3, unique=True))
    fields = {name: data.draw(hostile_number) for name in names}
    with httpx.Client(base_url=ctx.srv.url, timeout=30) as c:
        if target == "agent_log":
            r = c.post("/api/v1/agent-logs", json=agent_log(ctx, **fields))
        elif target == "system_log":
            r = c.post("/api/v1/system-logs", json={"message": "m", **fields})
        elif target == "orchestrator":
            r = c.post("/api/v1/orchestrator-agents", json=fields)
        elif target == "patch":
            r = c.patch(f"/api/v1/orchestrator-agents/{ctx.orch}", json=fields)
        else:
            r = c.post("/api/v1/prompts", json={"author": "engineer", "prompt_text": "p", **fields})
    assert r.status_code < 500, (target, fields, r.status_code, r.text[:300])


def test_server_log_has_no_traceback(ctx: Ctx) -> None:
    assert ctx.srv.proc is not None and ctx.srv.proc.poll() is None
    assert "Traceback" not in ctx.srv.log_text()
