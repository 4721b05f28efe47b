"""GET /healthz (the process answers) and GET /readyz (writer and hub alive, database writable)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .. import __version__
from ..errors import OrchlogError
from ..metrics import CONTENT_TYPE
from .responses import JSON, runtime


async def healthz(request: Request) -> JSON:
    return JSON({"status": "ok", "version": __version__})


async def readyz(request: Request) -> JSON:
    rt = runtime(request)
    problems = []
    if not rt.writer.alive:
        problems.append("writer is not running")
    if not rt.hub.alive:
        problems.append("hub is not running")
    if rt.stopping.is_set():
        problems.append("shutting down")
    try:
        await rt.store.check_writable()
    except OrchlogError as exc:
        problems.append(exc.message)
    meta = await rt.store.meta()
    body = {
        "status": "ready" if not problems else "not_ready",
        "problems": problems,
        "epoch": meta.epoch,
        "head_seq": meta.head_seq,
        "floor_seq": meta.floor_seq,
        "writer_queue": rt.writer.depth,
        "subscribers": rt.hub.subscribers,
    }
    return JSON(body, status_code=200 if not problems else 503)


async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    rt = runtime(request)
    rt.metrics.sizes = await rt.store.sizes()
    return Response(rt.metrics.render(), media_type=CONTENT_TYPE)
