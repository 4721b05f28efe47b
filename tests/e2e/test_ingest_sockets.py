"""Ingest limits that only a real socket shows: a 413 that arrives while the client is still
sending the body (tests/api/test_ingest.py has the rest of ingest, in-process).

Raw HTTP/1.1 over asyncio streams against real `orchlog serve` processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from helpers import Server, start_server

LIMITED_ENV = {
    "ORCHLOG_MAX_BODY_BYTES": str(1024 * 1024),
    "ORCHLOG_MAX_ITEMS": "50",
    "ORCHLOG_MAX_CONTENT_CHARS": "1000",
}


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with small limits: 1 MiB bodies, 50 items per request, 1000-char content."""
    srv = start_server(tmp_path_factory.mktemp("limited"), env=LIMITED_ENV)
    try:
        yield srv
    finally:
        srv.stop()


class RawAnswer:
    def __init__(self, status: int, body: bytes, sent: int) -> None:
        self.status = status
        self.body = body
        self.sent = sent

    def json(self) -> Any:
        return orjson.loads(self.body)


async def _read_answer(reader: asyncio.StreamReader, status_line: bytes) -> tuple[int, bytes]:
    parts = status_line.decode("latin-1").split()
    assert len(parts) >= 2 and parts[0].startswith("HTTP/1."), status_line
    status = int(parts[1])
    length = None
    chunked = False
    while True:
        line = await asyncio.wait_for(reader.readline(), 10)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
        if name.strip().lower() == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if length is not None:
        return status, await asyncio.wait_for(reader.readexactly(length), 10)
    if chunked:
        body = b""
        while True:
            size = int((await asyncio.wait_for(reader.readline(), 10)).strip(), 16)
            if size == 0:
                return status, body
            body += await asyncio.wait_for(reader.readexactly(size + 2), 10)
            body = body[:-2]
    return status, await asyncio.wait_for(reader.read(), 10)


async def send_until_answered(
    port: int, head: bytes, *, chunk: bytes | None, chunked: bool, give_up_after: int
) -> RawAnswer:
    """Send `head`, then body bytes (`chunk` repeatedly) until the server answers or
    `give_up_after` bytes went out; return the answer and how many body bytes were sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        status_task = asyncio.create_task(reader.readline())
        sent = 0
        while chunk is not None and not status_task.done() and sent < give_up_after:
            writer.write((b"%x\r\n" % len(chunk) + chunk + b"\r\n") if chunked else chunk)
            sent += len(chunk)
            drain = asyncio.ensure_future(writer.drain())
            done, _ = await asyncio.wait({drain, status_task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            if drain not in done:
                drain.cancel()
            elif drain.exception() is not None:  # the server closed its side after answering
                break
            if not done:
                break
        status_line = await asyncio.wait_for(status_task, 10)
        assert status_line, f"connection closed without an answer after {sent} body bytes"
        status, body = await _read_answer(reader, status_line)
        return RawAnswer(status, body, sent)
    finally:
        writer.close()


async def test_declared_content_length_over_limit_is_413_before_the_body(module_server: Server) -> None:
    """A Content-Length over the body limit (16 MiB default) → 413 at once, without sending the body."""
    head = (
        b"POST /api/v1/system-logs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % (17 * 1024 * 1024)
    )
    answer = await send_until_answered(module_server.port, head, chunk=None, chunked=False, give_up_after=0)
    assert answer.status == 413, answer.body
    assert answer.json()["error"]["code"] == "payload_too_large"
    assert b"Traceback" not in answer.body


@pytest.mark.parametrize(("which", "give_up_mib"), [("default", 64), ("limited", 16)])
async def test_chunked_body_over_limit_is_413_while_reading(
    module_server: Server, limited_server: Server, which: str, give_up_mib: int
) -> None:
    """A chunked body (no Content-Length) over the limit → 413 arrives while the client is still
    sending, long before the whole body is out (16 MiB limit: before 64 MiB; 1 MiB limit: before 16 MiB)."""
    srv = module_server if which == "default" else limited_server
    head = (
        b"POST /api/v1/system-logs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    answer = await send_until_answered(
        srv.port, head, chunk=b" " * 65536, chunked=True, give_up_after=give_up_mib * 1024 * 1024
    )
    assert answer.status == 413, answer.body
    assert answer.sent < give_up_mib * 1024 * 1024
    assert answer.json()["error"]["code"] == "payload_too_large"


def test_server_log_has_no_crash(module_server: Server, limited_server: Server) -> None:
    """Nothing above made the servers log an unhandled error (500s are bugs, 4xx are not)."""
    for srv in (module_server, limited_server):
        text = srv.log_text()
        assert "unhandled error" not in text, text[-3000:]
        assert " 500 " not in text, text[-3000:]
