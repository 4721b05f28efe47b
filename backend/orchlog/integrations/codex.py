"""OpenAI Codex's own OpenTelemetry log events (``[otel]`` in ``~/.codex/config.toml``) → agent
logs of the agent for the event's ``conversation.id`` (``codex-<conversation[:8]>``).

The documented events carry ``event.name`` with the full name (``codex.tool_result``) and the
common attributes ``conversation.id``, ``model``, ``app.version``, ``auth_mode``. Mapping:

=========================  ===========================================  ============================
event                      event_category / event_type                  notes
=========================  ===========================================  ============================
codex.conversation_starts  hook / SessionStart                          model, provider, policies
codex.user_prompt          hook / UserPromptSubmit                      text only if exported
                                                                        (``log_user_prompt = true``)
codex.tool_decision        hook / PreToolUse (denied/abort: WARNING)    decision and source
codex.tool_result          hook / PostToolUse, PostToolUseFailure       duration, arguments, output
codex.api_request          response / api_request (ERROR on failure)    status, duration, attempt
codex.sse_event            response / <event.kind> (DEBUG unless the    response.completed adds
                           response completed or failed)                ``input_token_count`` and
                                                                        ``output_token_count``
anything else              response / <name without codex.>
=========================  ===========================================  ============================

Codex exports no cost, so only tokens (and the model) reach the agent row.
"""

from __future__ import annotations

from typing import Any

from .agents import (
    Described,
    Mapped,
    Record,
    Source,
    Usage,
    build,
    count,
    flag,
    millis,
    sent_text,
    stable_id,
)
from .claude_code import _first_line

PREFIX = "codex."
SOURCE = Source("codex-otel", PREFIX, "codex", "call_id")


def recognise(rec: Record) -> str | None:
    """The short event name when ``rec`` is a Codex event, else None."""
    for value in (rec.attrs.get("event.name"), rec.record.get("eventName"), rec.body):
        if isinstance(value, str) and value.startswith(PREFIX):
            return value[len(PREFIX) :]
    return None


def session_of(rec: Record) -> str | None:
    session = rec.attrs.get("conversation.id") or rec.resource.get("conversation.id")
    return str(session) if session else None


def agent_name(conversation: str) -> str:
    return f"codex-{conversation[:8]}"


def describe(event: str, attrs: dict[str, Any], where: str) -> Described:
    model = str(attrs["model"]) if attrs.get("model") else None
    tool = str(attrs.get("tool_name") or "tool")
    if event == "conversation_starts":
        bits = [f"{k} {attrs[k]}" for k in ("provider_name", "sandbox_policy", "approval_policy") if attrs.get(k)]
        text = f"session started ({', '.join([model or 'model', *bits])})"
        return "hook", "SessionStart", "INFO", text, Usage(model=model)
    if event == "user_prompt":
        prompt = sent_text(attrs.get("prompt"))
        if prompt is not None:
            return "hook", "UserPromptSubmit", "INFO", prompt, Usage(model=model)
        text = f"prompt submitted ({attrs.get('prompt_length') or '?'} chars, text not exported)"
        return "hook", "UserPromptSubmit", "INFO", text, Usage(model=model)
    if event == "tool_decision":
        decision = str(attrs.get("decision") or "?")
        level = "WARNING" if decision in ("denied", "abort") else "INFO"
        source = attrs.get("source")
        text = f"{tool}: {decision}" + (f" ({source})" if source else "")
        return "hook", "PreToolUse", level, text, Usage(model=model)
    if event == "tool_result":
        arguments = attrs.get("arguments")
        text = f"{tool}: {_first_line(arguments)}" if arguments else tool
        text += millis(attrs.get("duration_ms"))
        if flag(attrs.get("success")) is False:
            return "hook", "PostToolUseFailure", "ERROR", text + " failed", Usage(model=model)
        return "hook", "PostToolUse", "INFO", text, Usage(model=model)
    if event == "api_request":
        status = attrs.get("http.response.status_code")
        error = attrs.get("error.message")
        failed = bool(error) or (isinstance(status, int) and status >= 400)
        text = f"{model or 'model'}: " + (f"HTTP {status}" if status else "request") + millis(attrs.get("duration_ms"))
        if attrs.get("attempt"):
            text += f", attempt {attrs['attempt']}"
        if error:
            text += f": {_first_line(error)}"
        return "response", "api_request", "ERROR" if failed else "INFO", text, Usage(model=model)
    if event == "sse_event":
        kind = str(attrs.get("event.kind") or "sse_event")
        if attrs.get("error.message"):
            return "response", kind[:200], "ERROR", f"{kind}: {_first_line(attrs['error.message'])}", Usage(model=model)
        if kind == "response.completed":
            tokens_in = count(attrs, "input_token_count", where)
            tokens_out = count(attrs, "output_token_count", where)
            text = f"{model or 'model'}: {tokens_in} in / {tokens_out} out tokens" + millis(attrs.get("duration_ms"))
            return "response", kind, "INFO", text, Usage(tokens_in, tokens_out, model=model)
        return "response", kind[:200], "DEBUG", kind, Usage(model=model)
    return "response", event[:200], "INFO", event, Usage(model=model)


def map_record(rec: Record, event: str, session: str) -> Mapped:
    """One recognised Codex record → its agent, agent log item and usage."""
    name = agent_name(session)
    described = describe(event, rec.attrs, rec.where)
    return build(rec, SOURCE, event, session, (stable_id("codex", "agent", name), name), described)
