"""Load generator process for the ingest benchmark: ``python -m orchlog.bench.load URL AGENT C B N``.

C concurrent keep-alive HTTP clients post N agent events in requests of B events; 503s are
retried after Retry-After. Prints one JSON line: events/s acknowledged, retries.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx
import orjson


async def main(url: str, agent: str, clients: int, batch: int, total: int) -> None:
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
    requests = total // batch
    counter = iter(range(requests))
    retries = 0

    async def worker() -> None:
        nonlocal retries
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_keepalive_connections=1)) as c:
            for _ in counter:
                while True:
                    r = await c.post("/api/v1/agent-logs", content=body, headers={"content-type": "application/json"})
                    if r.status_code == 201:
                        break
                    retries += 1
                    await asyncio.sleep(float(r.headers.get("Retry-After", "0.1")) / 10)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    took = time.perf_counter() - started
    print(json.dumps({"events_per_s": requests * batch / took, "seconds": took, "retries": retries}))


if __name__ == "__main__":
    u, a, c, b, n = sys.argv[1:6]
    asyncio.run(main(u, a, int(c), int(b), int(n)))
