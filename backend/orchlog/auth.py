"""Tokens, scopes and quotas: who may do what, decided without any web framework.

A token is ``olg_<random>``; only its SHA-256 is stored (database, or settings for containers).
A principal has scopes (``read``, ``ingest``, ``admin``; admin implies the others) and may be
bound to agent ids: a bound read principal sees only those agents' events (history, replay and
live alike, whatever filter it asks for); a bound ingest principal may only post for them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from pydantic import SecretStr

from .errors import Forbidden, OrchlogError, PayloadTooLarge, RateLimited, Unauthorized
from .filters import EventFilter

SCOPES = ("read", "ingest", "admin")
TOKEN_PREFIX = "olg_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]
    agent_ids: frozenset[str] = frozenset()
    token_id: str | None = None

    def has(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def require(self, scope: str) -> None:
        if not self.has(scope):
            raise Forbidden(f"this token lacks the {scope!r} scope (it has: {', '.join(sorted(self.scopes))})")

    @property
    def bound(self) -> bool:
        return bool(self.agent_ids)

    def restrict(self, flt: EventFilter) -> EventFilter:
        """Narrow a read filter to the principal's agents; asking for others is refused."""
        if not self.bound or "admin" in self.scopes:
            return flt
        if flt.agent_ids:
            outside = [a for a in flt.agent_ids if a not in self.agent_ids]
            if outside:
                raise Forbidden(f"this token may not read agent {outside[0]}")
            return flt
        return replace(flt, agent_ids=tuple(sorted(self.agent_ids)))

    def may_post_for(self, agent_ids: Iterable[str | None]) -> None:
        if not self.bound or "admin" in self.scopes:
            return
        for agent_id in agent_ids:
            if agent_id is None:
                raise Forbidden("this token is bound to agents and may not post system logs")
            if agent_id not in self.agent_ids:
                raise Forbidden(f"this token may not post for agent {agent_id}")


OPEN = Principal(name="anonymous (no tokens configured)", scopes=frozenset(SCOPES))


@dataclass(frozen=True)
class TokenRecord:
    id: str
    name: str
    token_hash: str
    scopes: tuple[str, ...]
    agent_ids: tuple[str, ...]
    created_at: str
    revoked_at: str | None = None

    def principal(self) -> Principal:
        return Principal(self.name, frozenset(self.scopes), frozenset(self.agent_ids), self.id)


def parse_seeded(spec: str | SecretStr) -> list[TokenRecord]:
    """Tokens from settings (``ORCHLOG_TOKENS``): ``name:scope+scope:token`` entries, comma
    separated, e.g. ``ci:ingest:olg_x,dash:read:olg_y``. Kept hashed in memory only."""
    if isinstance(spec, SecretStr):
        spec = spec.get_secret_value()
    out = []
    for n, entry in enumerate(filter(None, (e.strip() for e in spec.split(",")))):
        parts = entry.split(":", 2)
        if len(parts) != 3 or not parts[2]:
            raise OrchlogError(f"ORCHLOG_TOKENS entry {n + 1} is not name:scopes:token")
        name, scopes, token = parts
        bad = [s for s in scopes.split("+") if s not in SCOPES]
        if bad:
            raise OrchlogError(f"ORCHLOG_TOKENS entry {name!r}: unknown scope {bad[0]!r} (use {', '.join(SCOPES)})")
        out.append(TokenRecord(f"seeded:{name}", name, token_hash(token), tuple(scopes.split("+")), (), ""))
    return out


AUTH_RULE = (
    "Auth is ON while the database holds at least one token row (active or revoked) or ORCHLOG_TOKENS "
    "is set; every request then needs a valid token. Revoking a token keeps its row, so revoking the last "
    "one leaves the server closed (fail closed), not open. Auth is OFF (dev mode: open API, loopback "
    "only) when no token row exists and ORCHLOG_TOKENS is empty; `orchlog token delete` of every token "
    "is the way back to it."
)


@dataclass(frozen=True)
class AuthState:
    """Whether auth is on, decided in ONE place from the token rows and the seeded tokens
    (``AUTH_RULE`` says it in words; the server, ``token list`` and the docs all use it)."""

    active: int = 0
    revoked: int = 0
    seeded: int = 0

    @classmethod
    def of(cls, records: Iterable[TokenRecord], seeded: int = 0) -> AuthState:
        rows = list(records)
        revoked = sum(1 for r in rows if r.revoked_at)
        return cls(active=len(rows) - revoked, revoked=revoked, seeded=seeded)

    @property
    def on(self) -> bool:
        return bool(self.active or self.revoked or self.seeded)

    def describe(self) -> str:
        """One line for humans: the mode and why."""
        if not self.on:
            return (
                "auth: OFF (dev mode): no tokens in this database and ORCHLOG_TOKENS is empty here; "
                "a server on loopback answers everyone, one on another interface refuses to start"
            )
        why = [f"{self.active} active", f"{self.revoked} revoked"]
        if self.seeded:
            why.append(f"{self.seeded} from ORCHLOG_TOKENS")
        line = f"auth: ON: every request needs a token ({', '.join(why)})"
        if not self.active and not self.seeded:
            line += "; no token is active, so every request is refused: create one, or `token delete` the rest"
        return line


class Keyring:
    """The active tokens by hash; refreshed from the database every few seconds, so tokens
    created or revoked by ``orchlog token`` (another process) take effect without a restart."""

    def __init__(self, seeded: Sequence[TokenRecord] = (), refresh_s: float = 2.0) -> None:
        self._seeded = list(seeded)
        self._by_hash: dict[str, TokenRecord] = {t.token_hash: t for t in seeded}
        self._revoked: set[str] = set()
        self._active_ids = {t.id for t in seeded}
        self.refresh_s = refresh_s
        self.loaded_at = 0.0
        self.state = AuthState(seeded=len(self._seeded))

    def load(self, records: Iterable[TokenRecord]) -> None:
        by_hash = {t.token_hash: t for t in self._seeded}
        revoked = set()
        records_seen = list(records)
        for record in records_seen:
            if record.revoked_at:
                revoked.add(record.token_hash)
            else:
                by_hash[record.token_hash] = record
        self._by_hash, self._revoked = by_hash, revoked
        self.state = AuthState.of(records_seen, len(self._seeded))
        self._active_ids = {t.id for t in by_hash.values()}
        self.loaded_at = time.monotonic()

    @property
    def stale(self) -> bool:
        return time.monotonic() - self.loaded_at > self.refresh_s

    @property
    def enabled(self) -> bool:
        """See ``AUTH_RULE``: any token row (active or revoked) or a seeded token."""
        return self.state.on

    def allows(self, principal: Principal) -> bool:
        """Is this principal's token still active? (Open mode ends when the first token appears.)"""
        if principal.token_id is None:
            return not self.enabled
        return principal.token_id in self._active_ids

    def authenticate(self, token: str | None) -> Principal:
        if not self.enabled:
            return OPEN
        if not token:
            raise Unauthorized("a token is required: send 'Authorization: Bearer <token>'")
        digest = token_hash(token)
        record = self._by_hash.get(digest)
        # the dict lookup is by a hash of the secret; compare_digest keeps the final check constant-time
        if record is None or not hmac.compare_digest(record.token_hash, digest):
            if digest in self._revoked:
                raise Unauthorized("this token was revoked")
            raise Unauthorized("unknown token")
        return record.principal()


@dataclass
class TokenBucket:
    rate: float  # tokens per second
    burst: float
    level: float = -1.0
    stamp: float = field(default_factory=time.monotonic)

    def take(self, amount: float) -> float:
        """0 if allowed (and taken), else the seconds to wait before this much is available."""
        now = time.monotonic()
        if self.level < 0:
            self.level = self.burst
        self.level = min(self.burst, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        if amount <= self.level:
            self.level -= amount
            return 0.0
        return (amount - self.level) / self.rate


class Quotas:
    """Per-principal ingest rate (events/s, token bucket); 0 disables.

    Charged per event, whatever the request's size: ``burst`` (default: one second's worth) is
    the most one request may carry, so a request larger than that is refused outright (413, split
    it) rather than let through for the price of ``burst``."""

    def __init__(self, events_per_s: float, burst: float = 0.0) -> None:
        self.rate = events_per_s
        self.burst = max(burst if burst > 0 else events_per_s, 1.0)
        self._buckets: dict[str, TokenBucket] = {}

    def charge(self, principal: Principal, events: int) -> None:
        if self.rate <= 0 or events <= 0:
            return
        if events > self.burst:
            raise PayloadTooLarge(
                f"{events} events in one request is more than the ingest quota allows at once "
                f"({self.burst:g} for {principal.name!r} at {self.rate:g} events/s); send smaller batches"
            )
        bucket = self._buckets.setdefault(principal.name, TokenBucket(self.rate, self.burst))
        wait = bucket.take(events)
        if wait > 0:
            raise RateLimited(
                f"ingest quota of {self.rate:g} events/s exceeded for {principal.name!r}; retry after {wait:.1f}s",
                retry_after=wait,
            )


class Tickets:
    """Short-lived single-use stream tickets for browsers (which cannot set headers on a WebSocket
    or EventSource): ``POST /api/v1/stream/ticket`` → ``?ticket=``. Kept in this process only."""

    def __init__(self, ttl_s: float = 30.0, max_live: int = 10_000, max_per_principal: int = 100) -> None:
        self.ttl_s = ttl_s
        self.max_live = max_live
        self.max_per_principal = max_per_principal
        self._live: dict[str, tuple[float, Principal]] = {}

    def issue(self, principal: Principal) -> str:
        self._expire()
        if len(self._live) >= self.max_live:
            raise RateLimited("too many outstanding stream tickets; retry shortly", retry_after=self.ttl_s)
        # one principal cannot take every ticket there is (and so lock every browser out)
        held = sum(1 for _, p in self._live.values() if p.name == principal.name)
        if held >= self.max_per_principal:
            raise RateLimited(
                f"{held} unredeemed stream tickets for {principal.name!r}; redeem or let them expire",
                retry_after=self.ttl_s,
            )
        ticket = secrets.token_urlsafe(24)
        self._live[ticket] = (time.monotonic() + self.ttl_s, principal)
        return ticket

    def redeem(self, ticket: str) -> Principal:
        self._expire()
        entry = self._live.pop(ticket, None)
        if entry is None:
            raise Unauthorized("unknown, used or expired stream ticket; request a new one")
        return entry[1]

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, (deadline, _) in self._live.items() if deadline < now]:
            del self._live[key]
