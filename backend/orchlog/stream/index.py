"""The hub's subscriptions, grouped by identical filter and indexed by what can be indexed.

Fan-out cost is what keeps the event loop busy, so for each event the hub evaluates:

- each distinct filter ONCE, however many subscribers share it (2,000 dashboards on the same view
  cost one evaluation per event, not 2,000);
- only the filters that can match its kind and agent: a filter naming agents is looked up by the
  event's ``agent_id``, a filter naming kinds by the event's kind; the rest are evaluated always;
- a filter with a ``q`` only if its text occurs in the event: every distinct ``q`` is found in
  ONE pass over the event's text fields (an Aho-Corasick automaton, pyahocorasick), so 1,000
  subscribers searching for 1,000 different words cost one scan per event, not 1,000 filters.

The index only narrows: each candidate filter's own ``matches`` still decides.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Generic, Protocol, TypeVar

import ahocorasick

from ..filters import EventFilter, q_texts


class _HasFilter(Protocol):
    @property
    def filter(self) -> EventFilter: ...


S = TypeVar("S", bound=_HasFilter)
Group = tuple[EventFilter, set[S]]


class SubscriptionIndex(Generic[S]):
    def __init__(self) -> None:
        self._all: set[S] = set()
        self._groups: dict[EventFilter, set[S]] = {}
        self._any: dict[EventFilter, set[S]] = {}
        self._by_kind: dict[str, dict[EventFilter, set[S]]] = {}
        self._by_agent: dict[str, dict[EventFilter, set[S]]] = {}
        self._by_q: dict[str, dict[EventFilter, set[S]]] = {}
        self._automaton: Any = None  # every key of _by_q; rebuilt when they change (None: stale)

    def __len__(self) -> int:
        return len(self._all)

    def __iter__(self) -> Iterator[S]:
        return iter(list(self._all))  # a snapshot: callers may add or remove while iterating

    def __contains__(self, sub: object) -> bool:
        return sub in self._all

    @property
    def filters(self) -> int:
        """Distinct filters (what one event costs to evaluate, at most)."""
        return len(self._groups)

    def add(self, sub: S) -> None:
        if sub in self._all:
            return
        self._all.add(sub)
        flt = sub.filter
        group = self._groups.get(flt)
        if group is None:
            if flt.q_folded and flt.q_folded not in self._by_q:
                self._automaton = None  # a new word (only then: rebuilding costs every word's length)
            group = self._groups[flt] = set()
            for bucket in self._buckets(flt):
                bucket[flt] = group
        group.add(sub)

    def discard(self, sub: S) -> None:
        if sub not in self._all:
            return
        self._all.discard(sub)
        flt = sub.filter
        group = self._groups[flt]
        group.discard(sub)
        if not group:
            del self._groups[flt]
            for bucket in self._buckets(flt):
                del bucket[flt]
            for index in (self._by_kind, self._by_agent, self._by_q):
                for key in [k for k, v in index.items() if not v]:
                    del index[key]
            if flt.q_folded and flt.q_folded not in self._by_q:
                self._automaton = None  # the last filter with this word is gone

    def clear(self) -> None:
        for sub in list(self._all):
            self.discard(sub)

    def candidates(self, kind: str, row: Mapping[str, Any], folded: dict[str, str] | None = None) -> list[Group[S]]:
        """The (filter, subscribers) groups that may match an event of this kind and row.
        ``folded`` is the event's case-folded text cache, shared with the filters' ``matches``."""
        out: list[Group[S]] = list(self._any.items())
        by_kind = self._by_kind.get(kind)
        if by_kind:
            out.extend(by_kind.items())
        if kind == "agent_log" and self._by_agent:
            by_agent = self._by_agent.get(str(row.get("agent_id")))
            if by_agent:
                out.extend(by_agent.items())
        if self._by_q:
            for q in self._qs_in(kind, row, folded):
                out.extend(self._by_q[q].items())
        return out

    def _qs_in(self, kind: str, row: Mapping[str, Any], folded: dict[str, str] | None) -> set[str]:
        """Every indexed ``q`` that occurs in one of the event's text fields."""
        automaton = self._automaton
        if automaton is None:
            automaton = self._automaton = ahocorasick.Automaton()
            for q in self._by_q:
                automaton.add_word(q, q)
            automaton.make_automaton()
        found: set[str] = set()
        for text in q_texts(kind, row, folded):
            if text:
                for _, q in automaton.iter(text):  # (no generator per text: most find nothing)
                    found.add(q)
        return found

    def _buckets(self, flt: EventFilter) -> list[dict[EventFilter, set[S]]]:
        """Where a filter is indexed: by its ``q`` (the text it needs), else by its agents (they
        imply agent logs), else by its kinds, else among the filters evaluated for every event.
        Exactly one of these, so an event meets each filter at most once (it has one kind, one
        agent, and each ``q`` is found once)."""
        if flt.q_folded:
            return [self._by_q.setdefault(flt.q_folded, {})]
        if flt.agent_ids:
            return [self._by_agent.setdefault(agent, {}) for agent in flt.agent_ids]
        if flt.kinds:
            return [self._by_kind.setdefault(kind, {}) for kind in flt.kinds]
        return [self._any]
