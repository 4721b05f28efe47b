"""`orchlog demo`: a new user's first minute. It fills a running server with a believable fleet."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx

from helpers import Server, history


async def test_demo_populates_a_running_server(server: Server, client: httpx.AsyncClient) -> None:
    """Against a running server, `orchlog demo --seconds 2` registers named agents and posts agent
    logs (hook and response events) and exits 0 with a summary."""
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "orchlog", "demo", "--url", server.url, "--seconds", "2", "--rate", "60"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "dashboard:" in result.stdout and "orchlog demo: posted" in result.stdout
    names = {a["name"] for a in (await client.get("/api/v1/agents")).json()["items"]}
    roles = {n.rsplit("-", 1)[0] for n in names}
    assert {"demo-planner", "demo-builder", "demo-reviewer", "demo-tester"} <= roles, names
    events = await history(client)
    kinds = {(e["data"].get("event_category"), e["data"].get("event_type")) for e in events if e["kind"] == "agent_log"}
    assert ("hook", "PreToolUse") in kinds and any(cat == "response" for cat, _ in kinds)
    assert len(events) >= 30
