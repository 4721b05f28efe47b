"""Which browser pages may talk to this server: the ``Host`` and ``Origin`` rules.

Pure functions (no web framework), applied by the gate in ``api/gate.py``:

- streams (WebSocket, EventSource) and every state-changing request from a browser carry an
  ``Origin``; it must be the same origin, loopback, or listed in ``ORCHLOG_ALLOWED_ORIGINS``;
- with no tokens (dev mode) the ``Host`` must be loopback, the bind address or the host of an
  allowed origin, so a DNS-rebinding page cannot read the API under its own name (what Jupyter
  and the Vite dev server do).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[^:@\[\]\s/]+)(?::\d{1,5})?")
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
# the orchestrator_3_stream frontend runs on another local port: loopback origins are allowed (CORS too)
LOOPBACK_ORIGIN_REGEX = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?"


def host_allowed(host: str | None, allowed: frozenset[str]) -> bool:
    """Is ``Host`` (``name`` or ``name:port``) loopback or listed ('*' allows any)?

    Checked while the server runs without tokens: a DNS-rebinding page reaches us under its own
    host name, so a name we do not know means a browser was pointed at us by someone else."""
    if not host:
        return False
    if "*" in allowed:
        return True
    parsed = _HOST.fullmatch(host.lower())
    if parsed is None:  # userinfo, spaces, a port that is not a number: not a Host a browser sends
        return False
    name = parsed.group(1)
    return name in LOOPBACK_HOSTS or name in allowed


def allowed_hosts(origins: frozenset[str], bind_host: str) -> frozenset[str]:
    """Host names served in dev mode besides loopback: those of the allowed origins, and the bind
    address when it is a specific one (``0.0.0.0`` is not a name anybody browses to)."""
    names = {"*"} if "*" in origins else {(urlsplit(o).hostname or "").lower() for o in origins}
    if bind_host not in ("", "0.0.0.0", "::"):
        names.add(bind_host.lower())
    return frozenset(n for n in names if n)


def origin_allowed(origin: str | None, host: str | None, allowed: frozenset[str]) -> bool:
    """No Origin (not a browser), same origin, loopback, or listed ('*' allows any)."""
    if not origin or origin == "null":
        return origin is None
    origin = origin.strip().lower()
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or "@" in parts.netloc or "," in origin or parts.path not in ("", "/"):
        return False  # an Origin is scheme://host[:port] and nothing else
    if "*" in allowed or origin.rstrip("/") in allowed:
        return True
    if (parts.hostname or "") in LOOPBACK_HOSTS:
        return True
    return bool(host) and parts.netloc == (host or "").lower()
