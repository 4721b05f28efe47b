"""Claude Code's own OpenTelemetry log events (``CLAUDE_CODE_ENABLE_TELEMETRY=1``,
``OTEL_LOGS_EXPORTER=otlp``) → agent logs of the agent for the event's ``session.id``.

The documented events (Claude Code "Monitoring" docs): each record's body is the full name
(``claude_code.tool_result``), the ``event.name`` attribute the short one (``tool_result``);
standard attributes include ``session.id``, ``prompt.id``, ``event.sequence``; the resource says
``service.name=claude-code``. Mapping, chosen so the dashboard, ``tail`` and the original Vue
frontend show these like the hook events of the same session (and on the same agent: the agent
is ``claude-<session[:8]>`` with the id the hook endpoint uses):

====================  ========================================  =======================================
event                 event_category / event_type               content; usage
====================  ========================================  =======================================
user_prompt           hook / UserPromptSubmit                   the prompt if exported
                                                                (``OTEL_LOG_USER_PROMPTS=1``), else its
                                                                length only — redacted text is dropped
tool_decision         hook / PreToolUse (reject: WARNING)       ``Tool: accept (config)``
tool_result           hook / PostToolUse, or                    ``Tool: detail (12 ms)`` [+ error]
                      PostToolUseFailure (ERROR) when
                      ``success`` is false
api_request           response / api_request                    model, tokens, cost; adds
                                                                ``input_tokens``, ``output_tokens`` and
                                                                ``cost_usd`` to the agent row exactly
api_error             response / api_error (ERROR)              model, status, error
anything else         response / <short name>                   the name
====================  ========================================  =======================================
"""

from __future__ import annotations

from typing import Any

from . import claude_code
from .agents import (
    Described,
    Mapped,
    Record,
    RecordError,
    Source,
    Usage,
    build,
    count,
    flag,
    json_attr,
    millis,
    money,
    sent_text,
)

PREFIX = "claude_code."
SERVICE = "claude-code"
SOURCE = Source("claude-code-otel", PREFIX, SERVICE, "tool_use_id")
_PARAM_KEYS = {"bash_command": "command", "full_command": "command", "skill_name": "skill", "subagent_type": "agent"}


def recognise(rec: Record) -> str | None:
    """The short event name when ``rec`` is a Claude Code event, else None."""
    for value in (rec.body, rec.record.get("eventName"), rec.attrs.get("event.name")):
        if isinstance(value, str) and value.startswith(PREFIX):
            return value[len(PREFIX) :]
    name = rec.attrs.get("event.name")
    if rec.resource.get("service.name") == SERVICE and isinstance(name, str) and name:
        return name
    return None


def session_of(rec: Record) -> str | None:
    session = rec.attrs.get("session.id") or rec.resource.get("session.id")
    return str(session) if session else None


def _tool_detail(attrs: dict[str, Any]) -> str:
    tool = str(attrs.get("tool_name") or attrs.get("name") or "tool")
    params = json_attr(attrs.get("tool_parameters"))
    if not isinstance(params, dict):
        params = json_attr(attrs.get("tool_input"))
    if isinstance(params, dict):
        params = {_PARAM_KEYS.get(k, k): v for k, v in params.items()}
        return claude_code.tool_summary(tool, params)
    return tool


def describe(event: str, attrs: dict[str, Any], where: str) -> Described:
    """(event_category, event_type, level, content, usage) for one event."""
    model = str(attrs["model"]) if attrs.get("model") else None
    if event == "user_prompt":
        prompt = sent_text(attrs.get("prompt"))
        if prompt is not None:
            return "hook", "UserPromptSubmit", "INFO", prompt, Usage()
        text = f"prompt submitted ({attrs.get('prompt_length') or '?'} chars, text not exported)"
        return "hook", "UserPromptSubmit", "INFO", text, Usage()
    if event == "tool_decision":
        decision = str(attrs.get("decision") or attrs.get("decision_type") or "?")
        source = attrs.get("source") or attrs.get("decision_source")
        level = "WARNING" if decision == "reject" else "INFO"
        text = f"{_tool_detail(attrs)}: {decision}" + (f" ({source})" if source else "")
        return "hook", "PreToolUse", level, text, Usage()
    if event == "tool_result":
        ok = flag(attrs.get("success"))
        text = _tool_detail(attrs) + millis(attrs.get("duration_ms"))
        if ok is False:
            why = attrs.get("error") or attrs.get("error_type")
            return "hook", "PostToolUseFailure", "ERROR", text + (f" failed: {why}" if why else " failed"), Usage()
        return "hook", "PostToolUse", "INFO", text, Usage()
    if event == "api_request":
        cost = money(attrs.get("cost_usd"), "cost_usd", where)
        if not attrs.get("cost_usd") and attrs.get("cost_usd_micros") not in (None, ""):
            cost = money(count(attrs, "cost_usd_micros", where), "cost_usd_micros", where).scaleb(-6)
        tokens_in = count(attrs, "input_tokens", where)
        tokens_out = count(attrs, "output_tokens", where)
        cache = count(attrs, "cache_read_tokens", where) + count(attrs, "cache_creation_tokens", where)
        text = f"{model or 'model'}: {tokens_in} in / {tokens_out} out tokens"
        text += (f" (+{cache} cache)" if cache else "") + f", ${cost}" + millis(attrs.get("duration_ms"))
        return "response", "api_request", "INFO", text, Usage(tokens_in, tokens_out, cost, model)
    if event == "api_error":
        status = attrs.get("status_code")
        text = f"{model or 'model'}: " + (f"HTTP {status} " if status else "") + str(attrs.get("error") or "error")
        if attrs.get("attempt"):
            text += f" (attempt {attrs['attempt']})"
        return "response", "api_error", "ERROR", text, Usage(model=model)
    return "response", event[:200], "INFO", event, Usage(model=model)


def map_record(rec: Record, event: str, session: str) -> Mapped:
    """One recognised Claude Code record → its agent, agent log item and usage."""
    name = claude_code.agent_name({"session_id": session})
    described = describe(event, rec.attrs, rec.where)
    return build(rec, SOURCE, event, session, (claude_code.agent_id_for(name), name), described)


__all__ = ["RecordError", "map_record", "recognise", "session_of"]
