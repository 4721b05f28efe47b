"""``orchlog post``: stdin lines → events, through the client's background sender.

Never quiet about loss: an unreachable server is reported within about 2 s (with the fix), a
line that looks like JSON but is not is warned about (``--strict`` refuses it), and the summary
counts every event read as stored, duplicate, rejected, dropped or kept in the spool, so the
numbers add up. Exit codes: 0 all stored, 1 not all stored, 2 bad usage or input, 3 auth refused.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

import httpx
import orjson

from .agentref import AgentRefError, as_uuid, pick_agent
from .client import AuthError, Client, EventSender, OrchlogClientError

EXIT_OK, EXIT_LOSS, EXIT_USAGE, EXIT_AUTH = 0, 1, 2, 3
PROBE_TIMEOUT_S = 2.0
MAX_WARNINGS = 10


class BadLine(ValueError):
    """A line that starts like a JSON object but does not parse as one."""


def _resolve_agent(client: Client, agent: str) -> str:
    named = [] if as_uuid(agent) else client.list_agents(name=agent, limit=100)
    known = [] if named else [a["name"] for a in client.list_agents(limit=1000)]
    return pick_agent(agent, named, known)


def line_to_event(line: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """A JSON object line keeps its fields (kind and agent filled in); other lines are text.
    Raises ``BadLine`` for a line that starts with ``{`` but is not a JSON object."""
    text = line.rstrip("\n")
    if text.lstrip().startswith("{"):
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise BadLine(str(exc)) from None
        if not isinstance(event, dict):  # pragma: no cover - a '{' line is an object or invalid
            raise BadLine("not a JSON object")
        event.setdefault("kind", defaults["kind"])
        if event["kind"] in ("agent", "system"):
            event["kind"] += "_log"
        if event["kind"] == "agent_log" and "agent_id" in defaults:
            event.setdefault("agent_id", defaults["agent_id"])
        return event
    return text_event(text, defaults)


def text_event(text: str, defaults: dict[str, Any]) -> dict[str, Any]:
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


@dataclass
class PostOptions:
    kind: str
    agent: str | None
    level: str
    event_type: str
    category: str
    spool: str | None
    url: str
    token: str | None
    strict: bool = False
    wait_s: float = 10.0


def probe(url: str) -> str | None:
    """None if the server answers, else why not (within ``PROBE_TIMEOUT_S``)."""
    try:
        httpx.get(url.rstrip("/") + "/healthz", timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None


def run_post(stdin: TextIO, options: PostOptions, err: TextIO = sys.stderr) -> int:
    o = options

    def say(text: str) -> None:
        err.write(f"orchlog post: {text}\n")
        err.flush()

    kind = "agent_log" if o.kind in ("agent", "agent_log") else "system_log"
    defaults: dict[str, Any] = {"kind": kind, "level": o.level, "event_type": o.event_type, "category": o.category}
    down = probe(o.url)
    if down is not None:
        say(f"cannot reach the server at {o.url} ({down}); is `orchlog serve` running? (--url / ORCHLOG_URL)")
        if not o.spool:
            say("events read now are dropped; pass --spool FILE to keep them until the server is back")
            count = sum(1 for line in stdin if line.strip())
            say(f"{count} read, 0 stored, {count} dropped")
            return EXIT_LOSS
    if kind == "agent_log":
        if not o.agent:
            say("--kind agent needs --agent NAME or ID")
            return EXIT_USAGE
        if down is not None and not as_uuid(o.agent):
            say("the server is down, so --agent NAME cannot be looked up; pass --agent ID")
            return EXIT_USAGE
        try:
            with Client(o.url, token=o.token) as client:
                defaults["agent_id"] = as_uuid(o.agent) or _resolve_agent(client, o.agent)
        except AuthError as exc:
            say(f"authentication refused: {exc}. Pass --token or set ORCHLOG_TOKEN (a token with the ingest scope)")
            return EXIT_AUTH
        except AgentRefError as exc:
            say(str(exc))
            return EXIT_USAGE
        except OrchlogClientError as exc:
            say(str(exc))
            return EXIT_LOSS
    return _send_all(stdin, o, defaults, say)


def _send_all(stdin: TextIO, o: PostOptions, defaults: dict[str, Any], say: Any) -> int:
    started = time.monotonic()
    sender = EventSender(o.url, token=o.token, spool_path=o.spool, policy="block", block_timeout=60.0)
    count = bad = 0
    code = EXIT_OK
    try:
        for number, line in enumerate(stdin, 1):
            if not line.strip():
                continue
            try:
                event = line_to_event(line, defaults)
            except BadLine as exc:
                bad += 1
                if o.strict:
                    say(f"line {number} is not valid JSON ({exc}); refused (--strict). Nothing after it was read")
                    code = EXIT_USAGE
                    break
                if bad <= MAX_WARNINGS:
                    say(f"warning: line {number} looks like JSON but is not ({exc}); posted as plain text")
                event = text_event(line.rstrip("\n"), defaults)
            sender.submit(event)
            count += 1
    except KeyboardInterrupt:
        say("interrupted; sending what was read")
    if bad > MAX_WARNINGS:
        say(f"warning: {bad} lines in all were not valid JSON and were posted as plain text (--strict refuses them)")
    done = _flush(sender, o, say)
    sender.close(timeout=0.5)
    st = sender.stats
    unsent = max(0, count - st.sent - st.duplicates - st.rejected - st.dropped)
    kept = unsent if o.spool else 0
    dropped = st.dropped + (0 if o.spool else unsent)
    kept_text = f", {kept} kept in the spool {o.spool}" if kept else ""
    say(
        f"{count} read, {st.sent} stored, {st.duplicates} duplicates, {st.rejected} rejected, "
        f"{dropped} dropped{kept_text} in {time.monotonic() - started:.1f}s"
    )
    if st.refused_status in (401, 403):
        say(
            f"authentication refused ({st.refused_status}): {st.last_error}. "
            "Pass --token or set ORCHLOG_TOKEN (a token with the ingest scope)"
        )
        return EXIT_AUTH
    if st.errors:
        say(f"last error: {st.errors[-1]}")
    if not done:
        fix = (
            f"they go out with the next `orchlog post --spool {o.spool}`"
            if o.spool
            else "pass --spool FILE to keep them"
        )
        say(f"could not reach {o.url} to send everything ({st.last_error}); {fix}")
        return code or EXIT_LOSS
    return code or (EXIT_LOSS if st.rejected or dropped else EXIT_OK)


def _flush(sender: EventSender, o: PostOptions, say: Any) -> bool:
    """Wait for the sender, at most ``wait_s``; say so (once) when the server stops answering."""
    deadline = time.monotonic() + o.wait_s
    warned = False
    while True:
        left = deadline - time.monotonic()
        if sender.flush(timeout=max(0.0, min(PROBE_TIMEOUT_S, left))):
            return True
        if time.monotonic() >= deadline:
            return False
        if not warned and sender.stats.last_error.startswith("cannot reach"):
            warned = True
            say(f"{sender.stats.last_error}; retrying for up to {max(0, int(left))}s more (--wait), Ctrl-C to stop")
