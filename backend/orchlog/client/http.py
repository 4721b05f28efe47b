"""The request/reply half of the client: ``Client`` (blocking, for scripts and agent code) and
``AsyncClient`` (the same calls for asyncio, plus the live stream, which lives in ``follow``).

Both are thin: one method per route, errors mapped by ``wire.raise_for``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

import httpx
import orjson

from .errors import OrchlogClientError
from .follow import frames as follow_frames
from .wire import DEFAULT_URL, JSON_HEADERS, auth_headers, query_params, raise_for


class AsyncClient:
    """Async HTTP + WebSocket client. Use as ``async with AsyncClient(url) as c: ...``."""

    def __init__(self, url: str | None = None, *, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = (url or os.environ.get("ORCHLOG_URL") or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("ORCHLOG_TOKEN")
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout, headers=auth_headers(self.token))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            response = await self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise OrchlogClientError(f"cannot reach {self.url}: {exc}") from exc
        raise_for(response)
        body: dict[str, Any] = response.json()
        return body

    # -- ingest
    async def post_agent_logs(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return await self._request(
            "POST", "/api/v1/agent-logs", content=orjson.dumps(list(items)), headers=JSON_HEADERS
        )

    async def post_system_logs(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return await self._request(
            "POST", "/api/v1/system-logs", content=orjson.dumps(list(items)), headers=JSON_HEADERS
        )

    async def post_events(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Mixed items, each with ``kind`` = ``agent_log`` or ``system_log``."""
        return await self._request("POST", "/api/v1/events", content=orjson.dumps(list(items)), headers=JSON_HEADERS)

    # -- history
    async def events(self, **params: Any) -> dict[str, Any]:
        """One page of GET /api/v1/events (``after``, ``before``, ``limit`` and the filters)."""
        return await self._request("GET", "/api/v1/events", params=query_params(params))

    async def history(self, after: int = 0, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Every matching event after ``after``, ascending, paging until the current end."""
        cursor = after
        while True:
            page = await self.events(after=cursor, limit=1000, **filters)
            for item in page["items"]:
                yield item
            if not page["has_more"]:
                return
            cursor = page["next_after"]

    # -- entities
    async def create_orchestrator(self, **fields: Any) -> dict[str, Any]:
        return await self._request("POST", "/api/v1/orchestrator-agents", json=fields)

    async def create_agent(self, orchestrator_agent_id: str, name: str, model: str, **fields: Any) -> dict[str, Any]:
        body = {"orchestrator_agent_id": orchestrator_agent_id, "name": name, "model": model, **fields}
        return await self._request("POST", "/api/v1/agents", json=body)

    async def list_agents(self, **filters: Any) -> list[dict[str, Any]]:
        body = await self._request("GET", "/api/v1/agents", params=query_params(filters))
        return list(body["items"])

    async def update_agent(self, agent_id: str, **patch: Any) -> dict[str, Any]:
        return await self._request("PATCH", f"/api/v1/agents/{agent_id}", json=patch)

    # -- live
    async def frames(
        self,
        *,
        after: int | None = None,
        tail: int | None = None,
        reconnect: bool = True,
        max_backoff: float = 10.0,
        batch: bool = True,
        **filters: Any,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every frame of the live stream, reconnecting by itself and resuming after the last seq.

        Besides the server's frames (hello, agent_log, system_log, live, reset, heartbeat,
        agent) it yields ``{"type": "disconnected", "error", "retry_in"}`` before each reconnect.
        Raises ``AuthError`` when the server refuses the token (no retry).
        """
        stream = follow_frames(
            self.url,
            self.token,
            after=after,
            tail=tail,
            reconnect=reconnect,
            max_backoff=max_backoff,
            batch=batch,
            filters=filters,
        )
        async with contextlib.aclosing(stream) as frames:
            async for frame in frames:
                yield frame

    async def follow(
        self, *, after: int | None = None, tail: int | None = None, **filters: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """Only the events (``{"type", "seq", "data"}``), exactly once, in order, forever."""
        async for frame in self.frames(after=after, tail=tail, **filters):
            if frame.get("type") in ("agent_log", "system_log"):
                yield frame


class Client:
    """Blocking twin of the HTTP half of ``AsyncClient`` (for scripts and agent code)."""

    def __init__(self, url: str | None = None, *, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = (url or os.environ.get("ORCHLOG_URL") or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("ORCHLOG_TOKEN")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=auth_headers(self.token))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise OrchlogClientError(f"cannot reach {self.url}: {exc}") from exc
        raise_for(response)
        body: dict[str, Any] = response.json()
        return body

    def post_agent_logs(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return self._request("POST", "/api/v1/agent-logs", content=orjson.dumps(list(items)), headers=JSON_HEADERS)

    def post_system_logs(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return self._request("POST", "/api/v1/system-logs", content=orjson.dumps(list(items)), headers=JSON_HEADERS)

    def post_events(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return self._request("POST", "/api/v1/events", content=orjson.dumps(list(items)), headers=JSON_HEADERS)

    def events(self, **params: Any) -> dict[str, Any]:
        return self._request("GET", "/api/v1/events", params=query_params(params))

    def history(self, after: int = 0, **filters: Any) -> Iterable[dict[str, Any]]:
        cursor = after
        while True:
            page = self.events(after=cursor, limit=1000, **filters)
            yield from page["items"]
            if not page["has_more"]:
                return
            cursor = page["next_after"]

    def create_orchestrator(self, **fields: Any) -> dict[str, Any]:
        return self._request("POST", "/api/v1/orchestrator-agents", json=fields)

    def create_agent(self, orchestrator_agent_id: str, name: str, model: str, **fields: Any) -> dict[str, Any]:
        body = {"orchestrator_agent_id": orchestrator_agent_id, "name": name, "model": model, **fields}
        return self._request("POST", "/api/v1/agents", json=body)

    def list_agents(self, **filters: Any) -> list[dict[str, Any]]:
        return list(self._request("GET", "/api/v1/agents", params=query_params(filters))["items"])

    def update_agent(self, agent_id: str, **patch: Any) -> dict[str, Any]:
        return self._request("PATCH", f"/api/v1/agents/{agent_id}", json=patch)
