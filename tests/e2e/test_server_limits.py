"""The HTTP server's own limits (issue 16): a request's headers must arrive in time and within a
size, so half-sent requests cannot hold connections open; normal and kept-alive requests, large
bodies and WebSocket upgrades are unaffected."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect

from helpers import Server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("limits") / "orchlog.db", env={"ORCHLOG_HEADER_TIMEOUT_S": "1"}).start()
    try:
        yield server
    finally:
        server.stop()


def read_until_closed(sock: socket.socket, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection (fails after ``within`` s)."""
    started = time.monotonic()
    sock.settimeout(within)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open for {within}s; got {data[:200]!r}") from None
    except ConnectionResetError:
        data += b"<reset>"  # closed while our own bytes were unread: the kernel resets, the answer may be lost
    return data, time.monotonic() - started


def test_half_sent_headers_are_cut_off(srv: Server) -> None:
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        data, took = read_until_closed(s, 6)
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert took < 4


def test_a_silent_connection_is_cut_off(srv: Server) -> None:
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        _, took = read_until_closed(s, 6)
    assert took < 4, took


def test_endless_headers_are_refused(srv: Server) -> None:
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        try:
            for i in range(40):
                s.sendall(b"X-Filler-%d: %s\r\n" % (i, b"a" * 4000))
        except OSError:
            pass  # closed on us mid-way: that is the point
        data, _ = read_until_closed(s, 6)
    assert data.startswith((b"HTTP/1.1 431", b"<reset>")), data[:200]


def test_normal_traffic_is_unaffected(srv: Server) -> None:
    with httpx.Client(base_url=srv.url, timeout=10) as c:
        for _ in range(3):  # kept alive across requests, each well within the header timeout
            assert c.get("/healthz").status_code == 200
            time.sleep(0.4)
        body = [{"message": "x" * 1000} for _ in range(300)]  # a 300 KB body in the first packets
        assert c.post("/api/v1/system-logs", json=body).status_code == 201
    with socket.create_connection(("127.0.0.1", srv.port)) as s:  # headers in two slow halves
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(0.5)
        s.sendall(b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data, _ = read_until_closed(s, 6)
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    with connect(f"{srv.ws}/api/v1/stream", open_timeout=10) as ws:  # an upgraded socket outlives the timer
        assert ws.recv(5).startswith('{"type":"hello"')
        time.sleep(1.5)
        ws.send('{"type": "ping"}')
        while (frame := ws.recv(5)) != '{"type":"pong"}':
            assert '"type":"live"' in frame, frame
