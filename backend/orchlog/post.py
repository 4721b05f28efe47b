"""``orchlog post``: stdin lines → events, through the client's background sender."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import orjson

from .client import AuthError, Client, EventSender, OrchlogClientError


def _resolve_agent(url: str, token: str | None, agent: str) -> str:
    with Client(url, token=token) as client:
        matches = client.list_agents(name=agent, limit=1)
        if matches:
            return str(matches[0]["id"])
        if len(agent) == 36 and agent.count("-") == 4:
            return agent
    raise OrchlogClientError(f"no agent named {agent!r}; create it first (POST /api/v1/agents)", status=400)


def line_to_event(line: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """A JSON object line keeps its fields (kind and agent filled in); anything else is text."""
    text = line.rstrip("\n")
    if text.lstrip().startswith("{"):
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            event = None
        if isinstance(event, dict):
            event.setdefault("kind", defaults["kind"])
            if event["kind"] == "agent_log" and "agent_id" in defaults:
                event.setdefault("agent_id", defaults["agent_id"])
            return event
    if defaults["kind"] == "agent_log":
        return {
            "kind": "agent_log",
            "agent_id": defaults["agent_id"],
            "event_category": defaults["category"],
            "event_type": defaults["event_type"],
            "level": defaults["level"],
            "content": text,
        }
    return {"kind": "system_log", "level": defaults["level"], "message": text}


def run_post(
    stdin: TextIO,
    *,
    kind: str,
    agent: str | None,
    level: str,
    event_type: str,
    category: str,
    spool: str | None,
    url: str,
    token: str | None,
) -> int:
    defaults: dict[str, Any] = {
        "kind": "agent_log" if kind == "agent" else "system_log",
        "level": level,
        "event_type": event_type,
        "category": category,
    }
    try:
        if kind == "agent":
            if not agent:
                sys.stderr.write("orchlog post: --kind agent needs --agent NAME\n")
                return 2
            defaults["agent_id"] = _resolve_agent(url, token, agent)
    except AuthError as exc:
        sys.stderr.write(f"orchlog post: authentication refused: {exc}\n")
        return 3
    except OrchlogClientError as exc:
        sys.stderr.write(f"orchlog post: {exc}\n")
        return 2 if exc.status == 400 else 1
    started = time.monotonic()
    sender = EventSender(url, token=token, spool_path=spool, policy="block", block_timeout=60.0)
    count = 0
    try:
        for line in stdin:
            if not line.strip():
                continue
            sender.submit(line_to_event(line, defaults))
            count += 1
    except KeyboardInterrupt:
        sys.stderr.write("orchlog post: interrupted; sending what was read\n")
    done = sender.flush(timeout=60.0)
    sender.close(timeout=1.0)
    st = sender.stats
    took = time.monotonic() - started
    sys.stderr.write(
        f"orchlog post: {count} read, {st.sent} stored, {st.duplicates} duplicates, {st.rejected} rejected, "
        f"{st.dropped} dropped in {took:.1f}s\n"
    )
    if st.errors:
        sys.stderr.write(f"orchlog post: last error: {st.errors[-1]}\n")
    if not done:
        where = f"; they are kept in {spool}" if spool else ""
        sys.stderr.write(f"orchlog post: could not reach {url} to send everything ({st.last_error}){where}\n")
        return 1
    return 0 if not (st.rejected or st.dropped) else 1
