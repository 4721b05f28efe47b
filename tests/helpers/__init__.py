"""The one set of test helpers, imported by every layer (never copied into a test file).

- ``server``: real ``orchlog serve`` subprocesses (``Server``, ``TokenServer``), ``free_port``, the CLI;
- ``inproc``: the real app in-process (``AppServer``) for the api layer;
- ``api``: client-side helpers that work against either (``make_agents``, ``history``, ``head_seq``, ...);
- ``wait``: ``wait_until``, the only way a test waits.
"""

from .api import (
    agent_event,
    assert_error,
    bearer,
    head_seq,
    history,
    is_number,
    make_agents,
    make_agents_sync,
    system_logs,
)
from .inproc import AppServer, start_app
from .server import (
    REPO,
    Gated,
    Server,
    TokenServer,
    clean_env,
    create_token,
    free_port,
    gated_server,
    orchlog_cli,
    role_tokens,
    start_server,
)
from .wait import wait_until

__all__ = [
    "REPO",
    "AppServer",
    "Gated",
    "Server",
    "TokenServer",
    "agent_event",
    "assert_error",
    "bearer",
    "clean_env",
    "create_token",
    "free_port",
    "gated_server",
    "head_seq",
    "history",
    "is_number",
    "make_agents",
    "make_agents_sync",
    "orchlog_cli",
    "role_tokens",
    "start_app",
    "start_server",
    "system_logs",
    "wait_until",
]
