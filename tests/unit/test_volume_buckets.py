"""orchlog.volume (the bucket arithmetic, pure) and Store.volume / Store.time_span on both real
stores (SQLite in tmp; PostgreSQL when ORCHLOG_TEST_PG_URL is set): the SQL must put each event in
the bucket Python computes, ``floor(epoch seconds / bucket_s)``, before 1970 and on the edges too."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from helpers.pg import needs_pg, throwaway_database
from orchlog.config import Settings
from orchlog.errors import BadParameter
from orchlog.filters import MATCH_ALL, EventFilter
from orchlog.models import AgentCreate, AgentLogIn, OrchestratorAgentCreate, SystemLogIn
from orchlog.store import open_store
from orchlog.store.base import CreateAgent, CreateOrchestrator, InsertLogs, Store
from orchlog.volume import MAX_BUCKETS, TARGET_BUCKETS, epoch_s, plan, reply

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
TIMES = [
    "1969-12-31T23:59:59.500000Z",
    "1970-01-01T00:00:00.000000Z",
    "2024-06-01T11:59:59.999999Z",
    "2024-06-01T12:00:00.000000Z",
    "2024-06-01T12:00:00.000001Z",
    "2024-06-01T12:04:59.999999Z",
    "2024-06-01T12:05:00.000000Z",
    "1000-01-01T00:00:00.000000Z",
    "9999-12-31T23:59:59.999999Z",
]


def test_epoch_s_floors_whole_seconds() -> None:
    assert epoch_s("1970-01-01T00:00:01.999999Z") == 1
    assert epoch_s("1969-12-31T23:59:59.500000Z") == -1


def test_plan_picks_a_round_bucket_within_the_target() -> None:
    p = plan("2024-06-01T11:00:00.000000Z", "2024-06-01T12:00:00.000000Z", None, None, None, NOW)
    assert (p.bucket_s, p.count) == (30, 120)
    p = plan("2024-06-01T11:00:00.5Z", "2024-06-01T12:00:00.5Z", None, None, None, NOW)
    assert p.count <= TARGET_BUCKETS, "unaligned ends may add a bucket each: a larger size then"
    p = plan(None, None, "1000-01-01T00:00:00.000000Z", "9999-12-31T23:59:59.999999Z", None, NOW)
    assert p.count <= TARGET_BUCKETS
    starts = [b["start"] for b in reply(p, {})["buckets"]]
    assert starts[0] < "1000" and len(starts[0]) == len(starts[-1]) == 27, "four-digit years, even before 1000"


def test_plan_defaults_since_to_the_first_event_and_until_to_now_or_past_the_last() -> None:
    p = plan(None, None, "2024-06-01T11:00:00.000000Z", "2024-06-01T11:30:00.000000Z", None, NOW)
    assert (p.since, p.until) == ("2024-06-01T11:00:00.000000Z", "2024-06-01T12:00:00.000000Z")
    p = plan(None, None, "2024-06-01T11:00:00.000000Z", "2024-06-01T13:00:00.000000Z", None, NOW)
    assert p.until == "2024-06-01T13:00:00.000001Z", "an event stamped ahead of now is still counted"
    assert plan(None, None, None, None, None, NOW).count == 0, "nothing stored: no buckets"


def test_plan_refuses_more_than_max_buckets_naming_bucket() -> None:
    since, until = "2024-06-01T00:00:00.000000Z", "2024-06-02T00:00:00.000000Z"
    with pytest.raises(BadParameter, match="bucket") as info:
        plan(since, until, None, None, 60, NOW)
    assert str(MAX_BUCKETS) in str(info.value)
    assert plan(since, until, None, None, 180, NOW).count == 480


def test_reply_lists_every_bucket_with_levels_in_rank_order() -> None:
    p = plan("2024-06-01T12:00:00Z", "2024-06-01T12:03:00Z", None, None, 60, NOW)
    first = epoch_s("2024-06-01T12:00:00.000000Z") // 60
    body = reply(p, {first: {"ERROR": 2, "DEBUG": 1}, first + 2: {"INFO": 3}})
    assert body["bucket_s"] == 60
    assert [b["start"] for b in body["buckets"]] == [
        "2024-06-01T12:00:00.000000Z",
        "2024-06-01T12:01:00.000000Z",
        "2024-06-01T12:02:00.000000Z",
    ]
    assert [list(b["counts"].items()) for b in body["buckets"]] == [[("DEBUG", 1), ("ERROR", 2)], [], [("INFO", 3)]]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=needs_pg)])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[BlockingPortal, Store, str]]:
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            url = stack.enter_context(throwaway_database())
        else:
            url = str(tmp_path_factory.mktemp("volume") / "volume.db")
        portal = stack.enter_context(start_blocking_portal())
        st = open_store(Settings(db=url, read_connections=1))
        portal.call(st.open)
        try:
            orch = portal.call(st.write_batch, [CreateOrchestrator(OrchestratorAgentCreate())]).results[0]
            ops = [CreateAgent(AgentCreate(orchestrator_agent_id=orch["id"], name="a", model="m"))]
            agent = str(portal.call(st.write_batch, ops).results[0]["id"])
            items: list[AgentLogIn | SystemLogIn] = []
            for i, ts in enumerate(TIMES):
                level = ("INFO", "ERROR")[i % 2]
                items.append(SystemLogIn(message=f"s{i}", level=level, timestamp=ts))
                items.append(
                    AgentLogIn.model_validate(
                        {
                            "agent_id": agent,
                            "event_category": "hook",
                            "event_type": "PreToolUse",
                            "level": level,
                            "payload": {"tool_name": "Bash" if i % 3 else "Read"},
                            "timestamp": ts,
                        }
                    )
                )
            result = portal.call(st.write_batch, [InsertLogs(items)])
            assert not isinstance(result.results[0], BaseException), result.results[0]
            yield portal, st, agent
        finally:
            portal.call(st.close)


@pytest.mark.parametrize("bucket_s", [1, 7, 60, 300, 86400, 365 * 86400])
@pytest.mark.parametrize("params", [{}, {"kind": ["agent_log"]}, {"tool_name": ["Bash"]}, {"level": ["ERROR"]}])
def test_store_volume_puts_each_event_in_its_floored_bucket(
    store: tuple[BlockingPortal, Store, str], bucket_s: int, params: dict[str, list[str]]
) -> None:
    portal, st, _agent = store
    flt = EventFilter.from_params(params)
    events, _ = portal.call(lambda: st.read_events(flt, limit=1000))
    want: dict[int, Counter[str]] = {}
    for e in events:
        want.setdefault(epoch_s(e.data["timestamp"]) // bucket_s, Counter())[e.data["level"]] += 1
    got = portal.call(st.volume, flt, bucket_s)
    assert {k: Counter(v) for k, v in got.items()} == want


def test_store_time_span_is_the_first_and_last_matching_timestamp(store: tuple[BlockingPortal, Store, str]) -> None:
    portal, st, _agent = store
    assert portal.call(st.time_span, MATCH_ALL) == ("1000-01-01T00:00:00.000000Z", "9999-12-31T23:59:59.999999Z")
    late = EventFilter.from_params({"since": ["2024-01-01T00:00:00Z"], "until": ["2025-01-01T00:00:00Z"]})
    assert portal.call(st.time_span, late) == ("2024-06-01T11:59:59.999999Z", "2024-06-01T12:05:00.000000Z")
    assert portal.call(st.time_span, EventFilter.from_params({"tool_name": ["Nope"]})) == (None, None)
