"""``orchlog hook`` (a Claude Code command hook) and ``orchlog hook install``.

The hook must never slow or break the agent: it reads the hook JSON from stdin, hands it to a
sender with a durable spool, waits a bounded time for the server, and exits 0 whatever happens.
Events that could not be sent stay in the spool and go out, in order, with the next hook run.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import uuid
from pathlib import Path
from typing import Any, TextIO

from .client import EventSender
from .integrations.claude_code import EVENTS, TOOL_EVENTS
from .models import now_ts

ENDPOINT = "/api/v1/hooks/claude-code"


def default_spool() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "orchlog", "hook-spool.db")


def run_hook(
    stdin: TextIO,
    *,
    url: str,
    token: str | None,
    agent: str | None,
    spool: str | None,
    wait_s: float,
    verbose: bool,
) -> int:
    try:
        raw = stdin.read()
        hook = json.loads(raw) if raw.strip() else None
        if not isinstance(hook, dict):
            if verbose:
                sys.stderr.write("orchlog hook: stdin is not a JSON object; nothing sent\n")
            return 0
        hook["orchlog"] = {"id": str(uuid.uuid4()), "timestamp": now_ts(), **({"agent": agent} if agent else {})}
        sender = EventSender(
            url,
            token=token,
            spool_path=spool or os.environ.get("ORCHLOG_SPOOL") or default_spool(),
            endpoint=ENDPOINT,
            assign_ids=False,  # the id travels in the "orchlog" envelope, not in Claude's JSON
            flush_interval=0.01,
            max_backoff=wait_s,
            timeout=wait_s,
        )
        sender.submit(hook)
        sent = sender.flush(timeout=wait_s)
        sender.close(timeout=0.05)
        if verbose:
            state = "sent" if sent else f"spooled ({sender.stats.last_error or 'server unreachable'})"
            sys.stderr.write(f"orchlog hook: {hook.get('hook_event_name')} {state}\n")
    except Exception as exc:  # noqa: BLE001 - a hook must never fail the agent's tool call
        if verbose:
            sys.stderr.write(f"orchlog hook: {type(exc).__name__}: {exc}\n")
    return 0


def hooks_block(command: str) -> dict[str, list[dict[str, Any]]]:
    block: dict[str, list[dict[str, Any]]] = {}
    for event in EVENTS:
        entry: dict[str, Any] = {"hooks": [{"type": "command", "command": command, "timeout": 10}]}
        if event in TOOL_EVENTS:
            entry = {"matcher": "*", **entry}
        block[event] = [entry]
    return block


def merge_settings(settings: dict[str, Any], command: str) -> dict[str, Any]:
    """Add our command to every event, keeping every other key and hook untouched (idempotent)."""
    merged = dict(settings)
    hooks = dict(merged.get("hooks") or {})
    for event, entries in hooks_block(command).items():
        existing = [_without_other_orchlog(entry, command) for entry in hooks.get(event) or []]
        existing = [entry for entry in existing if entry is not None]
        already = any(
            isinstance(h, dict) and h.get("command") == command
            for entry in existing
            if isinstance(entry, dict)
            for h in entry.get("hooks") or []
        )
        if not already:
            existing.extend(entries)
        hooks[event] = existing
    merged["hooks"] = hooks
    return merged


def _without_other_orchlog(entry: Any, command: str) -> Any:
    """Drop an earlier `orchlog hook ...` command with other flags (re-install with a new
    --agent/--url replaces it instead of posting every event twice); keep everything else."""
    if not isinstance(entry, dict) or not isinstance(entry.get("hooks"), list):
        return entry
    kept = [
        h
        for h in entry["hooks"]
        if not (
            isinstance(h, dict) and str(h.get("command", "")).startswith("orchlog hook") and h.get("command") != command
        )
    ]
    if not kept:
        return None
    return {**entry, "hooks": kept}


def settings_path(scope: str, project_dir: str | None = None) -> Path:
    if scope == "user":
        return Path(os.path.expanduser("~")) / ".claude" / "settings.json"
    return Path(project_dir or os.getcwd()) / ".claude" / "settings.json"


def install(scope: str, *, agent: str | None, url: str | None, dry_run: bool, project_dir: str | None = None) -> str:
    parts = ["orchlog", "hook"]
    if agent:
        parts += ["--agent", agent]
    if url:
        parts += ["--url", url]
    command = " ".join(shlex.quote(p) for p in parts)
    path = settings_path(scope, project_dir)
    current: dict[str, Any] = {}
    if path.exists():
        text = path.read_text(encoding="utf-8")
        current = json.loads(text) if text.strip() else {}
        if not isinstance(current, dict):
            raise ValueError(f"{path} does not hold a JSON object; fix it by hand first")
    merged = merge_settings(current, command)
    rendered = json.dumps(merged, indent=2) + "\n"
    if dry_run:
        return rendered
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.orchlog-tmp")
    tmp.write_text(rendered, encoding="utf-8")
    os.replace(tmp, path)
    return str(path)
