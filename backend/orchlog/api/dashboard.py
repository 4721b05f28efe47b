"""The dashboard's static files (``frontend_stub/``, packaged as ``orchlog/_frontend``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from ..closecodes import javascript_module
from ..errors import NotFound
from ..paths import frontend_dir

FILES = {
    "": ("index.html", "text/html; charset=utf-8"),
    "index.html": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "style.css": ("style.css", "text/css; charset=utf-8"),
    "format.js": ("format.js", "text/javascript; charset=utf-8"),
    "vlist.js": ("vlist.js", "text/javascript; charset=utf-8"),
}


async def static(request: Request) -> Response:
    entry = FILES.get(request.path_params.get("name", ""))
    if entry is None:
        raise NotFound(f"no such file: {request.url.path}")
    name, media_type = entry
    path = frontend_dir() / name
    if not path.is_file():
        raise NotFound(f"the dashboard file {name} is missing from this installation")
    # no-cache: a browser revalidates (ETag) so a new orchlog version never runs stale JS
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "no-cache"})


async def closecodes(request: Request) -> Response:
    """The WebSocket close codes as an ES module (one declaration: ``orchlog.closecodes``)."""
    return Response(
        javascript_module(), media_type="text/javascript; charset=utf-8", headers={"Cache-Control": "no-cache"}
    )
