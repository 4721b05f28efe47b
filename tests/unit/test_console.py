"""Terminal lines for `orchlog tail` (orchlog.console), pure: text, json and raw output, colours
only when asked, --grep highlighting, agent names and stable agent colours."""

from __future__ import annotations

import click
import orjson

from orchlog.console import AGENT_COLORS, Formatter, agent_color, parse_frame

AGENT = "0b4e3f2a-1111-4000-8000-000000000000"
AGENT_FRAME = {
    "type": "agent_log",
    "seq": 7,
    "data": {
        "agent_id": AGENT,
        "event_category": "hook",
        "event_type": "PreToolUse",
        "level": "ERROR",
        "content": "Bash: make\nline two\nline three",
        "timestamp": "2026-11-26T16:32:41.344457Z",
    },
}
SYSTEM_FRAME = {
    "type": "system_log",
    "seq": 8,
    "data": {"level": "INFO", "message": "started", "file_path": "/app/x.py", "timestamp": "bad time"},
}


def line(frame: dict, **kw: object) -> str:
    return Formatter(**kw).line(orjson.dumps(frame), frame)  # type: ignore[arg-type]


def test_agent_line_has_time_level_name_category_and_indented_continuation() -> None:
    out = line(AGENT_FRAME, timestamps=True, agents={AGENT: "builder"})
    first, *rest = out.split("\n")
    assert first == "2026-11-26T16:32:41.344457Z ERROR    builder hook/PreToolUse Bash: make"
    assert rest == ["    line two", "    line three"]


def test_unknown_agents_show_a_short_id_and_times_are_short_by_default() -> None:
    out = line(AGENT_FRAME)
    assert f" {AGENT[:8]} hook/PreToolUse " in out
    stamp = out.split(" ")[0]
    assert len(stamp) == len("16:32:41.344") and stamp.endswith(".344")


def test_system_line_and_an_unparsable_time_kept_as_is() -> None:
    assert line(SYSTEM_FRAME) == "bad time INFO     system /app/x.py started"


def test_json_output_is_the_frame_verbatim_and_raw_is_the_text() -> None:
    raw = orjson.dumps(AGENT_FRAME)
    assert Formatter(output="json").line(raw, AGENT_FRAME) == raw.decode()
    assert Formatter(output="json").line(raw.decode(), AGENT_FRAME) == raw.decode()
    assert line(AGENT_FRAME, output="raw") == AGENT_FRAME["data"]["content"]  # type: ignore[index]


def test_colour_only_when_asked_and_grep_highlights_case_insensitively() -> None:
    plain = line(AGENT_FRAME, grep="make")
    assert "\x1b[" not in plain
    coloured = line(AGENT_FRAME, color=True, grep="MAKE")
    assert click.style("make", fg="black", bg="yellow") in coloured
    assert click.style("ERROR   ", fg="red", bold=True) in coloured


def test_agent_colours_are_stable_across_runs() -> None:
    assert agent_color("builder") == agent_color("builder") in AGENT_COLORS
    assert len({agent_color(f"agent-{i}") for i in range(50)}) > 1


def test_notices_and_frames() -> None:
    assert Formatter().notice("reconnecting") == "orchlog: reconnecting"
    assert "\x1b[" in Formatter(color=True).notice("gap", warning=True)
    assert parse_frame(b'{"type": "live", "seq": 3}') == {"type": "live", "seq": 3}
