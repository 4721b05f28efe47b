"""``--agent NAME|ID`` → one agent id, the same way in ``tail`` and ``post``.

Agent names are unique only within an orchestrator, so a name can mean several agents. A UUID is
always taken as the id (it works even before the agent is listed); a name must match exactly one
agent, else the command refuses and lists the candidates, so nobody follows one ``builder``
while posting to another.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any


class AgentRefError(ValueError):
    """The name matches no agent, or several (the message lists them)."""


def as_uuid(ref: str) -> str | None:
    try:
        return str(uuid.UUID(ref.strip()))
    except ValueError:
        return None


def pick_agent(ref: str, named: Sequence[Mapping[str, Any]], known: Sequence[str] = ()) -> str:
    """The id for ``ref`` given the agents named ``ref`` (``GET /api/v1/agents?name=ref``)."""
    ident = as_uuid(ref)
    if ident is not None:
        return ident
    matches = [a for a in named if a.get("name") == ref]
    if len(matches) == 1:
        return str(matches[0]["id"])
    if not matches:
        names = ", ".join(sorted(set(known))[:10]) or "none yet"
        raise AgentRefError(f"no agent named {ref!r} (known: {names}); pass --agent ID or create the agent first")
    listed = "; ".join(
        f"{a['id']} (orchestrator {a.get('orchestrator_agent_id')}, created {a.get('created_at')})"
        for a in matches[:10]
    )
    raise AgentRefError(f"{len(matches)} agents are named {ref!r}: {listed}. Pass --agent ID to pick one")
