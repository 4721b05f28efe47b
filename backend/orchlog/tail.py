"""``orchlog tail``: follow the live stream in a terminal, resuming exactly where it left off.

Talks to the server only through ``orchlog.client`` (like any user script would). The position
is the last printed ``seq``: reconnects resume after it, and ``--cursor-file`` keeps it across
runs (written atomically, a few times a second and at exit), so nothing is shown twice or skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson

from .agentref import AgentRefError, as_uuid, pick_agent
from .client import AsyncClient, AuthError, OrchlogClientError
from .console import Formatter
from .filters import KIND_ALIASES

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_INTERRUPTED = 130


@dataclass
class TailOptions:
    url: str
    token: str | None = None
    follow: bool = False
    lines: int | None = None
    after: int | None = None
    since: str | None = None
    until: str | None = None
    cursor_file: str | None = None
    agents: tuple[str, ...] = ()
    level: str | None = None
    types: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    kind: str | None = None
    task: str | None = None
    grep: str | None = None
    output: str = "text"
    color: bool = False
    timestamps: bool = False
    filters: dict[str, Any] = field(default_factory=dict)


class UsageProblem(Exception):
    """Bad flags or values the server cannot take: exit 2 with this message."""


def read_cursor(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except FileNotFoundError:
        return None
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise UsageProblem(f"cursor file {path} does not hold a seq number ({text[:40]!r})") from None


def write_cursor(path: str, seq: int) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(f"{seq}\n")
    os.replace(tmp, path)


class Tail:
    def __init__(self, options: TailOptions, out: TextIO, err: TextIO) -> None:
        self.o = options
        self.out = out
        self.err = err
        self.last_seq: int | None = None
        self._saved_seq: int | None = None
        self.fmt = Formatter(
            output=options.output, color=options.color, timestamps=options.timestamps, grep=options.grep
        )

    async def run(self) -> int:
        if self.o.lines is not None and self.o.after is not None:
            raise UsageProblem(
                "-n/--lines (start with the last N events) and --after (start after a seq) pick the "
                "start in two different ways; use one of them (`orchlog tail --help`)"
            )
        async with AsyncClient(self.o.url, token=self.o.token) as client:
            params = await self._params(client)
            start: dict[str, Any] = {}
            cursor = read_cursor(self.o.cursor_file) if self.o.cursor_file else None
            if cursor is not None:
                start["after"] = cursor
            elif self.o.after is not None:
                start["after"] = self.o.after
            elif self.o.since is not None and self.o.lines is None:
                start["after"] = 0
            else:
                start["tail"] = self.o.lines if self.o.lines is not None else 10
            flusher = asyncio.create_task(self._flush_loop())
            try:
                await self._consume(client, start, params)
            finally:
                flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flusher
                self._checkpoint()
        return EXIT_OK

    async def _params(self, client: AsyncClient) -> dict[str, Any]:
        params: dict[str, Any] = dict(self.o.filters)
        if self.o.agents:
            params["agent_id"] = await self._resolve_agents(client)
        else:
            with contextlib.suppress(OrchlogClientError):
                self.fmt.agents.update({a["id"]: a["name"] for a in await client.list_agents(limit=1000)})
        if self.o.level:
            params["min_level"] = self.o.level
        if self.o.types:
            params["event_type"] = list(self.o.types)
        if self.o.categories:
            params["event_category"] = list(self.o.categories)
        if self.o.kind:
            params["kind"] = KIND_ALIASES.get(self.o.kind, self.o.kind)
        if self.o.task:
            params["task_slug"] = self.o.task
        if self.o.grep:
            params["q"] = self.o.grep
        if self.o.since:
            params["since"] = self.o.since
        if self.o.until:
            params["until"] = self.o.until
        return params

    async def _resolve_agents(self, client: AsyncClient) -> list[str]:
        agents = await client.list_agents(limit=1000)
        self.fmt.agents.update({a["id"]: a["name"] for a in agents})
        ids = []
        for ref in self.o.agents:
            named = [] if as_uuid(ref) else await client.list_agents(name=ref, limit=100)
            try:
                ids.append(pick_agent(ref, named, [a["name"] for a in agents]))
            except AgentRefError as exc:
                raise UsageProblem(str(exc)) from None
        return ids

    async def _consume(self, client: AsyncClient, start: dict[str, Any], params: dict[str, Any]) -> None:
        was_down = False
        async for frame in client.frames(reconnect=self.o.follow, **start, **params):
            kind = frame.get("type")
            if kind in ("agent_log", "system_log"):
                seq = frame["seq"]
                if self.last_seq is not None and seq <= self.last_seq:
                    continue  # belt and braces: the server already guarantees this
                raw = orjson.dumps(frame).decode() if self.o.output == "json" else ""
                self.out.write(self.fmt.line(raw, frame) + "\n")
                self.last_seq = seq
            elif kind == "hello":
                if was_down:
                    self.err.write(self.fmt.notice(f"reconnected; resuming after seq {frame.get('after')}") + "\n")
                    was_down = False
            elif kind == "live":
                if not self.o.follow:
                    return
                self.out.flush()
            elif kind == "reset":
                self.err.write(
                    self.fmt.notice(
                        f"events up to seq {frame.get('floor_seq')} are gone ({frame.get('reason')}); "
                        f"continuing after seq {frame.get('after')}",
                        warning=True,
                    )
                    + "\n"
                )
            elif kind == "disconnected":
                was_down = True
                self.out.flush()
                self.err.write(
                    self.fmt.notice(f"disconnected ({frame.get('error')}); retrying in {frame.get('retry_in')}s") + "\n"
                )
                self.err.flush()
            elif kind == "agent":
                data = frame.get("data") or {}
                if data.get("id") and data.get("name"):
                    self.fmt.agents[data["id"]] = data["name"]
        if not self.o.follow:
            return

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            self.out.flush()
            self._checkpoint()

    def _checkpoint(self) -> None:
        if self.o.cursor_file and self.last_seq is not None and self.last_seq != self._saved_seq:
            write_cursor(self.o.cursor_file, self.last_seq)
            self._saved_seq = self.last_seq


def run_tail(options: TailOptions) -> int:
    """Run to completion; returns the process exit code (never raises for expected failures)."""
    tail = Tail(options, sys.stdout, sys.stderr)
    try:
        return asyncio.run(tail.run())
    except KeyboardInterrupt:
        tail._checkpoint()
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        tail._checkpoint()
        _silence_stdout()
        return EXIT_OK
    except AuthError as exc:
        sys.stderr.write(f"orchlog tail: authentication refused: {exc}. Pass --token or set ORCHLOG_TOKEN.\n")
        return EXIT_AUTH
    except UsageProblem as exc:
        sys.stderr.write(f"orchlog tail: {exc}\n")
        return EXIT_USAGE
    except OrchlogClientError as exc:
        if exc.status == 400 or (exc.status is None and "bad stream parameters" in str(exc)):
            sys.stderr.write(f"orchlog tail: {exc}\n")
            return EXIT_USAGE
        hint = "; is `orchlog serve` running there? (--url / ORCHLOG_URL)" if exc.status is None else ""
        sys.stderr.write(f"orchlog tail: {exc}{hint}\n")
        return 1


def _silence_stdout() -> None:
    """After EPIPE, make the interpreter's final flush of stdout a no-op (no 'Exception ignored')."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
