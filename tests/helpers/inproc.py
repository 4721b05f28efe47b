"""The real app in-process: ``create_app(settings)`` over a real SQLite file, its lifespan (store,
writer, hub, periodic jobs) running on an event loop of its own in a portal thread.

Why a thread of its own: module-scoped apps outlive each test's event loop, and a client on the
test's loop must never share a loop with the writer it waits for (a test blocking its loop would
then block the server too, which a real server never does). Requests hop to the app's loop
through an httpx transport that speaks ASGI to the app as uvicorn would (client address on
loopback), streaming the answer: an SSE stream can be opened, read and closed in-process.

``AppServer`` has the surface of ``helpers.server.Server`` that the api layer needs (``db``,
``start``, ``stop``, ``log_text``, clients); no socket, so ``url`` is only a base URL for clients
made here. Tests that need sockets (WebSockets, raw HTTP), signals or the CLI belong in tests/e2e.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from starlette.applications import Starlette

from orchlog.api.app import create_app
from orchlog.config import Settings
from orchlog.server import preflight

PEER = ("127.0.0.1", 50000)  # the client address the app sees: loopback, like a local client


class _Exchange:
    """One HTTP exchange with the app, run on the portal's loop: the answer's status and headers
    come back as soon as the app sends them, its body chunk by chunk (so an endless SSE stream can
    be opened, read and closed like over a socket); closing tells the app the client went away."""

    def __init__(self, app: Starlette, request: httpx.Request, body: bytes) -> None:
        self.app = app
        self.request = request
        self.body = body
        self.chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.gone = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def scope(self) -> dict[str, Any]:
        url = self.request.url
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": self.request.method,
            "headers": [(k.lower(), v) for k, v in self.request.headers.raw],
            "scheme": url.scheme,
            "path": url.path,
            "raw_path": url.raw_path.split(b"?")[0],
            "query_string": url.query,
            "server": (url.host, url.port or 80),
            "client": PEER,
            "root_path": "",
        }

    async def start(self) -> tuple[int, list[tuple[bytes, bytes]]]:
        started: asyncio.Future[tuple[int, list[tuple[bytes, bytes]]]] = asyncio.get_running_loop().create_future()
        sent_body = False

        async def receive() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": self.body, "more_body": False}
            await self.gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.set_result((message["status"], list(message.get("headers", []))))
            elif message["type"] == "http.response.body":
                if message.get("body") and self.request.method != "HEAD":
                    await self.chunks.put(bytes(message["body"]))
                if not message.get("more_body", False):
                    await self.chunks.put(None)

        async def run() -> None:
            try:
                await self.app(self.scope(), receive, send)  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001 - like uvicorn: the app's error handler already answered 500
                if not started.done():
                    started.set_result((500, []))
            finally:
                await self.chunks.put(None)

        self.task = asyncio.create_task(run())
        return await started

    async def next_chunk(self) -> bytes | None:
        return await self.chunks.get()

    async def close(self) -> None:
        self.gone.set()
        if self.task is not None and not self.task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self.task), 5)
            except TimeoutError:
                self.task.cancel()


def _deadline(request: httpx.Request) -> float:
    timeouts = request.extensions.get("timeout") or {}
    return float(timeouts.get("read") or 30.0)


def _too_slow(request: httpx.Request, seconds: float) -> httpx.ReadTimeout:
    return httpx.ReadTimeout(
        f"no answer in {seconds}s from the in-process app for {request.method} {request.url.path}", request=request
    )


class _AsyncBody(httpx.AsyncByteStream):
    def __init__(self, portal: BlockingPortal, exchange: _Exchange, request: httpx.Request) -> None:
        self.portal, self.exchange, self.request = portal, exchange, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seconds = _deadline(self.request)
        while True:
            future = self.portal.start_task_soon(self.exchange.next_chunk)
            try:
                chunk = await asyncio.wait_for(asyncio.wrap_future(future), seconds)
            except TimeoutError:
                raise _too_slow(self.request, seconds) from None
            if chunk is None:
                return
            yield chunk

    async def aclose(self) -> None:
        await asyncio.wrap_future(self.portal.start_task_soon(self.exchange.close))


class _SyncBody(httpx.SyncByteStream):
    def __init__(self, portal: BlockingPortal, exchange: _Exchange, request: httpx.Request) -> None:
        self.portal, self.exchange, self.request = portal, exchange, request

    def __iter__(self) -> Iterator[bytes]:
        seconds = _deadline(self.request)
        while True:
            future = self.portal.start_task_soon(self.exchange.next_chunk)
            try:
                chunk = future.result(seconds)
            except concurrent.futures.TimeoutError:
                raise _too_slow(self.request, seconds) from None
            if chunk is None:
                return
            yield chunk

    def close(self) -> None:
        self.portal.call(self.exchange.close)


class AsyncPortalTransport(httpx.AsyncBaseTransport):
    """httpx → the app on the portal's loop, streaming both ways like a socket would."""

    def __init__(self, portal: BlockingPortal, app: Starlette) -> None:
        self.portal, self.app = portal, app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        exchange = await asyncio.wrap_future(self.portal.start_task_soon(_Exchange, self.app, request, body))
        seconds = _deadline(request)
        try:
            status, headers = await asyncio.wait_for(
                asyncio.wrap_future(self.portal.start_task_soon(exchange.start)), seconds
            )
        except TimeoutError:
            raise _too_slow(request, seconds) from None
        return httpx.Response(status, headers=headers, stream=_AsyncBody(self.portal, exchange, request))


class SyncPortalTransport(httpx.BaseTransport):
    def __init__(self, portal: BlockingPortal, app: Starlette) -> None:
        self.portal, self.app = portal, app

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        exchange = self.portal.call(_Exchange, self.app, request, body)
        seconds = _deadline(request)
        try:
            status, headers = self.portal.start_task_soon(exchange.start).result(seconds)
        except concurrent.futures.TimeoutError:
            raise _too_slow(request, seconds) from None
        return httpx.Response(status, headers=headers, stream=_SyncBody(self.portal, exchange, request))


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
