"""The Claude Code command hook: ``python -m orchlog.hook`` (what ``orchlog hook install`` writes).

Claude Code runs a command hook synchronously around every tool call, so this module is the
whole hot path and imports only the standard library (no click, no pydantic, no httpx, nothing
from the server): it reads the hook JSON on stdin, stamps it with an id and a timestamp (so a
resend is acknowledged as a duplicate, never stored twice), posts it together with whatever an
earlier run left in the spool, and exits 0 whatever happens, printing nothing on stdout (Claude
Code reads a hook's stdout).

Outcomes are honest (``-v`` says which, on stderr):
- ``sent``: the server stored the batch (201); the spooled events it carried leave the spool.
- ``spooled``: the server could not be reached or refused in a way a retry can fix (401/403
  until the token is fixed, 404 until the URL is, 408/429/5xx): the event waits in the spool and
  goes out, in order, with the next hook run.
- ``dropped``: the server refused the event for good (400/413/415/422): keeping it would block
  nothing but would be resent forever, so it is removed with a message naming the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, TextIO

ENDPOINT = "/api/v1/hooks/claude-code"
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TOKEN_ENV = "ORCHLOG_TOKEN"
MAX_BATCH_ITEMS = 500  # spooled events sent along with a new one (the rest go next time)
MAX_SPOOL = 100_000  # beyond this the oldest spooled events are dropped (and said so)
PERMANENT = frozenset({400, 413, 415, 422})  # a resend of the same bytes can never succeed


def default_spool() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "orchlog", "hook-spool.db")


def now_ts() -> str:
    """The server's timestamp format (ISO-8601 UTC, microseconds, ``Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Reply(NamedTuple):
    """What the server said: an HTTP status (0 = unreachable) and a short reason."""

    status: int
    reason: str
    body: Any = None


def post(url: str, token: str | None, items: Sequence[dict[str, Any]], timeout: float) -> Reply:
    data = json.dumps(items, separators=(",", ":"), ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "orchlog-hook"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url.rstrip("/") + ENDPOINT, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, "stored", _json(response.read()))
    except urllib.error.HTTPError as exc:
        body = _json(exc.read())
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
        return Reply(exc.code, f"{exc.code} {message or exc.reason}", body)
    except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections, bad URLs
        reason = getattr(exc, "reason", None) or exc
        return Reply(0, f"cannot reach {url}: {reason}")


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


class Spool:
    """Events not yet accepted, oldest first, in a small SQLite file shared by concurrent hooks.

    Two hooks may send the same spooled event at once; that is safe because every event carries
    its id (the second copy is acked as a duplicate). The table is the one ``EventSender`` uses."""

    def __init__(self, path: str, timeout: float) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS spool (n INTEGER PRIMARY KEY AUTOINCREMENT, item TEXT NOT NULL)")

    def peek(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        rows = self.conn.execute("SELECT n, item FROM spool ORDER BY n LIMIT ?", (limit,)).fetchall()
        return [(n, json.loads(item)) for n, item in rows]

    def push(self, item: dict[str, Any]) -> tuple[int, int]:
        """Append; returns the new row's number and how many of the oldest events were dropped to
        stay under MAX_SPOOL."""
        cursor = self.conn.execute("INSERT INTO spool (item) VALUES (?)", (json.dumps(item, ensure_ascii=False),))
        excess = int(self.conn.execute("SELECT count(*) FROM spool").fetchone()[0]) - MAX_SPOOL
        if excess > 0:
            self.conn.execute("DELETE FROM spool WHERE n IN (SELECT n FROM spool ORDER BY n LIMIT ?)", (excess,))
        return int(cursor.lastrowid or 0), max(excess, 0)

    def remove(self, numbers: Sequence[int]) -> None:
        if numbers:
            marks = ",".join("?" * len(numbers))
            self.conn.execute(f"DELETE FROM spool WHERE n IN ({marks})", list(numbers))

    def close(self) -> None:
        self.conn.close()


class Delivery:
    """One hook run's attempt: send spooled + new events, sort each into sent / kept / dropped."""

    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        self.url, self.token = url, token
        self.deadline = time.monotonic() + timeout  # the whole run, however many posts it takes
        self.sent: list[int] = []  # positions in the batch the server accepted
        self.dropped: list[tuple[int, str]] = []  # (position, reason) refused for good
        self.kept: list[int] = []  # positions to keep (retry could succeed)
        self.retry_reason = ""

    def send(self, items: list[dict[str, Any]], positions: list[int]) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.kept += positions
            self.retry_reason = self.retry_reason or "out of time; the rest goes out with the next run"
            return
        reply = post(self.url, self.token, items, left)
        if 200 <= reply.status < 300:
            self.sent += positions
        elif reply.status == 422 and len(items) > 1 and (bad := _bad_indexes(reply.body, len(items))):
            self.dropped += [(positions[i], reply.reason) for i in sorted(bad)]
            rest = [i for i in range(len(items)) if i not in bad]
            if rest:
                self.send([items[i] for i in rest], [positions[i] for i in rest])
        elif reply.status in PERMANENT and len(items) > 1:
            # too big together, or a refusal that names no item: halve until the culprit is alone
            half = len(items) // 2
            self.send(items[:half], positions[:half])
            self.send(items[half:], positions[half:])
        elif reply.status in PERMANENT:
            self.dropped += [(p, reply.reason) for p in positions]
        else:
            self.kept += positions
            self.retry_reason = reply.reason


def _bad_indexes(body: Any, n: int) -> set[int]:
    """The item indexes a 422 names (``error.details[].index``); empty if it names none."""
    details = body.get("error", {}).get("details") if isinstance(body, dict) else None
    out = set()
    for detail in details or []:
        index = detail.get("index") if isinstance(detail, dict) else None
        if isinstance(index, int) and 0 <= index < n:
            out.add(index)
    return out


def run_hook(
    stdin: TextIO,
    *,
    url: str,
    token: str | None,
    agent: str | None,
    spool: str | None,
    wait_s: float,
    verbose: bool,
    stderr: TextIO | None = None,
) -> int:
    """Deliver one hook input; always returns 0 (a hook must never fail the agent's tool call)."""
    err = stderr or sys.stderr

    def say(text: str) -> None:
        if verbose:
            err.write(f"orchlog hook: {text}\n")

    try:
        raw = stdin.read()
        hook = json.loads(raw) if raw.strip() else None
    except ValueError:
        hook = None
    if not isinstance(hook, dict):
        say("stdin is not a JSON object; nothing sent")
        return 0
    try:
        _deliver(hook, url=url, token=token, agent=agent, spool=spool, wait_s=wait_s, say=say)
    except Exception as exc:  # noqa: BLE001 - never fail the agent; say what went wrong
        say(f"{type(exc).__name__}: {exc}")
    return 0


def _deliver(
    hook: dict[str, Any],
    *,
    url: str,
    token: str | None,
    agent: str | None,
    spool: str | None,
    wait_s: float,
    say: Any,
) -> None:
    envelope: dict[str, Any] = {"id": str(uuid.uuid4()), "timestamp": now_ts()}
    if agent:
        envelope["agent"] = agent
    hook["orchlog"] = envelope
    name = hook.get("hook_event_name") or "event"
    store: Spool | None = None
    try:  # spooled before the post: a run killed mid-way (Claude Code's hook timeout) loses nothing
        store = Spool(spool or os.environ.get("ORCHLOG_SPOOL") or default_spool(), timeout=wait_s)
        number, lost = store.push(hook)
        pending = store.peek(MAX_BATCH_ITEMS)  # oldest first; this event too unless the backlog is long
        if lost:
            say(f"spool full: dropped the {lost} oldest events")
    except (OSError, sqlite3.Error) as exc:
        say(f"spool unavailable ({exc}); sending without it")
        store, number, pending = None, 0, [(0, hook)]
    try:
        items = [item for _, item in pending]
        delivery = Delivery(url, token, wait_s)
        delivery.send(items, list(range(len(items))))
        if store is not None:
            store.remove([pending[p][0] for p in [*delivery.sent, *(p for p, _ in delivery.dropped)]])
        new = next((p for p, (n, _) in enumerate(pending) if n == number), None)  # this run's event
        for position, reason in delivery.dropped:
            spooled = items[position]
            kind = spooled.get("hook_event_name") if isinstance(spooled, dict) else None
            which = name if position == new else f"a spooled {kind or 'item'}"
            say(f"{which} dropped: the server refused it for good ({reason})")
        if new is None:
            say(f"{name} spooled behind {len(pending)} older events; it goes out with a later hook run")
        elif new in delivery.sent:
            carried = len(delivery.sent) - 1
            say(f"{name} sent" + (f" (with {carried} spooled)" if carried else ""))
        elif new in delivery.kept:
            if store is None:
                say(f"{name} lost: not accepted ({delivery.retry_reason}) and no spool to keep it")
            else:
                say(f"{name} spooled ({delivery.retry_reason}); it goes out with the next hook run")
    finally:
        if store is not None:
            store.close()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m orchlog.hook",
        description="Claude Code hook: record the hook JSON on stdin as an orchlog agent log. Always exits 0.",
    )
    parser.add_argument("--url", default=os.environ.get("ORCHLOG_URL") or DEFAULT_URL, help="Server URL.")
    parser.add_argument("--token", default=None, help="Bearer token (prefer --token-env: no secret in settings).")
    parser.add_argument(
        "--token-env", default=DEFAULT_TOKEN_ENV, help="Environment variable holding the token (ORCHLOG_TOKEN)."
    )
    parser.add_argument("--agent", default=os.environ.get("ORCHLOG_AGENT"), help="Agent name (claude-<session>).")
    parser.add_argument("--spool", default=None, help="Spool file (env ORCHLOG_SPOOL).")
    parser.add_argument("--wait", type=float, default=1.5, help="Longest wait for the server, seconds.")
    parser.add_argument("-v", "--verbose", action="store_true", help="Say what happened on stderr.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit:  # bad flags: argparse said so on stderr; still never fail the tool call
        return 0
    token = args.token or os.environ.get(args.token_env) or None
    return run_hook(
        sys.stdin,
        url=args.url,
        token=token,
        agent=args.agent,
        spool=args.spool,
        wait_s=args.wait,
        verbose=args.verbose,
    )


if __name__ == "__main__":
    sys.exit(main())
