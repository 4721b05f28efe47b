"""Python client for orchlog: HTTP calls, a resuming live follower, a background sender with an
optional durable spool, and a ``logging`` handler.

It imports nothing from the server, so agent processes can depend on it alone::

    from orchlog.client import Client, EventSender, OrchlogHandler

    with Client("http://127.0.0.1:8000") as c:
        c.post_system_logs([{"level": "INFO", "message": "hello"}])

    sender = EventSender("http://127.0.0.1:8000", spool_path="~/.orchlog/spool.db")
    sender.log_system("WARNING", "disk almost full")   # never blocks, never raises
    sender.close()                                       # flushes what it can

    async for event in AsyncClient(url).follow(after=0, kind="agent_log"):
        print(event["seq"], event["data"])

The package is split by job (each module says why it exists); every name is importable from
``orchlog.client`` as before:

- ``errors``: ``OrchlogClientError``, ``AuthError``;
- ``wire``: what every request shares (default URL, auth header, query encoding, error mapping);
- ``http``: ``Client`` and ``AsyncClient`` (one method per route);
- ``follow``: the resuming live follower behind ``AsyncClient.frames`` / ``follow``;
- ``sender`` and ``spool``: ``EventSender`` and its durable SQLite spool;
- ``handler``: ``OrchlogHandler``, the stdlib ``logging`` bridge.
"""

from __future__ import annotations

from .errors import AuthError, OrchlogClientError
from .handler import OrchlogHandler, level_name
from .http import AsyncClient, Client
from .sender import EventSender, SenderStats
from .spool import Policy
from .wire import DEFAULT_URL, Params, ws_url

__all__ = [
    "DEFAULT_URL",
    "AsyncClient",
    "AuthError",
    "Client",
    "EventSender",
    "OrchlogClientError",
    "OrchlogHandler",
    "Params",
    "Policy",
    "SenderStats",
    "level_name",
    "ws_url",
]
