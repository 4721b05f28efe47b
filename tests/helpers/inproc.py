"""The real app in-process: ``create_app(settings)`` over a real SQLite file, its lifespan (store,
writer, hub, periodic jobs) running on an event loop of its own in a portal thread.

Why a thread of its own: module-scoped apps outlive each test's event loop, and a client on the
test's loop must never share a loop with the writer it waits for (a test blocking its loop would
then block the server too, which a real server never does). Requests hop to the app's loop
through an httpx transport; the app sees them through ``httpx.ASGITransport`` exactly as ASGI
requests from uvicorn (client address on loopback).

``AppServer`` has the surface of ``helpers.server.Server`` that the api layer needs (``db``,
``start``, ``stop``, ``log_text``, clients); no socket, so ``url`` is only a base URL for clients
made here. Tests that need sockets, signals or the CLI belong in tests/e2e.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from pathlib import Path
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from starlette.applications import Starlette

from orchlog.api.app import create_app
from orchlog.config import Settings
from orchlog.server import preflight

PEER = ("127.0.0.1", 50000)  # the client address the app sees: loopback, like a local client


class _Transport:
    """Send one buffered request to the app on the portal's loop; return the buffered answer."""

    def __init__(self, portal: BlockingPortal, app: Starlette) -> None:
        self.portal = portal
        self.inner = httpx.ASGITransport(app, raise_app_exceptions=False, client=PEER)

    async def send(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        content = b"".join([part async for part in response.stream])  # type: ignore[union-attr]
        return httpx.Response(response.status_code, headers=response.headers, content=content)

    @staticmethod
    def copy(request: httpx.Request, body: bytes) -> httpx.Request:
        return httpx.Request(request.method, request.url, headers=request.headers, content=body)


def _deadline(request: httpx.Request) -> float:
    timeouts = request.extensions.get("timeout") or {}
    return float(timeouts.get("read") or 30.0)


def _too_slow(request: httpx.Request, seconds: float) -> httpx.ReadTimeout:
    return httpx.ReadTimeout(
        f"no complete answer in {seconds}s from the in-process app for {request.method} {request.url.path}; "
        "answers are buffered whole here, so an endless stream (SSE) never completes: test it in tests/e2e",
        request=request,
    )


class AsyncPortalTransport(httpx.AsyncBaseTransport, _Transport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        future = self.portal.start_task_soon(self.send, self.copy(request, body))
        seconds = _deadline(request)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), seconds)
        except TimeoutError:
            raise _too_slow(request, seconds) from None


class SyncPortalTransport(httpx.BaseTransport, _Transport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        future = self.portal.start_task_soon(self.send, self.copy(request, body))
        seconds = _deadline(request)
        try:
            return future.result(seconds)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise _too_slow(request, seconds) from None


class _Capture(logging.Handler):
    """The app's log records, formatted as the server would write them (tracebacks included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class AppServer:
    """One in-process orchlog app over the SQLite file `db`, configured by ORCHLOG_* `env`."""

    url = "http://127.0.0.1"

    def __init__(self, db: Path, env: dict[str, str] | None = None, **overrides: Any) -> None:
        self.db = db
        self.env = dict(env or {})
        self.settings = Settings.load(overrides, environ={"ORCHLOG_DB": str(db), **self.env})
        self.app: Starlette | None = None
        self.portal: BlockingPortal | None = None
        self._stack = contextlib.ExitStack()
        self._log = _Capture()

    @property
    def ws(self) -> str:
        raise AttributeError("an in-process AppServer has no socket: WebSocket tests belong in tests/e2e (Server)")

    @property
    def port(self) -> int:
        raise AttributeError("an in-process AppServer has no socket: raw-socket tests belong in tests/e2e (Server)")

    @property
    def runtime(self) -> Any:
        assert self.app is not None, "not started"
        return self.app.state.runtime

    def start(self) -> AppServer:
        """Preflight (migrate, the safe-default check) as `orchlog serve` does, then the lifespan."""
        self.db.parent.mkdir(parents=True, exist_ok=True)
        preflight(self.settings)
        logger = logging.getLogger("orchlog")
        logger.addHandler(self._log)
        self._stack.callback(logger.removeHandler, self._log)
        if logger.level == logging.NOTSET:  # the access lines (INFO), as `orchlog serve` logs them
            logger.setLevel(logging.INFO)
            self._stack.callback(logger.setLevel, logging.NOTSET)
        self.portal = self._stack.enter_context(start_blocking_portal())
        self.app = self.portal.call(create_app, self.settings)
        self._stack.enter_context(self.portal.wrap_async_context_manager(self.app.router.lifespan_context(self.app)))
        return self

    def stop(self) -> None:
        """Shut the lifespan down (the writer drains and commits), then the loop; idempotent."""
        self._stack.close()

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, **kw: Any) -> httpx.AsyncClient:
        """An async client for any event loop (the test's); requests run on the app's loop."""
        assert self.portal is not None and self.app is not None, "not started"
        kw.setdefault("timeout", 30)
        return httpx.AsyncClient(transport=AsyncPortalTransport(self.portal, self.app), base_url=self.url, **kw)

    def sync_client(self, **kw: Any) -> httpx.Client:
        """A blocking client, for module-scoped setup code."""
        assert self.portal is not None and self.app is not None, "not started"
        kw.setdefault("timeout", 30)
        return httpx.Client(transport=SyncPortalTransport(self.portal, self.app), base_url=self.url, **kw)

    def log_text(self) -> str:
        """What the app logged while it ran (in-process: every app of this process logs here)."""
        return "\n".join(self._log.lines)


def start_app(directory: Path, env: dict[str, str] | None = None) -> AppServer:
    """A started in-process app over a fresh database in `directory` (caller stops it)."""
    directory.mkdir(parents=True, exist_ok=True)
    return AppServer(directory / "orchlog.db", env=env).start()
