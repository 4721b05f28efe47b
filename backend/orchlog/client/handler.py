"""``OrchlogHandler``: the stdlib ``logging`` bridge, so an application's existing log calls reach
orchlog through an ``EventSender`` without code changes.
"""

from __future__ import annotations

import logging
import traceback
from datetime import UTC, datetime
from typing import Any

import orjson

from .sender import EventSender

_LEVELS = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "taskName"}


def level_name(levelno: int) -> str:
    for number in sorted(_LEVELS, reverse=True):
        if levelno >= number:
            return _LEVELS[number]
    return "DEBUG"


class OrchlogHandler(logging.Handler):
    """stdlib ``logging`` → orchlog. System logs by default; agent logs when ``agent_id`` is set.

    ``extra={...}`` fields go into ``metadata`` (system) or ``payload`` (agent). Emitting never
    raises into the application and never blocks beyond the sender's ``block_timeout``.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        agent_id: str | None = None,
        event_type: str = "log",
        sender: EventSender | None = None,
        level: int = logging.NOTSET,
        shutdown_timeout: float = 2.0,
        **sender_options: Any,
    ) -> None:
        super().__init__(level)
        self.shutdown_timeout = shutdown_timeout
        self.agent_id = agent_id
        self.event_type = event_type
        self._own_sender = sender is None
        self.sender = sender or EventSender(url, **sender_options)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            extra = {k: _jsonable(v) for k, v in vars(record).items() if k not in _RECORD_FIELDS}
            extra.update({"logger": record.name, "line": record.lineno, "function": record.funcName})
            if record.exc_info:
                extra["exception"] = "".join(traceback.format_exception(*record.exc_info))[-8000:]
            level = level_name(record.levelno)
            timestamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            if self.agent_id:
                self.sender.submit(
                    {
                        "kind": "agent_log",
                        "agent_id": self.agent_id,
                        "event_category": "response",
                        "event_type": self.event_type,
                        "level": level,
                        "content": message,
                        "payload": extra,
                        "timestamp": timestamp,
                    }
                )
            else:
                self.sender.submit(
                    {
                        "kind": "system_log",
                        "level": level,
                        "message": message,
                        "file_path": record.pathname,
                        "metadata": extra,
                        "timestamp": timestamp,
                    }
                )
        except Exception:  # noqa: BLE001 - logging must never break the application
            self.handleError(record)

    def flush(self) -> None:
        self.sender.flush(timeout=self.shutdown_timeout)

    def close(self) -> None:
        """At interpreter exit (logging.shutdown) this waits at most ``shutdown_timeout`` for the
        server; what is not sent by then stays in the spool, if the sender has one."""
        try:
            if self._own_sender:
                self.sender.close(timeout=self.shutdown_timeout)
        finally:
            super().close()


def _jsonable(value: Any) -> Any:
    try:
        orjson.dumps(value)
        return value
    except TypeError:
        return repr(value)
