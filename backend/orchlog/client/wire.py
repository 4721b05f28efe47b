"""What every request of the client shares: the default URL, the auth header, query encoding,
the WebSocket URL and the mapping of an error reply to an exception.

Kept apart from the clients so the follower (``follow``) and the sender (``sender``) use the same
encoding without importing the client classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from .errors import AuthError, OrchlogClientError

DEFAULT_URL = "http://127.0.0.1:8000"
Params = Mapping[str, Any]
JSON_HEADERS = {"Content-Type": "application/json"}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    err = body.get("error", {}) if isinstance(body, dict) else {}
    message = err.get("message") if isinstance(err, dict) else None
    text = f"{response.status_code} {message or response.text[:200]}"
    cls = AuthError if response.status_code in (401, 403) else OrchlogClientError
    raise cls(text, status=response.status_code, code=err.get("code") if isinstance(err, dict) else None, body=body)


def query_params(params: Params) -> list[tuple[str, str | int | float | bool | None]]:
    """Filters as query parameters; lists become repeated parameters, None is dropped."""
    out: list[tuple[str, str | int | float | bool | None]] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple, set)):
            out.extend((key, str(v)) for v in value)
        else:
            out.append((key, str(value)))
    return out


def ws_url(base: str, path: str, params: Params) -> str:
    scheme = "wss" if base.startswith("https") else "ws"
    host = base.split("://", 1)[-1].rstrip("/")
    query = httpx.QueryParams(query_params(params))
    return f"{scheme}://{host}{path}" + (f"?{query}" if query else "")
