"""orchestrator_3_stream compatibility: its HTTP endpoints and its ``/ws`` message shapes.

Its Vue frontend and ADW relay scripts work unchanged against orchlog. What is better than the
original and still compatible: every log message carries ``seq`` and ``/ws?after=SEQ`` resumes
without gaps; ``/get_events`` pages correctly across tables (by seq, newest page first);
``/list_agents`` counts logs in one query.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
from starlette.requests import Request
from starlette.websockets import WebSocket

from ..auth import Principal
from ..errors import BadParameter, NotFound, OrchlogError
from ..filters import EventFilter, parse_int
from ..models import canonical_uuid, now_ts
from ..store.base import jsonable
from ..stream.follow import Follower, FollowSpec, Frame
from ..stream.hub import Event
from .entities import bound_orchestrators
from .responses import JSON, runtime
from .security import chosen_subprotocol, principal_of
from .stream import client_host, run_socket

SOURCE_TABLES = {"agent_logs": "agent_log", "system_logs": "system_log"}
MAX_OFFSET = 100_000  # /get_events reads limit+offset rows to skip offset: keep that bounded


def encode_compat(event: Event) -> str:
    ts = event.data.get("timestamp")
    if event.kind == "agent_log":
        message = {"type": "agent_log", "log": event.data, "seq": event.seq, "timestamp": ts}
    else:
        message = {"type": "system_log", "data": event.data, "seq": event.seq, "timestamp": ts}
    return orjson.dumps(message, default=jsonable).decode()


def compat_messages(notice: dict[str, Any]) -> list[dict[str, Any]]:
    """A hub notice as the original's message types."""
    ts = now_ts()
    if notice.get("type") == "relay":
        message = dict(notice["message"])
        message.setdefault("timestamp", ts)
        return [message]
    if notice.get("type") != "agent":
        return []
    op, row, old = notice.get("op"), notice.get("data") or {}, notice.get("old") or {}
    if op == "created":
        return [{"type": "agent_created", "agent": row, "timestamp": ts}]
    if op == "deleted":
        return [{"type": "agent_deleted", "agent_id": row.get("id"), "timestamp": ts}]
    out = []
    if old.get("status") != row.get("status"):
        out.append(
            {
                "type": "agent_status_changed",
                "agent_id": row.get("id"),
                "old_status": old.get("status"),
                "new_status": row.get("status"),
                "timestamp": ts,
            }
        )
    out.append({"type": "agent_updated", "agent_id": row.get("id"), "agent": row, "timestamp": ts})
    return out


async def ws(websocket: WebSocket) -> None:
    rt = websocket.app.state.runtime
    try:
        after = parse_int("after", websocket.query_params.get("after"))
    except OrchlogError as exc:
        await websocket.accept()
        await websocket.close(code=4400, reason=exc.message[:120])
        return
    principal = principal_of(websocket)
    try:
        flt = principal.restrict(EventFilter())
    except OrchlogError as exc:
        await websocket.accept(subprotocol=chosen_subprotocol(websocket.scope))
        await websocket.close(code=4403, reason=exc.message[:120])
        return
    try:
        slot = rt.slots.acquire(principal.name, client_host(websocket.scope), "compat")
    except OrchlogError as exc:
        await websocket.accept(subprotocol=chosen_subprotocol(websocket.scope))
        await websocket.close(code=4429, reason=exc.message[:120])
        return
    try:
        await _serve_compat(websocket, rt, principal, flt, after)
    finally:
        slot.release()


async def _serve_compat(
    websocket: WebSocket, rt: Any, principal: Principal, flt: EventFilter, after: int | None
) -> None:
    await websocket.accept(subprotocol=chosen_subprotocol(websocket.scope))
    await websocket.send_text(
        orjson.dumps(
            {
                "type": "connection_established",
                "client_id": f"client_{id(websocket):x}",
                "message": "Connected to orchlog (orchestrator_3_stream compatible)",
                "timestamp": now_ts(),
            }
        ).decode()
    )
    follower = Follower(
        rt.hub,
        rt.store,
        FollowSpec(filter=flt, after=after, relays=True, owner=principal),
        rt.follow_config,
        rt.stopping,
    )

    def encode(frame: Frame) -> str | list[str] | None:
        if isinstance(frame, Event):
            return frame.encoded("compat", encode_compat)
        if isinstance(frame, list):
            return [event.encoded("compat", encode_compat) for event in frame]
        kind = frame.get("type")
        if kind in ("agent", "relay"):
            return [orjson.dumps(m).decode() for m in compat_messages(frame)]
        if kind == "heartbeat":
            return orjson.dumps({"type": "heartbeat", "timestamp": now_ts(), "seq": frame.get("head_seq")}).decode()
        if kind == "reset":
            return orjson.dumps({**frame, "timestamp": now_ts()}).decode()
        return None  # hello / live: the original has no such messages

    async def relay(message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind not in ("adw_broadcast", "agent_broadcast") or not principal.has("ingest") or principal.bound:
            return  # relaying needs an unbound ingest token (or no tokens configured)
        broadcast_type = message.get("broadcast_type")
        if not isinstance(broadcast_type, str):
            return
        payload = message.get("data")
        if not isinstance(payload, dict):
            payload = {k: v for k, v in message.items() if k not in ("type", "broadcast_type")}
        if broadcast_type == "adw_status":
            broadcast_type = "adw_updated"
        rt.hub.notify({"type": "relay", "message": {**payload, "type": broadcast_type}}, relay=True)

    await run_socket(websocket, follower.frames(), encode, rt.settings.send_timeout_s, relay, follower=follower)


async def health(request: Request) -> JSON:
    rt = runtime(request)
    connections = rt.slots.by_transport["websocket"] + rt.slots.by_transport["compat"]
    return JSON({"status": "healthy", "service": "orchlog", "websocket_connections": connections})


async def _orchestrator(request: Request) -> dict[str, Any]:
    store = runtime(request).store
    principal = principal_of(request)
    if principal.bound and not principal.has("admin"):
        # an agent-bound token sees only the orchestrators of its agents
        mine = [await store.get_entity("orchestrator_agents", o) for o in await bound_orchestrators(request)]
        rows = sorted((r for r in mine if r and not r["archived"]), key=lambda r: str(r["created_at"]), reverse=True)
    else:
        rows = await store.list_entities("orchestrator_agents", {"archived": 0}, limit=1, offset=0)
    if not rows:
        raise NotFound("no orchestrator agent yet; create one with POST /api/v1/orchestrator-agents")
    return rows[0]


async def get_orchestrator(request: Request) -> JSON:
    orch = await _orchestrator(request)
    return JSON(
        {
            "status": "success",
            "orchestrator": orch,
            "slash_commands": [],
            "agent_templates": [],
            "orchestrator_tools": [],
            "adw_workflows": [],
        }
    )


async def get_headers(request: Request) -> JSON:
    return JSON({"status": "success", "cwd": os.getcwd()})


async def list_agents(request: Request) -> JSON:
    store = runtime(request).store
    agents = await store.list_entities("agents", {"archived": 0}, limit=1000, offset=0)
    principal = principal_of(request)
    if principal.bound and not principal.has("admin"):
        agents = [a for a in agents if a["id"] in principal.agent_ids]
    counts = await store.agent_log_counts([a["id"] for a in agents])
    return JSON({"status": "success", "agents": [{**a, "log_count": counts.get(a["id"], 0)} for a in agents]})


async def get_events(request: Request) -> JSON:
    """Newest ``limit`` events after skipping ``offset`` newest, returned oldest first (by seq)."""
    store = runtime(request).store
    q = request.query_params
    limit = parse_int("limit", q.get("limit"), minimum=1, maximum=10_000) or 50
    offset = parse_int("offset", q.get("offset"), maximum=MAX_OFFSET) or 0
    wanted = [t.strip() for t in (q.get("event_types") or "all").split(",") if t.strip()]
    kinds: list[str] = []
    for name in wanted:
        if name == "all":
            kinds += ["agent_log", "system_log"]
        elif name in SOURCE_TABLES:
            kinds.append(SOURCE_TABLES[name])
        elif name != "orchestrator_chat":
            raise BadParameter("event_types", f"{name!r} is not one of all, agent_logs, system_logs, orchestrator_chat")
    params: dict[str, list[str]] = {"kind": sorted(set(kinds))}
    if q.get("agent_id"):
        try:
            params["agent_id"] = [str(canonical_uuid(q["agent_id"]))]
        except ValueError:
            raise BadParameter("agent_id", f"{q['agent_id']!r} is not a UUID") from None
    if q.get("task_slug"):
        params["task_slug"] = [q["task_slug"]]
    if not kinds:
        return JSON({"status": "success", "events": [], "count": 0})
    flt = principal_of(request).restrict(EventFilter.from_params(params))
    meta = await store.meta()
    events, _ = await store.read_events(flt, before=meta.head_seq + 1, limit=limit + offset)
    page = events[: max(0, len(events) - offset)][-limit:]
    out = [{**e.data, "sourceType": e.kind} for e in page]
    return JSON({"status": "success", "events": out, "count": len(out)})


async def load_chat(request: Request) -> JSON:
    return JSON({"status": "success", "messages": [], "turn_count": 0})
