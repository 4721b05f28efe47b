"""Claude Code hook input (the JSON a command hook reads on stdin, or an HTTP hook POSTs) → an
orchlog agent log. Pure functions: no I/O, so the CLI and the HTTP endpoint share them.

Common fields: ``session_id``, ``transcript_path``, ``cwd``, ``hook_event_name``,
``permission_mode``; per event: ``tool_name``, ``tool_input``, ``tool_response``, ``tool_use_id``
(tool events), ``error`` (PostToolUseFailure), ``prompt`` (UserPromptSubmit), ``message``
(Notification), ``trigger`` (PreCompact), ``source`` (SessionStart), ``reason`` (SessionEnd).
"""

from __future__ import annotations

import uuid
from typing import Any

NAMESPACE = uuid.UUID("6b1e5f0e-3c1d-4c59-9d0e-0f6a1c2b7d10")
ORCHESTRATOR_ID = str(uuid.uuid5(NAMESPACE, "claude-code:orchestrator"))
EVENTS = (
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PermissionRequest",
    "UserPromptSubmit",
    "Notification",
    "Stop",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "PostCompact",
    "SessionStart",
    "SessionEnd",
)
TOOL_EVENTS = frozenset({"PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionRequest"})
_DETAIL_KEYS = ("command", "file_path", "notebook_path", "path", "pattern", "url", "query", "description", "prompt")


def agent_id_for(name: str) -> str:
    """A stable id per agent name, so every hook process finds the same agent without a lookup."""
    return str(uuid.uuid5(NAMESPACE, f"claude-code:agent:{name}"))


def agent_name(hook: dict[str, Any], explicit: str | None = None) -> str:
    if explicit:
        return explicit
    session = str(hook.get("session_id") or "")
    return f"claude-{session[:8]}" if session else "claude-code"


def _first_line(text: Any, limit: int = 200) -> str:
    line = str(text or "").strip().split("\n", 1)[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def tool_summary(tool: str, tool_input: Any) -> str:
    if isinstance(tool_input, dict):
        for key in _DETAIL_KEYS:
            if isinstance(tool_input.get(key), str) and tool_input[key]:
                return f"{tool}: {_first_line(tool_input[key])}"
        for value in tool_input.values():
            if isinstance(value, str) and value:
                return f"{tool}: {_first_line(value)}"
    return tool


def content_of(hook: dict[str, Any]) -> str:
    event = str(hook.get("hook_event_name") or "")
    if event in TOOL_EVENTS:
        text = tool_summary(str(hook.get("tool_name") or "tool"), hook.get("tool_input"))
        if event == "PostToolUseFailure" and hook.get("error"):
            text += f" failed: {_first_line(hook['error'])}"
        return text
    if event == "UserPromptSubmit":
        return _first_line(hook.get("prompt"))
    if event == "Notification":
        return _first_line(hook.get("message"))
    if event == "PreCompact":
        return f"compacting ({hook.get('trigger') or 'auto'})"
    if event == "SessionStart":
        return f"session started ({hook.get('source') or 'startup'})"
    if event == "SessionEnd":
        return f"session ended ({hook.get('reason') or 'exit'})"
    if event in ("Stop", "SubagentStop"):
        return "subagent stopped" if event == "SubagentStop" else "stopped"
    return event or "hook"


def level_of(hook: dict[str, Any]) -> str:
    event = hook.get("hook_event_name")
    if event == "PostToolUseFailure":
        return "ERROR"
    if event in ("Notification", "PermissionRequest"):
        return "WARNING"
    return "INFO"


def truncate(value: Any, limit: int, path: str = "", cut: list[str] | None = None) -> Any:
    """Long strings cut to ``limit`` characters (recursively); the cut paths are recorded."""
    if cut is None:
        cut = []
    if isinstance(value, str) and len(value) > limit:
        cut.append(path or "(root)")
        return value[:limit] + f"…[truncated {len(value) - limit} chars]"
    if isinstance(value, dict):
        return {k: truncate(v, limit, f"{path}.{k}" if path else str(k), cut) for k, v in value.items()}
    if isinstance(value, list):
        return [truncate(v, limit, f"{path}[{i}]", cut) for i, v in enumerate(value)]
    return value


def to_agent_log(hook: dict[str, Any], agent_id: str, *, max_field_chars: int = 8192) -> dict[str, Any]:
    """The agent log item for one hook input (``orchlog`` envelope key removed)."""
    envelope: dict[str, Any] = hook["orchlog"] if isinstance(hook.get("orchlog"), dict) else {}
    body = {k: v for k, v in hook.items() if k != "orchlog"}
    cut: list[str] = []
    payload = truncate(body, max_field_chars, "", cut)
    if cut:
        payload["_truncated"] = cut
    item: dict[str, Any] = {
        "agent_id": agent_id,
        "event_category": "hook",
        "event_type": str(body.get("hook_event_name") or "hook")[:200],
        "level": level_of(body),
        "content": content_of(body),
        "payload": payload,
    }
    if body.get("session_id"):
        item["session_id"] = str(body["session_id"])[:200]
    for key in ("id", "timestamp"):
        if envelope.get(key):
            item[key] = envelope[key]
    return item
