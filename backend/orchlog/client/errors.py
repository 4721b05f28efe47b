"""The client's two exceptions, in a module of their own so every part of the client (HTTP calls,
the follower, the sender) raises the same types without importing each other."""

from __future__ import annotations

from typing import Any


class OrchlogClientError(Exception):
    """The server refused a request (4xx/5xx) or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.body = body


class AuthError(OrchlogClientError):
    """No token, or a token the server refused (401/403, WebSocket close 4401/4403)."""
