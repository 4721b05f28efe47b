"""Full-text search on the history API: `q` takes FTS5 syntax (phrases, prefixes, boolean
operators), results stay in seq order and pageable, bad syntax is a 400, `contains` is the plain
substring (what streams use for `q`)."""

from __future__ import annotations

import httpx
import pytest

from helpers import assert_error, make_agents

MESSAGES = [
    "deploy finished ok",
    "deployment failed: disk full",
    "tests passed",
    "Disk almost full",
    "rollback of the deploy",
]


@pytest.fixture
async def seeded(client: httpx.AsyncClient) -> tuple[list[int], str]:
    r = await client.post("/api/v1/system-logs", json=[{"message": m} for m in MESSAGES])
    assert r.status_code == 201
    seqs = [it["seq"] for it in r.json()["items"]]
    _orch, agents = await make_agents(client, 1)
    r = await client.post(
        "/api/v1/agent-logs",
        json=[
            {"agent_id": agents[0], "event_category": "hook", "event_type": "PreToolUse", "content": "Bash: deploy.sh"},
            {
                "agent_id": agents[0],
                "event_category": "response",
                "event_type": "text",
                "content": "nothing here",
                "summary": "disk cleanup planned",
            },
        ],
    )
    assert r.status_code == 201
    return seqs + [it["seq"] for it in r.json()["items"]], agents[0]


async def search(client: httpx.AsyncClient, **params: str) -> list[int]:
    r = await client.get("/api/v1/events", params=params)
    assert r.status_code == 200, r.text
    return [it["seq"] for it in r.json()["items"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("deploy", [0, 4, 5]),  # a word: not "deployment" (tokens, not substrings), but "deploy.sh"
        ("deploy*", [0, 1, 4, 5]),  # prefix, across both tables (agent content 'deploy.sh')
        ('"disk full"', [1]),  # phrase
        ("disk", [1, 3, 6]),  # case-insensitive; agent summary indexed too
        ("disk NOT deployment", [3, 6]),
        ("tests OR finished", [0, 2]),
        ("disk AND full", [1, 3]),
    ],
)
async def test_fulltext_queries_return_exactly_the_matching_events_in_seq_order(
    client: httpx.AsyncClient, seeded: tuple[list[int], str], query: str, expected: list[int]
) -> None:
    seqs, _agent = seeded
    assert await search(client, q=query) == [seqs[i] for i in expected]


async def test_fulltext_pages_with_after_and_limit(client: httpx.AsyncClient, seeded: tuple[list[int], str]) -> None:
    seqs, _agent = seeded
    first = await client.get("/api/v1/events", params={"q": "deploy*", "limit": 2})
    body = first.json()
    assert [it["seq"] for it in body["items"]] == [seqs[0], seqs[1]] and body["has_more"] is True
    rest = await search(client, q="deploy*", after=str(body["next_after"]))
    assert rest == [seqs[4], seqs[5]]


async def test_fulltext_combines_with_filters(client: httpx.AsyncClient, seeded: tuple[list[int], str]) -> None:
    seqs, agent = seeded
    assert await search(client, q="deploy*", kind="agent_log") == [seqs[5]]
    assert await search(client, q="disk", agent_id=agent) == [seqs[6]]


@pytest.mark.parametrize("query", ['bad"syntax', "AND", "disk AND", "(unbalanced"])
async def test_bad_fulltext_syntax_is_400_naming_q(client: httpx.AsyncClient, query: str) -> None:
    error = assert_error(await client.get("/api/v1/events", params={"q": query}), 400, "bad_parameter")
    assert error["details"][0]["field"] == "q"
    assert (await client.get("/healthz")).status_code == 200


async def test_contains_is_the_plain_substring(client: httpx.AsyncClient, seeded: tuple[list[int], str]) -> None:
    seqs, _agent = seeded
    assert await search(client, contains="ull") == [seqs[1], seqs[3]]


async def test_fulltext_index_follows_retention_deletes(
    client: httpx.AsyncClient, seeded: tuple[list[int], str], server
) -> None:
    """Rows deleted (retention) leave the index too: a search never returns a deleted seq."""
    import sqlite3

    seqs, _agent = seeded
    conn = sqlite3.connect(server.db, isolation_level=None)
    try:
        conn.execute("DELETE FROM system_logs WHERE seq = ?", (seqs[1],))
    finally:
        conn.close()
    assert await search(client, q='"disk full"') == []
    assert await search(client, q="disk") == [seqs[3], seqs[6]]
