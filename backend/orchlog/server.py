"""Running the app under uvicorn, with orchlog's own shutdown order.

On SIGTERM/SIGINT the runtime is told first (streams flush what is committed and close with
1001 so clients resume elsewhere), then uvicorn stops accepting, waits for in-flight requests,
and the lifespan drains the writer. The process then exits 0 (uvicorn would otherwise re-raise
the signal and die by it).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import socket
import sqlite3
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn

from .api.app import create_app
from .config import Settings
from .errors import OrchlogError
from .logs import configure_logging
from .origins import LOOPBACK_HOSTS
from .runtime import Runtime

log = logging.getLogger("orchlog")


class RedactTickets(logging.Filter):
    """Stream tickets travel in the query string; keep them out of every log line. Installed on
    the root handler, so it sees orchlog's access lines and uvicorn's own (its WebSocket
    ``"WebSocket /api/v1/stream?ticket=..." [accepted]`` line, its errors) alike."""

    def filter(self, record: logging.LogRecord) -> bool:
        path = getattr(record, "path", None)
        if isinstance(path, str) and "ticket=" in path:
            record.path = _TICKET.sub(r"\1[redacted]", path)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is the logging module's to report
            return True
        if "ticket=" in message:
            record.msg, record.args = _TICKET.sub(r"\1[redacted]", message), None
        return True


_TICKET = re.compile(r"(ticket=)[^&\s]+")


MAX_HEADER_BYTES = 64 * 1024

if TYPE_CHECKING:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _GuardBase
else:  # httptools may be missing at run time: the mixin is only ever used over HttpToolsProtocol
    _GuardBase = object


class HeaderGuard(_GuardBase):
    """What uvicorn's httptools protocol lacks, as a mixin over it: a request's headers must arrive
    within ``header_timeout_s`` and ``max_header_bytes``. A subclass sets both (``guarded_http``)."""

    header_timeout_s: float
    max_header_bytes: int
    _awaiting_headers = True
    _header_bytes = 0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._awaiting_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._refuse(b"431 Request Header Fields Too Large", "request headers are too large")

    def on_message_begin(self) -> None:
        # a new request starts (not merely "the last response is out": a client may still be
        # sending the body of a request answered early, e.g. with 413, and those bytes are not
        # headers); between requests uvicorn's keep-alive timer applies
        super().on_message_begin()
        self._awaiting_headers, self._header_bytes = True, 0
        if self._header_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._disarm()
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._awaiting_headers and not self.transport.is_closing():
            self._refuse(b"408 Request Timeout", f"request headers did not arrive within {self.header_timeout_s:g}s")

    def _refuse(self, status: bytes, message: str) -> None:
        self._disarm()
        body = message.encode()
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        self.transport.close()


def guarded_http(header_timeout_s: float, max_header_bytes: int = MAX_HEADER_BYTES) -> type[asyncio.Protocol] | str:
    """uvicorn's httptools protocol with ``HeaderGuard`` (uvicorn keeps a half-sent request open for
    as long as the client likes, and httptools has no header size cap). Without httptools (it ships
    with uvicorn[standard]), uvicorn's h11 protocol is used with its own size limit only."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
        return "h11"
    timeout, limit = header_timeout_s, max_header_bytes

    class GuardedHttpTools(HeaderGuard, HttpToolsProtocol):
        header_timeout_s = timeout
        max_header_bytes = limit

    return GuardedHttpTools


class OrchlogServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        with self.capture_signals():
            await self._serve(sockets)
            self._captured_signals.clear()  # we shut down cleanly: exit 0, do not re-raise

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Give streams time to flush what is committed and close with 1001 themselves before
        uvicorn's own shutdown would cut them (it closes open WebSockets with 1012)."""
        self.runtime.begin_shutdown()
        deadline = time.monotonic() + STREAM_DRAIN_S
        while self.runtime.slots.total and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # streams end on their own (stopping is set); just wait, bounded
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.runtime.begin_shutdown)
        super().handle_exit(sig, frame)


STREAM_DRAIN_S = 8.0  # longest wait for streams to flush on shutdown


def preflight(settings: Settings) -> int:
    """Before any socket opens: migrate (a newer database is refused with a clear message) and
    apply the safe default: no tokens at all → loopback only, unless explicitly insecure.
    Returns how many tokens are configured."""
    from .auth import parse_seeded
    from .store import is_postgres, open_store, sqlite_path
    from .store.sqlite import connect, migrate
    from .store.tokens import load_tokens

    if is_postgres(settings.db):

        async def pg_tokens() -> list[Any]:
            store = open_store(settings)
            await store.open()  # migrates
            try:
                return await store.load_tokens()  # revoked rows keep auth on too (AUTH_RULE)
            finally:
                await store.close()

        tokens = asyncio.run(pg_tokens())
    else:
        path = sqlite_path(settings.db)
        try:
            conn = connect(path, settings)
            try:
                migrate(conn)
                tokens = load_tokens(conn)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise OrchlogError(f"cannot open the database {path!r}: {exc}") from exc
    count = len(tokens) + len(parse_seeded(settings.tokens))
    if count == 0:
        if settings.host not in LOOPBACK_HOSTS and not settings.insecure_no_auth:
            raise OrchlogError(
                f"refusing to serve on {settings.host} without any token: anyone on the network could read and "
                "write every log. Create one with `orchlog token create --scope admin --name me`, "
                "or pass --insecure-no-auth if this network is trusted."
            )
        if settings.host in LOOPBACK_HOSTS:
            log.warning("no tokens configured: open API on loopback only (dev mode)")
        else:
            log.warning("no tokens configured and --insecure-no-auth given: the API is OPEN on %s", settings.host)
    return count


GC_THRESHOLDS = (50_000, 20, 20)


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the ingest path.

    Every event becomes a handful of short-lived containers (its dict, its model, its row), so at
    CPython's default threshold (a collection per 700 new containers) a 1,000-event request ran
    dozens of collections, and the full ones walked every object the server had loaded (modules,
    pydantic schemas): 5 µs of the ~29 µs an event cost. Freezing what exists after startup takes
    those objects out of every later collection, and a higher first threshold collects the young
    ones in larger, rarer passes. Reference counting still frees almost everything at once; only
    cyclic garbage waits, and at most 50,000 new containers' worth of it.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def serve(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)
    preflight(settings)
    runtime = Runtime(settings)
    app = create_app(settings, runtime)
    config_kw: dict[str, Any] = dict(
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        ws=settings.ws_impl,
        ws_max_size=1024 * 1024,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        timeout_graceful_shutdown=10,
        # explicit limits (docs/operations.md says what a reverse proxy must add on top)
        http=guarded_http(settings.header_timeout_s),
        limit_concurrency=settings.limit_concurrency or settings.max_subscribers + 1000,
        timeout_keep_alive=settings.keep_alive_s,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        proxy_headers=False,
        server_header=False,
        log_config=None,  # ours (configure_logging): one format, request ids
        access_log=False,  # the app writes its own access lines (orchlog.access) with request ids
    )
    config = uvicorn.Config(app, **config_kw)
    tune_gc()
    server = OrchlogServer(config, runtime)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactTickets())
    log.info("orchlog serving %s on http://%s:%s", settings.db, settings.host, settings.port)
    try:
        server.run()
    except sqlite3.Error as exc:
        raise OrchlogError(f"cannot open the database {settings.db!r}: {exc}") from exc
    if not server.started:
        raise OrchlogError("the server did not start; see the messages above")
