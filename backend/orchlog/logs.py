"""Server logging: one line per event, as text or JSON, each carrying the request id.

The request id comes from the client's ``X-Request-ID`` (if sane) or is made up, is echoed in the
response, and rides a context variable so every log line written while serving that request
carries it. Tokens and tickets never reach these lines.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import re
import sys
import time

import orjson

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("orchlog_request_id", default="-")
_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


_PROCESS = os.urandom(4).hex()  # tells this process's ids from another replica's
_NUMBERS = itertools.count(1)


def new_request_id(offered: str | None) -> str:
    """The client's id if sane, else this process's prefix and a counter: unique per process and
    told apart across replicas, without a ``uuid4()`` (a getrandom syscall) on every request."""
    if offered and _SANE.match(offered):
        return offered
    return f"{_PROCESS}{next(_NUMBERS):08x}"


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key in ("method", "path", "status", "duration_ms", "client"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def should_log_access(status: int, duration_s: float, *, log_all: bool, slow_s: float) -> bool:
    """The access-log policy: every request with ``--access-log``; otherwise only errors (status
    >= 400, a 500 included) and requests slower than ``slow_s``, so a busy server's log stays
    about what needs a look (a demo made 5,335 lines in 15 minutes)."""
    return log_all or status >= 400 or duration_s >= slow_s


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
