"""Shutdown (issue 3 §6): SIGTERM flushes every committed event to open streams, then closes them
with 1001 ("going away: resume elsewhere"), and the process exits 0 within a few seconds."""

from __future__ import annotations

import asyncio
import random
import signal
import time

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from helpers import Server, make_agents
from helpers.stream import KINDS, matching, mixed, open_ws, post, recv, seq_diff, until_live

EXIT_WITHIN = 8.0


async def read_to_close(ws: ClientConnection, within: float = 15) -> list[dict]:
    """Every sequenced frame until the server closes the socket."""
    events = []
    try:
        while True:
            frame = await recv(ws, within)
            if frame["type"] in KINDS:
                events.append(frame)
    except ConnectionClosed:
        return events


async def wait_exit(server: Server, within: float) -> tuple[int | None, float]:
    assert server.proc is not None
    start = time.monotonic()
    try:
        code = await asyncio.to_thread(server.proc.wait, within)
    except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: report it as "did not exit"
        return None, time.monotonic() - start
    return code, time.monotonic() - start


@pytest.mark.parametrize("path", ["/api/v1/stream", "/ws"])
async def test_sigterm_flushes_committed_events_then_closes_1001(
    server: Server, client: httpx.AsyncClient, path: str
) -> None:
    """A subscriber that is behind when SIGTERM arrives still gets every committed event, then 1001."""
    _, agents = await make_agents(client, 2)
    ws = await open_ws(server, {"after": 0}, path=path)
    if path == "/ws":
        assert (await recv(ws))["type"] == "connection_established"
    else:
        await until_live(ws)
    acked: list[int] = []
    for i in range(20):  # ~2,000 events the subscriber has not read yet
        acked += await post(client, mixed(agents, 100, random.Random(50 + i), f"s{i}-"))
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)

    events = await read_to_close(ws)
    seqs = [f["seq"] for f in events]
    closed = f"closed with {ws.close_code} {ws.close_reason!r}"
    assert seqs == acked, f"{closed}: {seq_diff(seqs, acked)}"
    assert ws.close_code == 1001, closed
    code, took = await wait_exit(server, EXIT_WITHIN)
    assert code == 0, f"exit code {code} after {took:.1f}s; log: {server.log_text()[-1500:]}"


async def test_sigterm_while_posting_loses_nothing_on_resume(
    server: Server, client: httpx.AsyncClient, db_path: object
) -> None:
    """Events keep arriving while the server stops: what the subscriber got is a gapless prefix of
    history, and resuming with after=<last seq> on a restarted server gives exactly the rest."""
    _, agents = await make_agents(client, 1)
    ws = await open_ws(server, {"after": 0})
    await until_live(ws)

    async def keep_posting() -> None:
        rng = random.Random(60)
        i = 0
        while True:
            try:
                r = await client.post("/api/v1/events", json=mixed(agents, 20, rng, f"k{i}-"))
            except httpx.HTTPError:
                return  # the server is gone
            if r.status_code != 201:
                return  # 503 while shutting down: a client would retry elsewhere
            i += 1

    posting = asyncio.create_task(keep_posting())
    first = await recv(ws)
    assert first["type"] in KINDS
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    events = [first, *await read_to_close(ws)]
    await asyncio.wait_for(posting, 20)
    code, _ = await wait_exit(server, EXIT_WITHIN)
    assert code == 0
    assert ws.close_code == 1001, f"closed with {ws.close_code} {ws.close_reason!r}"

    restarted = Server(server.db).start()
    try:
        async with httpx.AsyncClient(base_url=restarted.url, timeout=30) as c2:
            everything = [i["seq"] for i in await matching(c2)]
            seqs = [f["seq"] for f in events]
            assert seqs == everything[: len(seqs)], "what was streamed is a gapless prefix of history"
            async with await open_ws(restarted, {"after": seqs[-1]}) as ws2:
                _, rest, _ = await until_live(ws2)
            got = seqs + [f["seq"] for f in rest]
            assert got == everything, seq_diff(got, everything)
    finally:
        restarted.stop()
