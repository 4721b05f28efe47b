"""Authorization decisions (orchlog.auth and the pure parts of orchlog.api.security), without any
server: scopes, agent binding, seeded tokens, the keyring, quotas, tickets, origins, credentials."""

from __future__ import annotations

import uuid

import pytest

from orchlog.api.security import chosen_subprotocol, credentials
from orchlog.auth import (
    OPEN,
    Keyring,
    Principal,
    Quotas,
    Tickets,
    TokenBucket,
    TokenRecord,
    new_token,
    parse_seeded,
    token_hash,
)
from orchlog.errors import Forbidden, OrchlogError, RateLimited, Unauthorized
from orchlog.filters import EventFilter
from orchlog.origins import origin_allowed

A, B = str(uuid.uuid4()), str(uuid.uuid4())


def principal(*scopes: str, agents: tuple[str, ...] = ()) -> Principal:
    return Principal("p", frozenset(scopes), frozenset(agents))


@pytest.mark.parametrize(
    ("scopes", "allowed"),
    [
        (("read",), {"read"}),
        (("ingest",), {"ingest"}),
        (("read", "ingest"), {"read", "ingest"}),
        (("admin",), {"read", "ingest", "admin"}),
        ((), set()),
    ],
)
def test_scopes_and_admin_implies_every_scope(scopes: tuple[str, ...], allowed: set[str]) -> None:
    p = principal(*scopes)
    for scope in ("read", "ingest", "admin"):
        assert p.has(scope) == (scope in allowed), scope
        if scope in allowed:
            p.require(scope)
        else:
            with pytest.raises(Forbidden, match=scope):
                p.require(scope)


def test_bound_reader_is_narrowed_to_its_agents_and_refused_others() -> None:
    p = principal("read", agents=(A,))
    assert p.restrict(EventFilter()).agent_ids == (A,), "no agent asked: only its own"
    assert p.restrict(EventFilter(agent_ids=(A,))).agent_ids == (A,)
    with pytest.raises(Forbidden, match=B):
        p.restrict(EventFilter(agent_ids=(A, B)))
    narrowed = p.restrict(EventFilter(kinds=("system_log",)))
    assert not narrowed.wants("system_log"), "an agent filter excludes system logs"


def test_unbound_and_admin_read_everything() -> None:
    flt = EventFilter(agent_ids=(B,))
    assert principal("read").restrict(flt) is flt
    assert principal("admin", agents=(A,)).restrict(flt) is flt


def test_bound_ingest_posts_only_for_its_agents_and_no_system_logs() -> None:
    p = principal("ingest", agents=(A,))
    p.may_post_for([A, A])
    with pytest.raises(Forbidden, match=B):
        p.may_post_for([A, B])
    with pytest.raises(Forbidden, match="system logs"):
        p.may_post_for([None])
    principal("ingest").may_post_for([A, B, None])
    principal("admin", agents=(A,)).may_post_for([B, None])


def test_tokens_are_prefixed_random_and_stored_only_hashed() -> None:
    a, b = new_token(), new_token()
    assert a.startswith("olg_") and a != b and len(a) > 40
    assert token_hash(a) == token_hash(a) != token_hash(b)
    assert a not in token_hash(a)


def test_seeded_tokens_parse_and_bad_entries_are_named() -> None:
    records = parse_seeded(" ci:ingest:olg_x , dash:read+ingest:olg_y,")
    assert [(r.name, r.scopes) for r in records] == [("ci", ("ingest",)), ("dash", ("read", "ingest"))]
    assert records[0].token_hash == token_hash("olg_x")
    with pytest.raises(OrchlogError, match="entry 2"):
        parse_seeded("ci:ingest:olg_x,broken")
    with pytest.raises(OrchlogError, match="'root'"):
        parse_seeded("ci:root:olg_x")


def record(name: str, token: str, *scopes: str, revoked: bool = False) -> TokenRecord:
    return TokenRecord(name, name, token_hash(token), scopes, (), "2024-01-01T00:00:00Z", "x" if revoked else None)


def test_keyring_open_without_tokens_then_closed_as_soon_as_one_exists() -> None:
    ring = Keyring()
    assert not ring.enabled and ring.authenticate(None) is OPEN
    ring.load([record("old", "olg_old", "read", revoked=True)])
    assert ring.enabled, "a revoked token alone still turns auth on (fail closed)"
    with pytest.raises(Unauthorized, match="required"):
        ring.authenticate(None)
    with pytest.raises(Unauthorized, match="revoked"):
        ring.authenticate("olg_old")
    with pytest.raises(Unauthorized, match="unknown"):
        ring.authenticate("olg_nobody")


def test_keyring_reload_keeps_seeded_tokens_and_applies_revocations() -> None:
    ring = Keyring(parse_seeded("ci:ingest:olg_seed"))
    ring.load([record("db", "olg_db", "read")])
    assert ring.authenticate("olg_seed").scopes == frozenset({"ingest"})
    assert ring.authenticate("olg_db").name == "db"
    ring.load([record("db", "olg_db", "read", revoked=True)])
    with pytest.raises(Unauthorized, match="revoked"):
        ring.authenticate("olg_db")
    assert ring.authenticate("olg_seed").name == "ci"


def test_token_bucket_allows_a_burst_then_names_the_wait() -> None:
    bucket = TokenBucket(rate=10, burst=5)
    assert [bucket.take(1) for _ in range(5)] == [0.0] * 5
    wait = bucket.take(1)
    assert 0 < wait <= 0.1 + 1e-6


def test_quotas_are_per_principal_and_off_at_zero() -> None:
    quotas = Quotas(events_per_s=1, burst=3)
    quotas.charge(principal("ingest"), 3)
    with pytest.raises(RateLimited) as info:
        quotas.charge(principal("ingest"), 1)
    assert info.value.retry_after > 0
    quotas.charge(Principal("other", frozenset({"ingest"})), 3)
    unlimited = Quotas(events_per_s=0, burst=1)
    for _ in range(100):
        unlimited.charge(principal("ingest"), 10_000)


def test_tickets_are_single_use_carry_the_principal_and_expire() -> None:
    tickets = Tickets(ttl_s=60)
    p = principal("read", agents=(A,))
    ticket = tickets.issue(p)
    assert tickets.redeem(ticket) == p
    with pytest.raises(Unauthorized):
        tickets.redeem(ticket)
    stale = Tickets(ttl_s=-1)  # expired the moment it is issued
    with pytest.raises(Unauthorized):
        stale.redeem(stale.issue(p))
    full = Tickets(ttl_s=60, max_live=2)
    full.issue(p), full.issue(p)
    with pytest.raises(RateLimited):
        full.issue(p)


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "h:1", frozenset(), True),  # not a browser
        ("null", "h:1", frozenset(), False),  # sandboxed page / file:
        ("http://localhost:5173", "h:1", frozenset(), True),
        ("http://127.0.0.1:8080", "h:1", frozenset(), True),
        ("http://[::1]:3000", "h:1", frozenset(), True),
        ("https://orchlog.example", "orchlog.example", frozenset(), True),  # same origin
        ("https://evil.example", "orchlog.example", frozenset(), False),
        ("https://dash.example", "orchlog.example", frozenset({"https://dash.example"}), True),
        ("https://dash.example/", "orchlog.example", frozenset({"https://dash.example"}), True),
        ("https://evil.example", "orchlog.example", frozenset({"*"}), True),
        ("https://localhost.evil.example", "orchlog.example", frozenset(), False),
        # look-alikes a browser never sends, but a script may (review F5)
        ("http://evil.example@127.0.0.1", "orchlog.example", frozenset(), False),
        ("http://127.0.0.1:1, http://evil.example", "orchlog.example", frozenset(), False),
        ("chrome-extension://abc", "orchlog.example", frozenset(), False),
        ("HTTPS://Orchlog.Example", "orchlog.example", frozenset(), True),  # case does not matter
    ],
)
def test_origin_decisions(origin: str | None, host: str, allowed: frozenset[str], ok: bool) -> None:
    assert origin_allowed(origin, host, allowed) is ok


def test_credentials_from_header_subprotocol_or_ticket() -> None:
    http = {"type": "http", "query_string": b""}
    assert credentials(http, {"authorization": "Bearer olg_a"}) == ("olg_a", None)
    assert credentials(http, {"authorization": "Basic x"}) == (None, None)
    ws = {"type": "websocket", "subprotocols": ["orchlog.v1", "bearer.olg_b"], "query_string": b"ticket=t1&x=2"}
    assert credentials(ws, {}) == ("olg_b", "t1")
    assert chosen_subprotocol(ws) == "orchlog.v1", "the token is not echoed back when orchlog.v1 is offered"
    assert chosen_subprotocol({"subprotocols": ["bearer.olg_b"]}) == "bearer.olg_b"
    assert credentials({"type": "http", "subprotocols": ["bearer.olg_b"], "query_string": b""}, {}) == (None, None)


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("localhost", True),
        ("localhost:8000", True),
        ("127.0.0.1:8000", True),
        ("[::1]:8000", True),
        ("LOCALHOST:8000", True),
        ("dash.example:443", True),  # the host of an allowed origin
        (None, False),
        ("", False),
        ("evil.example", False),
        ("localhost.", False),
        ("localhost:8000.evil", False),
        ("localhost:80@evil", False),
        ("[::1]evil.example", False),
        ("localhost:abc", False),
        (" localhost", False),
        ("evil.localhost", False),
    ],
)
def test_host_decisions_in_dev_mode(host: str | None, ok: bool) -> None:
    from orchlog.origins import host_allowed

    assert host_allowed(host, frozenset({"dash.example"})) is ok


def test_one_principal_cannot_take_every_stream_ticket() -> None:
    tickets = Tickets(ttl_s=60, max_live=1000, max_per_principal=3)
    alice, bob = Principal("alice", frozenset({"read"})), Principal("bob", frozenset({"read"}))
    for _ in range(3):
        tickets.issue(alice)
    with pytest.raises(RateLimited):
        tickets.issue(alice)
    tickets.redeem(tickets.issue(bob))  # others are not locked out


def test_a_ticket_outlives_neither_its_token_nor_dev_mode() -> None:
    """Keyring.allows decides whether a redeemed ticket still stands (review F3)."""
    from orchlog.auth import OPEN, Keyring, TokenRecord, token_hash

    ring = Keyring()
    ring.load([])
    assert ring.allows(OPEN)  # dev mode: the open principal's tickets are fine
    record = TokenRecord("t1", "t1", token_hash("olg_x"), ("read",), (), "2026-01-01T00:00:00.000000Z")
    ring.load([record])
    assert not ring.allows(OPEN), "tokens exist now: a ticket issued in dev mode must not stream"
    assert ring.allows(record.principal())
    ring.load([TokenRecord(**{**record.__dict__, "revoked_at": "2026-01-02T00:00:00.000000Z"})])
    assert not ring.allows(record.principal())


def test_stream_slots_are_the_one_count_of_open_streams() -> None:
    """Limits and the counts /metrics and the shutdown drain read come from the same slots."""
    from orchlog.slots import StreamSlots

    slots = StreamSlots(max_total=3, max_per_token=2, max_per_client=3)
    a = slots.acquire("t1", "1.2.3.4", "websocket")
    b = slots.acquire("t1", "1.2.3.4", "sse")
    with pytest.raises(RateLimited):
        slots.acquire("t1", "1.2.3.4", "compat")  # the per-token limit
    c = slots.acquire("t2", "1.2.3.4", "compat")
    assert slots.total == 3 and dict(slots.by_transport) == {"websocket": 1, "sse": 1, "compat": 1}
    for slot in (a, b, c, a):  # releasing twice counts once
        slot.release()
    assert slots.total == 0 and sum(slots.by_transport.values()) == 0
