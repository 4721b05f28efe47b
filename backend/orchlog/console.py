"""Turning stream frames into terminal lines for ``orchlog tail`` (pure: no I/O here)."""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import click
import orjson

LEVEL_COLORS = {
    "DEBUG": "bright_black",
    "INFO": "green",
    "WARNING": "yellow",
    "ERROR": "red",
    "CRITICAL": "bright_red",
}
AGENT_COLORS = (
    "cyan",
    "magenta",
    "blue",
    "bright_cyan",
    "bright_magenta",
    "bright_blue",
    "bright_green",
    "white",
)


# Every C0 control (tab and newline included: newlines are rendered by the formatter itself),
# DEL, and every C1 control (U+0080..U+009F: 8-bit CSI/OSC); any client may post these, and raw
# they would move the cursor, set the window title or write the clipboard (OSC 52).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\t": "\\t", "\r": "\\r", "\n": "\\n", "\x1b": "\\e"}


def safe(text: str) -> str:
    """``text`` with every control character shown as an escape (``\\e[2J``, ``\\x07``, ``\\u009b``)."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"


def agent_color(name: str) -> str:
    """The same agent always gets the same colour, in every run (crc32, not Python's hash)."""
    return AGENT_COLORS[zlib.crc32(name.encode()) % len(AGENT_COLORS)]


@dataclass
class Formatter:
    output: str = "text"  # text | json | raw
    color: bool = False
    timestamps: bool = False
    grep: str | None = None
    agents: dict[str, str] = field(default_factory=dict)  # id -> name
    _grep_re: re.Pattern[str] | None = None

    def __post_init__(self) -> None:
        if self.grep:
            self._grep_re = re.compile(re.escape(self.grep), re.IGNORECASE)

    def style(self, text: str, **kw: Any) -> str:
        return click.style(text, **kw) if self.color else text

    def line(self, raw: str | bytes, frame: Mapping[str, Any]) -> str:
        """One event as one output line (multi-line content indented under it)."""
        if self.output == "json":
            return raw if isinstance(raw, str) else raw.decode()
        data = frame.get("data") or {}
        kind = frame.get("type")
        text = str((data.get("content") if kind == "agent_log" else data.get("message")) or "")
        if self.output == "raw":
            return text
        stamp = safe(str(data.get("timestamp") or ""))
        if not self.timestamps:
            stamp = _short_time(stamp)
        level = safe(str(data.get("level") or "INFO"))
        parts = [
            self.style(stamp, dim=True),
            self.style(f"{level:<8}", fg=LEVEL_COLORS.get(level, "white"), bold=level in ("ERROR", "CRITICAL")),
        ]
        if kind == "agent_log":
            agent_id = str(data.get("agent_id") or "")
            name = safe(self.agents.get(agent_id) or agent_id[:8])
            parts.append(self.style(name, fg=agent_color(name)))
            parts.append(self.style(safe(f"{data.get('event_category')}/{data.get('event_type')}"), dim=True))
        else:
            parts.append(self.style("system", fg="white", bold=True))
            if data.get("file_path"):
                parts.append(self.style(safe(str(data["file_path"])), dim=True))
        first, *rest = text.split("\n") if text else [""]
        out = " ".join(parts) + " " + self._highlight(safe(first))
        if rest:
            out += "".join("\n    " + self._highlight(safe(ln)) for ln in rest)
        return out

    def _highlight(self, text: str) -> str:
        if not self._grep_re or not self.color:
            return text
        return self._grep_re.sub(lambda m: click.style(m.group(0), fg="black", bg="yellow"), text)

    def notice(self, text: str, *, warning: bool = False) -> str:
        text = safe(text)
        if warning:
            return self.style(f"orchlog: {text}", fg="yellow", bold=True)
        return self.style(f"orchlog: {text}", dim=True)


def _short_time(stamp: str) -> str:
    """'2026-11-26T16:32:41.344457Z' → local '16:32:41.344'."""
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return stamp
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def parse_frame(raw: str | bytes) -> dict[str, Any]:
    frame: dict[str, Any] = orjson.loads(raw)
    return frame
