"""The gate and the router see the same request: what reaches a handler is exactly what the
route table resolved, behind a ``root_path`` (a proxy prefix or a mount) too (review F1, F2)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from helpers import AppServer, bearer

READ = f"olg_r_{secrets.token_urlsafe(24)}"
INGEST = f"olg_i_{secrets.token_urlsafe(24)}"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    env = {"ORCHLOG_TOKENS": f"r:read:{READ},i:ingest:{INGEST}"}
    with AppServer(tmp_path_factory.mktemp("paths") / "orchlog.db", env=env) as srv:
        yield srv


def under_prefix(server: AppServer, prefix: str, method: str, path: str, token: str | None) -> int:
    """Send one request the way uvicorn --root-path does: scope path = prefix + path, root_path = prefix."""
    assert server.app is not None and server.portal is not None
    inner = server.app

    async def mounted(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "root_path": prefix}
        await inner(scope, receive, send)

    async def go() -> int:
        transport = httpx.ASGITransport(app=mounted)  # runs on the app's own loop (portal)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            r = await c.request(method, prefix + path, headers=bearer(token))
            return r.status_code

    return server.portal.call(go)


@pytest.mark.parametrize(
    ("method", "path", "token", "status"),
    [
        ("GET", "/api/v1/events", INGEST, 403),  # the route's scope applies under the prefix
        ("GET", "/api/v1/events", READ, 200),
        ("GET", "/api/v1/events", None, 401),
        ("GET", "/healthz", None, 200),  # open stays open
        ("POST", "/api/v1/events", READ, 403),
    ],
)
def test_scopes_hold_behind_a_root_path(app: AppServer, method: str, path: str, token: str | None, status: int) -> None:
    assert under_prefix(app, "/p", method, path, token) == status


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/ws", 426),  # a WebSocket route over plain HTTP (the router would have served /{name})
        ("GET", "/api/v1/stream", 426),
        ("GET", "/load_chat", 405),  # the route has POST only
        ("PUT", "/api/v1/events", 405),
        ("GET", "/api/v1/nope", 404),
    ],
)
async def test_what_the_table_does_not_declare_never_reaches_a_handler(
    app: AppServer, method: str, path: str, status: int
) -> None:
    async with app.client() as c:
        r = await c.request(method, path, headers=bearer(READ))
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"error"}


async def test_a_repeated_header_is_read_as_the_router_reads_it(app: AppServer) -> None:
    """The first Authorization counts (a second one cannot swap the identity the gate checked)."""
    async with app.client() as c:
        headers = [("Authorization", f"Bearer {INGEST}"), ("Authorization", f"Bearer {READ}")]
        r = await c.get("/api/v1/events", headers=headers)
    assert r.status_code == 403


async def test_a_dev_mode_ticket_stops_working_once_tokens_exist(tmp_path: Path) -> None:
    """A ticket issued while the server ran open carried every scope; once a token exists it must
    not open a stream (review F3)."""
    from orchlog.auth import TokenRecord, new_token, token_hash

    with AppServer(tmp_path / "orchlog.db") as srv:
        async with srv.client() as c:
            r = await c.post("/api/v1/stream/ticket")
            assert r.status_code == 201, r.text
            ticket = r.json()["ticket"]
            record = TokenRecord(
                str(uuid.uuid4()), "late", token_hash(new_token()), ("read",), (), "2026-01-01T00:00:00.000000Z"
            )
            assert srv.portal is not None
            srv.portal.call(srv.runtime.store.create_token, record)
            srv.portal.call(srv.runtime.refresh_tokens)
            async with c.stream("GET", "/api/v1/stream/sse", params={"ticket": ticket}) as answer:
                assert answer.status_code == 401
