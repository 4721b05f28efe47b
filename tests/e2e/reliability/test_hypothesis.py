"""Property-based fuzzing (hypothesis) of the ingest contract against a real server: whatever the
body, the answer is 201 or a documented 4xx, a request is all-or-nothing, and the server stays up."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import Server

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=50),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=30,
)
FIELDS = [
    "agent_id",
    "event_category",
    "event_type",
    "level",
    "content",
    "payload",
    "message",
    "kind",
    "id",
    "timestamp",
    "metadata",
    "summary",
    "entry_index",
    "file_path",
]
items = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    srv = Server(tmp_path_factory.mktemp("fuzz") / "fuzz.db").start()
    with httpx.Client(base_url=srv.url) as c:
        orch = c.post("/api/v1/orchestrator-agents", json={}).json()["id"]
        agent = c.post("/api/v1/agents", json={"orchestrator_agent_id": orch, "name": "f", "model": "m"}).json()["id"]
    try:
        yield srv, agent
    finally:
        srv.stop()


def _count(client: httpx.Client) -> int:
    return int(client.get("/api/v1/events", params={"limit": 1}).json()["head_seq"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(items, min_size=1, max_size=6), valid_first=st.booleans())
def test_any_json_batch_is_201_or_4xx_and_all_or_nothing(
    fuzz_server: tuple[Server, str], batch: list[dict], valid_first: bool
) -> None:
    srv, agent = fuzz_server
    if valid_first:  # a valid item beside fuzzed ones: must not be stored if the request fails
        batch = [
            {
                "kind": "agent_log",
                "agent_id": agent,
                "event_category": "hook",
                "event_type": "ok",
                "id": str(uuid.uuid4()),
            },
            *batch,
        ]
    with httpx.Client(base_url=srv.url, timeout=20) as c:
        before = _count(c)
        r = c.post("/api/v1/events", content=json.dumps(batch), headers={"content-type": "application/json"})
        assert r.status_code == 201 or 400 <= r.status_code < 500, (r.status_code, r.text[:300])
        if r.status_code == 201:
            assert r.json()["count"] == len(batch)
        else:
            assert "error" in r.json()
            assert _count(c) == before, "a rejected request stored something"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300), ndjson=st.booleans())
def test_any_bytes_are_answered_with_4xx_never_500(fuzz_server: tuple[Server, str], raw: bytes, ndjson: bool) -> None:
    srv, _agent = fuzz_server
    ctype = "application/x-ndjson" if ndjson else "application/json"
    with httpx.Client(base_url=srv.url, timeout=20) as c:
        r = c.post("/api/v1/system-logs", content=raw, headers={"content-type": ctype})
        assert r.status_code in (201, 400, 413, 415, 422), (r.status_code, r.text[:300])
        assert c.get("/healthz").status_code == 200


def test_server_survived_the_fuzzing(fuzz_server: tuple[Server, str], tmp_path: Path) -> None:
    srv, _agent = fuzz_server
    assert srv.proc is not None and srv.proc.poll() is None
    assert "Traceback" not in srv.log_text()
