"""The gate on real sockets: WebSocket handshakes to every declared stream route, and to paths
the table does not declare, need a token (the HTTP matrix is tests/api/test_gate.py, in-process)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from helpers import Gated, Server, TokenServer, bearer, gated_server
from orchlog.api.routes import ROUTES

BAD = "olg_" + "x" * 43


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gated[Server]]:
    with gated_server(TokenServer, tmp_path_factory.mktemp("gate")) as each:
        yield each


@pytest.mark.parametrize("path", [r.path for r in ROUTES if any(op.method == "WEBSOCKET" for op in r.operations)])
async def test_websockets_need_a_token(gated: Gated[Server], path: str) -> None:
    url = gated.server.ws + path
    for headers in ({}, bearer(BAD)):
        with pytest.raises((ConnectionClosed, InvalidStatus)) as caught:
            async with connect(url, additional_headers=headers, open_timeout=10) as ws:
                await ws.recv()
        if isinstance(caught.value, ConnectionClosed):
            assert caught.value.rcvd is not None and caught.value.rcvd.code == 4401
    async with connect(url, additional_headers=bearer(gated.tokens["read"]), open_timeout=10) as ws:
        assert await ws.recv()


def test_websocket_paths_that_are_not_routes_are_refused(gated: Gated[Server]) -> None:
    """A WebSocket to a path the table does not declare never reaches a handler without a token."""
    import asyncio

    async def attempt() -> int | None:
        try:
            async with connect(gated.server.ws + "/api/v1/streamz", open_timeout=10) as ws:
                await ws.recv()
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None
        except InvalidStatus as exc:
            return exc.response.status_code
        return None

    assert asyncio.run(attempt()) == 4401
