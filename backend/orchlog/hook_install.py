"""``orchlog hook install``: merge the orchlog hook into a Claude Code settings file.

The command it writes must run in Claude Code's environment, not the installer's shell: it names
the interpreter by absolute path (a venv's ``bin`` is usually not on Claude Code's PATH), runs the
stdlib-only ``orchlog.hook`` module (fast, see hook.py), bakes the server URL, and reads the token
from an environment variable, so no secret lands in a settings file that may be committed —
unless ``--token`` is given, and then the caller warns. Re-installing replaces every earlier
orchlog entry (any form: ``orchlog hook ...``, ``/path/python -m orchlog.hook ...``) instead of
posting each event twice; the user's other settings and hooks are kept as they are.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from .hook import DEFAULT_TOKEN_ENV, DEFAULT_URL
from .integrations.claude_code import EVENTS, TOOL_EVENTS


def hook_command(
    *,
    url: str,
    token_env: str | None = DEFAULT_TOKEN_ENV,
    token: str | None = None,
    agent: str | None = None,
    python: str | None = None,
) -> str:
    """The shell command Claude Code runs for every event (each part quoted for ``sh``)."""
    parts = [os.path.abspath(python or sys.executable), "-m", "orchlog.hook", "--url", url]
    if token:
        parts += ["--token", token]
    else:
        parts += ["--token-env", token_env or DEFAULT_TOKEN_ENV]
    if agent:
        parts += ["--agent", agent]
    return " ".join(shlex.quote(p) for p in parts)


def is_orchlog_command(command: Any) -> bool:
    """True for any command an orchlog install ever wrote."""
    if not isinstance(command, str):
        return False
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    for i, word in enumerate(words):
        after = words[i + 1] if i + 1 < len(words) else ""
        if os.path.basename(word) == "orchlog" and after == "hook":
            return True
        if word == "-m" and (after == "orchlog.hook" or (after == "orchlog" and words[i + 2 : i + 3] == ["hook"])):
            return True
    return False


def hooks_block(command: str) -> dict[str, list[dict[str, Any]]]:
    block: dict[str, list[dict[str, Any]]] = {}
    for event in EVENTS:
        entry: dict[str, Any] = {"hooks": [{"type": "command", "command": command, "timeout": 10}]}
        if event in TOOL_EVENTS:
            entry = {"matcher": "*", **entry}
        block[event] = [entry]
    return block


def _without_other_orchlog(entry: Any, command: str) -> Any:
    """The entry minus earlier orchlog commands (other than ``command``); None if nothing is left."""
    if not isinstance(entry, dict) or not isinstance(entry.get("hooks"), list):
        return entry
    kept = [
        h
        for h in entry["hooks"]
        if not (isinstance(h, dict) and is_orchlog_command(h.get("command")) and h.get("command") != command)
    ]
    if not kept:
        return None
    return {**entry, "hooks": kept}


def merge_settings(settings: dict[str, Any], command: str) -> dict[str, Any]:
    """Add ``command`` to every event, keeping every other key and hook untouched (idempotent)."""
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


def settings_path(scope: str, project_dir: str | None = None) -> Path:
    if scope == "user":
        return Path(os.path.expanduser("~")) / ".claude" / "settings.json"
    return Path(project_dir or os.getcwd()) / ".claude" / "settings.json"


def install(
    scope: str,
    *,
    agent: str | None = None,
    url: str | None = None,
    token_env: str | None = None,
    token: str | None = None,
    dry_run: bool = False,
    project_dir: str | None = None,
) -> str:
    """Write (or with ``dry_run`` return) the merged settings; returns the path written."""
    command = hook_command(
        url=url or os.environ.get("ORCHLOG_URL") or DEFAULT_URL, token_env=token_env, token=token, agent=agent
    )
    path = settings_path(scope, project_dir)
    current: dict[str, Any] = {}
    if path.exists():
        text = path.read_text(encoding="utf-8")
        try:
            current = json.loads(text) if text.strip() else {}
        except ValueError as exc:
            raise ValueError(f"{path} is not valid JSON ({exc}); fix it by hand first") from None
        if not isinstance(current, dict):
            raise ValueError(f"{path} does not hold a JSON object; fix it by hand first")
    merged = merge_settings(current, command)
    rendered = json.dumps(merged, indent=2) + "\n"
    if dry_run:
        return rendered
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.orchlog-tmp")
    tmp.write_text(rendered, encoding="utf-8")
    if token:
        os.chmod(tmp, 0o600)  # it holds a secret now
    os.replace(tmp, path)
    return str(path)
