"""Revocation and bound tokens on a real server with tokens (issue 16, "revocation and auth edges").

- a revoked token's open streams (WebSocket, SSE, compat ``/ws``) end within 2 s (WS close 4401);
- a token bound to agents sees only the orchestrators of its agents, no ``/get_headers``, no ``/metrics``;
- a stream ticket is spent on its first presentation, even when refused for its Origin, and never
  appears in the server log (uvicorn's own WebSocket line included).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from helpers import TokenServer, bearer, create_token, orchlog_cli, wait_until

A, B = str(uuid.uuid4()), str(uuid.uuid4())
REVOKE_WITHIN_S = 2.0


@dataclass
class Ctx:
    db: Path
    server: TokenServer
    admin: str
    bound: str
    mine: str  # the orchestrator of agent A
    other: str  # another orchestrator


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctx]:
    db = tmp_path_factory.mktemp("revocation") / "orchlog.db"
    admin = create_token(db, "boss", "admin")
    bound = create_token(db, "a-reader", "read", agents=(A,))
    server = TokenServer(db, env={"ORCHLOG_HEARTBEAT_S": "30"})
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers=bearer(admin), timeout=30) as c:
            mine = c.post("/api/v1/orchestrator-agents", json={"system_prompt": "mine"}).json()["id"]
            other = c.post("/api/v1/orchestrator-agents", json={"system_prompt": "secret"}).json()["id"]
            for ident, orch, name in ((A, mine, "a"), (B, other, "b")):
                agent = {"id": ident, "orchestrator_agent_id": orch, "name": name, "model": "m"}
                r = c.post("/api/v1/agents", json=agent)
                assert r.status_code == 201, r.text
        yield Ctx(db, server, admin, bound, mine, other)
    finally:
        server.stop()


def revoke(db: Path, name: str) -> None:
    done = orchlog_cli("token", "revoke", name, "--db", str(db))
    assert done.returncode == 0, done.stderr


async def test_revoked_tokens_streams_close_within_2s(ctx: Ctx) -> None:
    secret = create_token(ctx.db, "soon-gone", "read")
    headers = bearer(secret)
    async with httpx.AsyncClient(base_url=ctx.server.url, headers=headers, timeout=30) as c:

        async def known() -> bool:
            return (await c.get("/api/v1/events", params={"limit": 1})).status_code == 200

        await wait_until(known, 10, "the server to load the new token")
    ws_native = await connect(f"{ctx.server.ws}/api/v1/stream", additional_headers=headers, open_timeout=10)
    ws_compat = await connect(f"{ctx.server.ws}/ws", additional_headers=headers, open_timeout=10)
    sse_lines: list[str] = []
    async with httpx.AsyncClient(base_url=ctx.server.url, headers=headers, timeout=30) as c:

        async def read_sse() -> None:
            async with c.stream("GET", "/api/v1/stream/sse") as r:
                assert r.status_code == 200, await r.aread()
                async for line in r.aiter_lines():
                    sse_lines.append(line)

        sse = asyncio.create_task(read_sse())
        try:
            assert (await asyncio.wait_for(ws_native.recv(), 10)).startswith('{"type":"hello"')
            await asyncio.wait_for(ws_compat.recv(), 10)  # connection_established
            deadline = time.monotonic() + 10
            while not any(line.startswith("event: hello") for line in sse_lines):
                assert time.monotonic() < deadline, sse_lines
                await asyncio.sleep(0.02)
            revoke(ctx.db, "soon-gone")
            revoked_at = time.monotonic()

            async def closed_code(ws: object) -> int | None:
                try:
                    while True:
                        await ws.recv()  # type: ignore[attr-defined]
                except ConnectionClosed as exc:
                    return exc.rcvd.code if exc.rcvd else None

            codes = await asyncio.wait_for(
                asyncio.gather(closed_code(ws_native), closed_code(ws_compat)), REVOKE_WITHIN_S + 1
            )
            assert codes == [4401, 4401]
            await asyncio.wait_for(sse, REVOKE_WITHIN_S + 1)
            took = time.monotonic() - revoked_at
            assert took < REVOKE_WITHIN_S + 0.5, f"streams closed {took:.2f}s after the revocation"
            assert "event: error" in sse_lines, sse_lines[-5:]
        finally:
            sse.cancel()
            await ws_native.close()
            await ws_compat.close()
    # and the token is refused from now on
    async with httpx.AsyncClient(base_url=ctx.server.url, headers=headers, timeout=30) as c:
        assert (await c.get("/api/v1/events")).status_code == 401


def test_bound_token_sees_only_its_orchestrators(ctx: Ctx) -> None:
    with httpx.Client(base_url=ctx.server.url, headers=bearer(ctx.bound), timeout=30) as c:
        listed = c.get("/api/v1/orchestrator-agents").json()["items"]
        assert [o["id"] for o in listed] == [ctx.mine]
        assert c.get(f"/api/v1/orchestrator-agents/{ctx.mine}").status_code == 200
        assert c.get(f"/api/v1/orchestrator-agents/{ctx.other}").status_code == 404
        r = c.get("/get_orchestrator")
        assert r.status_code == 200 and r.json()["orchestrator"]["id"] == ctx.mine, r.text
        assert "secret" not in r.text


def test_bound_token_gets_no_server_wide_data(ctx: Ctx) -> None:
    with httpx.Client(base_url=ctx.server.url, timeout=30) as c:
        for path in ("/get_headers", "/metrics"):
            assert c.get(path, headers=bearer(ctx.bound)).status_code == 403, path
            assert c.get(path, headers=bearer(ctx.admin)).status_code == 200, path


async def new_ticket(ctx: Ctx) -> str:
    async with httpx.AsyncClient(base_url=ctx.server.url, headers=bearer(ctx.admin), timeout=30) as c:
        r = await c.post("/api/v1/stream/ticket")
        assert r.status_code == 201, r.text
        return str(r.json()["ticket"])


async def test_ticket_refused_for_its_origin_is_spent(ctx: Ctx) -> None:
    ticket = await new_ticket(ctx)
    url = f"{ctx.server.ws}/api/v1/stream?ticket={ticket}"
    async with connect(url, origin="https://evil.example", open_timeout=10) as ws:  # type: ignore[arg-type]
        with pytest.raises(ConnectionClosed) as first:
            await asyncio.wait_for(ws.recv(), 10)
    assert first.value.rcvd is not None and first.value.rcvd.code == 1008
    try:
        async with connect(url, open_timeout=10) as ws:
            with pytest.raises(ConnectionClosed) as second:
                await asyncio.wait_for(ws.recv(), 10)
        assert second.value.rcvd is not None and second.value.rcvd.code == 4401, "the ticket worked a second time"
    except InvalidStatus as exc:
        assert exc.response.status_code in (401, 403)


async def test_ticket_never_in_the_log(ctx: Ctx) -> None:
    ticket = await new_ticket(ctx)
    async with connect(f"{ctx.server.ws}/api/v1/stream?ticket={ticket}", open_timeout=10) as ws:
        assert (await asyncio.wait_for(ws.recv(), 10)).startswith('{"type":"hello"')
    ticket2 = await new_ticket(ctx)
    async with (
        httpx.AsyncClient(base_url=ctx.server.url, timeout=30) as c,
        c.stream("GET", "/api/v1/stream/sse", params={"ticket": ticket2}) as r,
    ):
        assert r.status_code == 200
    await wait_until(lambda: "[accepted]" in ctx.server.log_text(), 5, "uvicorn's WebSocket line")
    log = ctx.server.log_text()
    assert "ticket=[redacted]" in log
    assert ticket not in log and ticket2 not in log
