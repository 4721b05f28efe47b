"""Load generator process for the ingest benchmark: ``python -m orchlog.bench.load URL AGENT C B N``.

C concurrent keep-alive HTTP/1.1 connections post N agent events in requests of B events; 503s
are retried after Retry-After. A minimal raw-socket client on purpose: a general-purpose client
(httpx) costs more CPU per request than the server does, and would measure itself. Prints one
JSON line: events/s acknowledged, retries.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit

import orjson


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes
) -> tuple[int, dict[str, str]]:
    writer.write(head + body)
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers


async def main(url: str, agent: str, clients: int, batch: int, total: int) -> None:
    parts = urlsplit(url)
    body = orjson.dumps(
        [
            {
                "agent_id": agent,
                "event_category": "hook",
                "event_type": "PreToolUse",
                "content": "x" * 120,
                "payload": {"tool": "Bash", "args": ["ls", "-la"], "n": 1},
            }
            for _ in range(batch)
        ]
    )
    head = (
        f"POST /api/v1/agent-logs HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    requests = total // batch
    counter = iter(range(requests))
    retries = 0

    async def worker() -> None:
        nonlocal retries
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            for _ in counter:
                while True:
                    status, headers = await _request(reader, writer, head, body)
                    if status == 201:
                        break
                    if status not in (429, 503):
                        raise RuntimeError(f"unexpected status {status}")
                    retries += 1
                    await asyncio.sleep(float(headers.get("retry-after", "1")) / 10)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    took = time.perf_counter() - started
    print(json.dumps({"events_per_s": requests * batch / took, "seconds": took, "retries": retries}))


if __name__ == "__main__":
    u, a, c, b, n = sys.argv[1:6]
    asyncio.run(main(u, a, int(c), int(b), int(n)))
