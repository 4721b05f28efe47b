"""CORS: Starlette's middleware, with a fast path for requests that carry no ``Origin``.

Agents, the CLI and scripts never send an ``Origin``; for them Starlette's middleware still parses
every header and rewrites the response headers only to add ``Vary: Origin``. That is all this
fast path does for them (the header keeps shared caches from serving one origin's answer to
another); everything with an ``Origin`` goes through Starlette's code unchanged.
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import Message, Receive, Scope, Send


class CORS(CORSMiddleware):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(name == b"origin" for name, _ in scope["headers"]):
            await super().__call__(scope, receive, send)
            return

        async def send_vary(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": with_vary_origin(message.get("headers", []))}
            await send(message)

        await self.app(scope, receive, send_vary)


def with_vary_origin(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers with ``Origin`` added to ``Vary`` (one Vary header, as Starlette writes it)."""
    values = [value.decode("latin-1") for name, value in headers if name.lower() == b"vary"]
    rest = [(name, value) for name, value in headers if name.lower() != b"vary"]
    return [*rest, (b"vary", ", ".join([*values, "Origin"]).encode("latin-1"))]
