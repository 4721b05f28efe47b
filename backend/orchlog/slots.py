"""Open streams, counted once: the limits (in all, per token, per client address; each answered
with 429 / close 4429 and a message that says which limit) and the counts by transport that
``/metrics``, the compat ``/health`` and the shutdown drain read."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .errors import RateLimited


@dataclass
class Slot:
    slots: StreamSlots
    principal: str
    client: str
    transport: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.slots._release(self)


@dataclass
class StreamSlots:
    max_total: int
    max_per_token: int
    max_per_client: int
    total: int = 0
    by_token: Counter[str] = field(default_factory=Counter)
    by_client: Counter[str] = field(default_factory=Counter)
    by_transport: Counter[str] = field(default_factory=Counter)

    def acquire(self, principal: str, client: str, transport: str) -> Slot:
        if self.total >= self.max_total:
            raise RateLimited(f"this server has {self.total} open streams, its limit; retry later", retry_after=5)
        if self.by_token[principal] >= self.max_per_token:
            raise RateLimited(
                f"{principal!r} already has {self.max_per_token} open streams (the per-token limit)", retry_after=5
            )
        if self.by_client[client] >= self.max_per_client:
            raise RateLimited(
                f"{client} already has {self.max_per_client} open streams (the per-address limit)", retry_after=5
            )
        self.total += 1
        self.by_token[principal] += 1
        self.by_client[client] += 1
        self.by_transport[transport] += 1
        return Slot(self, principal, client, transport)

    def _release(self, slot: Slot) -> None:
        self.total -= 1
        self.by_token[slot.principal] -= 1
        self.by_client[slot.client] -= 1
        self.by_transport[slot.transport] -= 1
        if self.by_token[slot.principal] <= 0:
            del self.by_token[slot.principal]
        if self.by_client[slot.client] <= 0:
            del self.by_client[slot.client]
