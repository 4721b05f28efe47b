"""SIGTERM during a long replay (issue 16): the stream ends with 1001 ("going away: resume"), not
uvicorn's 1012, and what the client got is a gapless prefix it can resume from."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from websockets.exceptions import ConnectionClosed

from helpers import Server
from helpers.stream import open_ws
from orchlog.bench.prefill import prefill

N = 200_000  # ~80 MB of frames: more than every socket buffer between server and client holds


async def test_sigterm_during_a_long_replay_closes_1001(tmp_path: Path) -> None:
    db = tmp_path / "orchlog.db"
    prefill(db, N)
    # a short flush window: replay is fast enough now (issue 21) to send all 200k in the default 3 s
    server = Server(db, env={"ORCHLOG_SHUTDOWN_FLUSH_S": "0.5"}).start()
    try:
        ws = await open_ws(server, {"after": 0}, max_size=2**20)
        seqs: list[int] = []
        code = None
        signalled = 0.0
        try:
            while True:
                raw = await asyncio.wait_for(ws.recv(), 15)
                if '"seq"' in raw and '"type":"agent_log"' in raw:
                    seqs.append(len(seqs) + 1)
                if len(seqs) == 200 and not signalled:
                    assert server.proc is not None
                    server.proc.send_signal(signal.SIGTERM)
                    signalled = time.monotonic()
                if not signalled:
                    await asyncio.sleep(0.002)  # a slow reader until the signal, then as fast as it can
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
        took = time.monotonic() - signalled
        assert signalled, "the replay ended before the signal"
        assert code == 1001, f"closed with {code} {took:.1f}s after SIGTERM"
        assert len(seqs) < N
        assert server.proc is not None and server.proc.wait(15) == 0
    finally:
        server.stop()
