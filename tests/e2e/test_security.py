"""Security layer (issue 6): scoped tokens, agent binding, WebSocket credentials, Origin, quotas, safe defaults.

Real `orchlog serve` processes and real clients only. Tokens are made with `orchlog token create`
(or seeded with ORCHLOG_TOKENS) exactly as an operator would. Two servers serve the module:

- ``sec``: tokens in the database (read, ingest, admin, a revoked one, and two bound to agent A),
  an extra allowed origin, and a short heartbeat so "nothing arrived" can be proven without sleeping;
- ``tuned``: seeded tokens, ORCHLOG_INGEST_RATE/BURST=50 and ORCHLOG_TICKET_TTL_S=1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from helpers import (
    Server,
    TokenServer,
    agent_event,
    assert_error,
    bearer,
    create_token,
    free_port,
    history,
    orchlog_cli,
    wait_until,
)

A = str(uuid.uuid4())  # the agent the bound tokens may see / post for
B = str(uuid.uuid4())  # another agent they must never see / post for
MARK = "evtdata-" + secrets.token_hex(4)  # in the text of every stored event: must never show up in an error
BAD_TOKEN = "olg_" + secrets.token_urlsafe(32)  # well-formed, unknown
ALLOWED_ORIGIN = "https://dash.example"
RECV_TIMEOUT = 15.0
CREDS = ("none", "bad", "revoked", "read", "ingest", "admin")


@dataclass
class Sec:
    server: Server
    db: Path
    orch: str
    prompt: str
    tokens: dict[str, str]  # role -> secret (read, ingest, admin, revoked, bound_read, bound_ingest)

    def cred(self, name: str) -> str | None:
        if name == "none":
            return None
        return BAD_TOKEN if name == "bad" else self.tokens[name]

    def client(self, role: str | None = None, **kw: Any) -> httpx.AsyncClient:
        headers = bearer(self.cred(role)) if role else {}
        return httpx.AsyncClient(base_url=self.server.url, headers=headers, timeout=30, **kw)

    def ws_url(self, path: str, params: dict[str, Any] | None = None) -> str:
        query = urlencode(params or {}, doseq=True)
        return f"{self.server.ws}{path}{'?' + query if query else ''}"


@pytest.fixture(scope="module")
def sec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sec]:
    directory = tmp_path_factory.mktemp("security")
    db = directory / "orchlog.db"
    tokens = {
        "read": create_token(db, "reader", "read"),
        "ingest": create_token(db, "writer", "ingest"),
        "admin": create_token(db, "boss", "admin"),
        "revoked": create_token(db, "former", "read", "ingest", "admin"),
        "bound_read": create_token(db, "a-reader", "read", agents=(A,)),
        "bound_ingest": create_token(db, "a-writer", "ingest", agents=(A,)),
    }
    done = orchlog_cli("token", "revoke", "former", "--db", str(db))
    assert done.returncode == 0, done.stderr
    server = TokenServer(db, env={"ORCHLOG_ALLOWED_ORIGINS": ALLOWED_ORIGIN, "ORCHLOG_HEARTBEAT_S": "0.25"}).start()
    try:
        with httpx.Client(base_url=server.url, headers=bearer(tokens["admin"]), timeout=30) as c:
            r = c.post("/api/v1/orchestrator-agents", json={"status": "idle"})
            assert r.status_code == 201, r.text
            orch = r.json()["id"]
            for ident, name in ((A, "agent-a"), (B, "agent-b")):
                r = c.post(
                    "/api/v1/agents", json={"id": ident, "orchestrator_agent_id": orch, "name": name, "model": "m"}
                )
                assert r.status_code == 201, r.text
            r = c.post("/api/v1/prompts", json={"author": "engineer", "prompt_text": f"p {MARK}", "agent_id": A})
            assert r.status_code == 201, r.text
            prompt = r.json()["id"]
            items: list[dict[str, Any]] = []
            for i in range(3):
                items.append({"kind": "agent_log", **agent_event(A, f"a-{i} {MARK}")})
                items.append({"kind": "agent_log", **agent_event(B, f"b-{i} {MARK}")})
                items.append({"kind": "system_log", "level": "INFO", "message": f"sys-{i} {MARK}"})
            r = c.post("/api/v1/events", json=items)
            assert r.status_code == 201, r.text
        yield Sec(server, db, orch, prompt, tokens)
    finally:
        server.stop()


TUNED_TOKENS = {name: f"olg_{name}_{secrets.token_urlsafe(24)}" for name in ("quota", "other", "viewer")}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    seeded = ",".join(
        f"{name}:{scope}:{TUNED_TOKENS[name]}"
        for name, scope in (("quota", "ingest"), ("other", "ingest"), ("viewer", "read"))
    )
    env = {
        "ORCHLOG_TOKENS": seeded,
        "ORCHLOG_INGEST_RATE": "50",
        "ORCHLOG_INGEST_BURST": "50",
        "ORCHLOG_TICKET_TTL_S": "1",
    }
    server = TokenServer(tmp_path_factory.mktemp("tuned") / "orchlog.db", env=env).start()
    try:
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------ helpers


def no_leak(text: str, sec: Sec | None = None) -> None:
    """An error body / close reason names neither a token nor any stored event text."""
    secrets_ = [BAD_TOKEN, *TUNED_TOKENS.values(), *(sec.tokens.values() if sec else ())]
    for token in secrets_:
        assert token not in text and token[4:] not in text, f"a token leaked: {text!r}"
    assert MARK not in text, f"event data leaked: {text!r}"
    assert "Traceback" not in text


@dataclass
class WsResult:
    frame: dict[str, Any] | None  # the first frame, when the socket stayed open
    code: int | None  # the close code, when it was refused
    reason: str
    subprotocol: str | None


async def ws_first(url: str, **kw: Any) -> WsResult:
    """Open a WebSocket and report its first frame, or how it was closed. Callers open streams
    without after=0 here: closing a socket in the middle of a replay can stall the close handshake
    (a stream-layer problem reported separately), which is not what these tests are about."""
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", RECV_TIMEOUT)
    async with connect(url, **kw) as ws:
        try:
            raw = await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            return WsResult(None, rcvd.code if rcvd else None, rcvd.reason if rcvd else "", ws.subprotocol)
        return WsResult(orjson.loads(raw), None, "", ws.subprotocol)


async def sse_status(client: httpx.AsyncClient, url: str, **kw: Any) -> httpx.Response:
    """Open an SSE stream and return its response (body read only when it is not a 200 stream)."""
    async with client.stream("GET", url, **kw) as r:
        if r.status_code != 200:
            await r.aread()
        return r


async def sse_frames(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The JSON frames of an event stream (`data:` payloads); the heartbeat comment
    (`: heartbeat head_seq=N`) as a heartbeat frame; `retry:` skipped."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith(": heartbeat head_seq="):
            yield {"type": "heartbeat", "head_seq": int(line.rsplit("=", 1)[1])}
        elif line == "":
            if data:
                yield orjson.loads("\n".join(data))
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


@contextlib.asynccontextmanager
async def open_stream(sec: Sec, transport: str, token: str, params: dict[str, Any]) -> AsyncIterator[Callable[[], Any]]:
    """A live stream as a `next frame` coroutine function, frames normalised to the native shape
    ({"type", "seq", "data"} for events; control frames as they are)."""
    if transport == "sse":
        async with sec.client() as c, c.stream("GET", "/api/v1/stream/sse", params=params, headers=bearer(token)) as r:
            assert r.status_code == 200, await r.aread()
            frames = sse_frames(r)

            async def next_sse() -> dict[str, Any]:
                return await asyncio.wait_for(anext(frames), RECV_TIMEOUT)

            yield next_sse
        return
    path = "/ws" if transport == "compat" else "/api/v1/stream"
    async with connect(sec.ws_url(path, params), additional_headers=bearer(token), ping_interval=None) as ws:

        async def next_ws() -> dict[str, Any]:
            frame = orjson.loads(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT))
            if transport == "compat" and frame.get("type") == "agent_log":
                return {"type": "agent_log", "seq": frame["seq"], "data": frame["log"]}
            return dict(frame)

        yield next_ws


def is_event(frame: dict[str, Any]) -> bool:
    return frame.get("type") in ("agent_log", "system_log") and "seq" in frame


async def post_as(sec: Sec, role: str, path: str, body: Any) -> httpx.Response:
    async with sec.client(role) as c:
        return await c.post(path, json=body)


async def post_b_sys_then_a(sec: Sec) -> tuple[int, int]:
    """As admin: one event of B, one system log, then one event of A; (seq of B's event, seq of A's)."""
    rb = await post_as(sec, "admin", "/api/v1/agent-logs", agent_event(B, f"b-live {MARK}"))
    rs = await post_as(sec, "admin", "/api/v1/system-logs", {"message": f"sys-live {MARK}"})
    ra = await post_as(sec, "admin", "/api/v1/agent-logs", agent_event(A, f"a-live {MARK}"))
    for r in (rb, rs, ra):
        assert r.status_code == 201, r.text
    return rb.json()["items"][0]["seq"], ra.json()["items"][0]["seq"]


def expected_status(cred: str, scope: str) -> int:
    if cred in ("none", "bad", "revoked"):
        return 401
    if cred == "admin" or cred == scope:
        return 200
    return 403


# ------------------------------------------------------------------------------------- the matrix


def _agent_body(sec: Sec) -> dict[str, Any]:
    return {"orchestrator_agent_id": sec.orch, "name": f"m-{uuid.uuid4()}", "model": "m"}


HTTP_MATRIX = [
    pytest.param("POST", "/api/v1/agent-logs", lambda s: agent_event(A, f"m {MARK}"), "ingest", id="post-agent-logs"),
    pytest.param("POST", "/api/v1/system-logs", lambda s: {"message": f"m {MARK}"}, "ingest", id="post-system-logs"),
    pytest.param(
        "POST", "/api/v1/events", lambda s: [{"kind": "system_log", "message": f"m {MARK}"}], "ingest", id="post-events"
    ),
    pytest.param("GET", "/api/v1/events?after=0", None, "read", id="get-events"),
    pytest.param("GET", "/api/v1/agents", None, "read", id="list-agents"),
    pytest.param("GET", "/api/v1/agents/{A}", None, "read", id="get-agent"),
    pytest.param("POST", "/api/v1/agents", _agent_body, "ingest", id="create-agent"),
    pytest.param("PATCH", "/api/v1/agents/{A}", lambda s: {"status": "executing"}, "ingest", id="patch-agent"),
    pytest.param("DELETE", "/api/v1/agents/{victim}", None, "ingest", id="delete-agent"),
    pytest.param("GET", "/api/v1/orchestrator-agents", None, "read", id="list-orchestrators"),
    pytest.param("GET", "/api/v1/orchestrator-agents/{orch}", None, "read", id="get-orchestrator"),
    pytest.param(
        "POST", "/api/v1/orchestrator-agents", lambda s: {"status": "idle"}, "ingest", id="create-orchestrator"
    ),
    pytest.param(
        "PATCH",
        "/api/v1/orchestrator-agents/{orch}",
        lambda s: {"status": "waiting"},
        "ingest",
        id="patch-orchestrator",
    ),
    pytest.param("GET", "/api/v1/prompts", None, "read", id="list-prompts"),
    pytest.param("GET", "/api/v1/prompts/{prompt}", None, "read", id="get-prompt"),
    pytest.param(
        "POST",
        "/api/v1/prompts",
        lambda s: {"author": "engineer", "prompt_text": "m", "agent_id": A},
        "ingest",
        id="create-prompt",
    ),
    pytest.param("POST", "/api/v1/stream/ticket", None, "read", id="stream-ticket"),
    pytest.param("GET", "/api/v1/stream/sse?after=0", None, "read", id="sse"),
    pytest.param("GET", "/get_events", None, "read", id="compat-get-events"),
    pytest.param("GET", "/list_agents", None, "read", id="compat-list-agents"),
    pytest.param("GET", "/get_orchestrator", None, "read", id="compat-get-orchestrator"),
    pytest.param("GET", "/get_headers", None, "read", id="compat-get-headers"),
    pytest.param("POST", "/load_chat", lambda s: {}, "read", id="compat-load-chat"),
]


@pytest.mark.parametrize("cred", CREDS)
@pytest.mark.parametrize(("method", "path", "body", "scope"), HTTP_MATRIX)
async def test_http_endpoint_matrix(
    sec: Sec, cred: str, method: str, path: str, body: Callable[[Sec], Any] | None, scope: str
) -> None:
    """Every HTTP endpoint answers: no, unknown or revoked token → 401 (with WWW-Authenticate);
    a token without the route's scope → 403 (ingest does not imply read, nor read ingest);
    the scope (or admin) → 2xx. Refusals are the JSON error shape and leak no token and no event."""
    victim = ""
    if "{victim}" in path:
        async with sec.client("admin") as c:
            r = await c.post("/api/v1/agents", json=_agent_body(sec))
            assert r.status_code == 201, r.text
            victim = r.json()["id"]
    url = path.format(A=A, orch=sec.orch, prompt=sec.prompt, victim=victim)
    kw: dict[str, Any] = {"headers": bearer(sec.cred(cred))}
    if body is not None:
        kw["json"] = body(sec)
    async with sec.client() as c, c.stream(method, url, **kw) as r:
        if not (r.status_code == 200 and "/sse" in url):
            await r.aread()
    want = expected_status(cred, scope)
    if want == 200:
        assert 200 <= r.status_code < 300, (r.status_code, r.text)
        return
    error = assert_error(r, want, "unauthorized" if want == 401 else "forbidden")
    no_leak(r.text, sec)
    assert "items" not in r.json() and "events" not in r.json()
    if want == 401:
        assert r.headers.get("www-authenticate", "").lower().startswith("bearer"), r.headers
    else:
        assert scope in error["message"], error


WS_PATHS = [
    pytest.param("/api/v1/stream", "hello", id="stream"),
    pytest.param("/ws", "connection_established", id="compat-ws"),
]


@pytest.mark.parametrize("cred", CREDS)
@pytest.mark.parametrize(("path", "first"), WS_PATHS)
async def test_websocket_matrix(sec: Sec, cred: str, path: str, first: str) -> None:
    """Both WebSockets: no, unknown or revoked token → close 4401; an ingest-only token → 4403;
    read or admin → the stream opens with its first frame. Close reasons leak no token or event."""
    res = await ws_first(sec.ws_url(path), additional_headers=bearer(sec.cred(cred)))
    want = expected_status(cred, "read")
    if want == 200:
        assert res.frame is not None and res.frame["type"] == first, res
        return
    assert res.frame is None, f"{cred} token got a frame: {res.frame}"
    assert res.code == (4401 if want == 401 else 4403), res
    no_leak(res.reason, sec)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/health"])
@pytest.mark.parametrize("cred", ["none", "read", "ingest", "admin"])
async def test_health_endpoints_stay_open(sec: Sec, path: str, cred: str) -> None:
    """Liveness and readiness answer 200 without any token (and with any valid one)."""
    async with sec.client(None if cred == "none" else cred) as c:
        r = await c.get(path)
    assert r.status_code == 200, r.text


# ------------------------------------------------------------------------------ agent-bound tokens


@pytest.mark.parametrize(
    "params",
    [{}, {"kind": "system_log"}, {"kind": "agent_log,system_log"}, {"agent_id": A}, {"contains": "b-"}],
    ids=["no-filter", "kind-system", "kind-both", "agent-A", "text-of-B"],
)
async def test_bound_read_history_only_its_agent(sec: Sec, params: dict[str, Any]) -> None:
    """History with a token bound to A holds exactly A's events matching the filter, whatever the
    filter (never B's, never system logs), while an admin sees more with the same filter."""
    async with sec.client("bound_read") as bound, sec.client("admin") as admin:
        got = await history(bound, params)
        want = await history(admin, {**params, "agent_id": A})
        wider = await history(admin, params)
    assert all(e["kind"] == "agent_log" and e["data"]["agent_id"] == A for e in got), got
    assert [e["seq"] for e in got] == [e["seq"] for e in want]
    if "agent_id" not in params:
        assert len(wider) > len(got), "the data set must hold events the bound token may not see"


@pytest.mark.parametrize(
    "params",
    [{"agent_id": B}, {"agent_id": f"{A},{B}"}, {"agent_id": [A, B]}],
    ids=["B", "A-comma-B", "A-and-B"],
)
async def test_bound_read_asking_for_another_agent_is_403(sec: Sec, params: dict[str, Any]) -> None:
    """A token bound to A asking for B (alone or with A) is refused 403 on history, SSE and the
    WebSocket (4403): widening is an error, not a silent narrowing."""
    async with sec.client("bound_read") as c:
        r = await c.get("/api/v1/events", params={**params, "after": 0})
        assert_error(r, 403, "forbidden")
        no_leak(r.text, sec)
        r = await sse_status(c, "/api/v1/stream/sse", params={**params, "after": 0})
        assert_error(r, 403, "forbidden")
    res = await ws_first(
        sec.ws_url("/api/v1/stream", {**params, "after": 0}), additional_headers=bearer(sec.tokens["bound_read"])
    )
    assert res.frame is None and res.code == 4403, res
    no_leak(res.reason, sec)


async def test_bound_read_compat_get_events_only_its_agent(sec: Sec) -> None:
    """The compat history (/get_events) with a token bound to A: only A's agent logs, system logs
    asked for explicitly → none, agent_id=B → 403."""
    async with sec.client("bound_read") as c:
        r = await c.get("/get_events", params={"limit": 1000})
        assert r.status_code == 200, r.text
        events = r.json()["events"]
        assert events and all(e["sourceType"] == "agent_log" and e["agent_id"] == A for e in events), events
        r = await c.get("/get_events", params={"event_types": "system_logs"})
        assert r.status_code == 200 and r.json()["events"] == [], r.text
        r = await c.get("/get_events", params={"agent_id": B})
        assert_error(r, 403, "forbidden")


@pytest.mark.parametrize(
    ("transport", "params"),
    [
        ("ws", {}),
        ("ws", {"kind": "agent_log,system_log"}),
        ("ws", {"agent_id": A}),
        ("sse", {}),
        ("sse", {"kind": "agent_log,system_log"}),
        ("compat", {}),
    ],
    ids=["ws", "ws-kind-both", "ws-agent-A", "sse", "sse-kind-both", "compat-ws"],
)
async def test_bound_read_stream_replay_and_live_only_its_agent(
    sec: Sec, transport: str, params: dict[str, Any]
) -> None:
    """A stream opened with a token bound to A from after=0 replays exactly A's events, then live
    delivers A's next event and nothing of B or the system logs committed just before it."""
    async with sec.client("admin") as admin:
        before = [e["seq"] for e in await history(admin, {"agent_id": A})]
    seen: list[dict[str, Any]] = []
    async with open_stream(sec, transport, sec.tokens["bound_read"], {**params, "after": 0}) as next_frame:
        # replay: up to `live` (native) or to A's last stored event (compat has no live marker)
        while True:
            frame = await next_frame()
            if is_event(frame):
                seen.append(frame)
            if frame.get("type") == "live" or (transport == "compat" and seen and seen[-1]["seq"] >= before[-1]):
                break
        _, a_seq = await post_b_sys_then_a(sec)
        while not seen or seen[-1]["seq"] < a_seq:
            frame = await next_frame()
            if is_event(frame):
                seen.append(frame)
    assert all(f["type"] == "agent_log" and f["data"]["agent_id"] == A for f in seen), seen
    assert [f["seq"] for f in seen] == [*before, a_seq]


@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_bound_read_system_log_filter_streams_nothing(sec: Sec, transport: str) -> None:
    """kind=system_log with a token bound to A: no replay and no live event at all (not B's, not the
    system logs), proven by two heartbeats past the head; an unbound read token with the same filter
    does get the system log (the filter itself works)."""
    params = {"kind": "system_log", "after": 0}
    async with (
        open_stream(sec, transport, sec.tokens["bound_read"], params) as bound_next,
        open_stream(sec, "ws", sec.tokens["read"], params) as control_next,
    ):
        events = []
        while (frame := await bound_next())["type"] != "live":
            if is_event(frame):
                events.append(frame)
        while (await control_next())["type"] != "live":
            pass
        b_seq, a_seq = await post_b_sys_then_a(sec)
        while not is_event(frame := await control_next()):
            pass
        assert frame["type"] == "system_log" and b_seq < frame["seq"] < a_seq, frame
        beats_past_head = 0
        while beats_past_head < 2:
            frame = await bound_next()
            if is_event(frame):
                events.append(frame)
            # the first heartbeat past the head may race the fan-out; a second one cannot
            if frame.get("type") == "heartbeat" and frame["head_seq"] >= a_seq:
                beats_past_head += 1
        assert events == [], events


async def test_bound_ingest_posts_only_for_its_agent(sec: Sec) -> None:
    """A token bound to A posts A's events (201), but posting for B, posting system logs (on either
    endpoint) or a batch mixing A and B is 403 and writes nothing."""
    tag = uuid.uuid4().hex
    async with sec.client("bound_ingest") as c:
        r = await c.post("/api/v1/agent-logs", json=agent_event(A, f"ok-{tag}"))
        assert r.status_code == 201, r.text
        r = await c.post("/api/v1/events", json={"kind": "agent_log", **agent_event(A, f"ok2-{tag}")})
        assert r.status_code == 201, r.text
        refused = [
            await c.post("/api/v1/agent-logs", json=agent_event(B, f"no-{tag}")),
            await c.post("/api/v1/agent-logs", json=[agent_event(A, f"no-{tag}"), agent_event(B, f"no-{tag}")]),
            await c.post("/api/v1/system-logs", json={"message": f"no-{tag}"}),
            await c.post("/api/v1/events", json={"kind": "system_log", "message": f"no-{tag}"}),
            await c.post("/api/v1/events", json={"kind": "agent_log", **agent_event(B, f"no-{tag}")}),
        ]
    for r in refused:
        assert_error(r, 403, "forbidden")
        no_leak(r.text, sec)
        assert f"no-{tag}" not in r.text
    async with sec.client("admin") as admin:
        texts = [e["data"].get("content") or e["data"].get("message") for e in await history(admin, {"contains": tag})]
    assert sorted(texts) == sorted([f"ok-{tag}", f"ok2-{tag}"])


async def test_bound_ingest_entity_writes_only_its_agent(sec: Sec) -> None:
    """A token bound to A may update A, but not B, and creates no entities (403)."""
    async with sec.client("bound_ingest") as c:
        r = await c.patch(f"/api/v1/agents/{A}", json={"status": "waiting"})
        assert r.status_code == 200, r.text
        assert_error(await c.patch(f"/api/v1/agents/{B}", json={"status": "waiting"}), 403, "forbidden")
        assert_error(await c.delete(f"/api/v1/agents/{B}"), 403, "forbidden")
        assert_error(await c.post("/api/v1/agents", json=_agent_body(sec)), 403, "forbidden")
        assert_error(await c.post("/api/v1/orchestrator-agents", json={"status": "idle"}), 403, "forbidden")


# ------------------------------------------------------------------------ WebSocket credentials


@pytest.mark.parametrize(("path", "first"), WS_PATHS)
@pytest.mark.parametrize("method", ["header", "subprotocol"])
async def test_websocket_token_methods(sec: Sec, path: str, first: str, method: str) -> None:
    """A read token opens both WebSockets as an Authorization header or as the subprotocol
    `bearer.<token>`; offered with `orchlog.v1`, the server answers `orchlog.v1` (the token is not echoed)."""
    token = sec.tokens["read"]
    if method == "header":
        res = await ws_first(sec.ws_url(path), additional_headers=bearer(token))
        assert res.subprotocol is None
    else:
        res = await ws_first(sec.ws_url(path), subprotocols=["orchlog.v1", f"bearer.{token}"])
        assert res.subprotocol == "orchlog.v1", res
    assert res.frame is not None and res.frame["type"] == first, res


@pytest.mark.parametrize("cred", ["bad", "revoked", "ingest"])
async def test_websocket_subprotocol_refusals(sec: Sec, cred: str) -> None:
    """The subprotocol credential is checked like the header: unknown/revoked → 4401, ingest → 4403."""
    token = sec.cred(cred)
    res = await ws_first(sec.ws_url("/api/v1/stream"), subprotocols=["orchlog.v1", f"bearer.{token}"])
    assert res.frame is None and res.code == (4403 if cred == "ingest" else 4401), res
    no_leak(res.reason, sec)


async def new_ticket(base_url: str, token: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(token), timeout=30) as c:
        r = await c.post("/api/v1/stream/ticket")
    assert r.status_code == 201, r.text
    body = r.json()
    assert isinstance(body["ticket"], str) and body["ticket"] and body["expires_in"] > 0, body
    assert token not in r.text and token[4:] not in r.text
    return str(body["ticket"])


@pytest.mark.parametrize(("path", "first"), [*WS_PATHS, pytest.param("/api/v1/stream/sse", None, id="sse")])
async def test_ticket_works_once(sec: Sec, path: str, first: str | None) -> None:
    """A ticket from POST /api/v1/stream/ticket opens a stream with ?ticket= (no other credential)
    exactly once: the second use is refused (4401 / 401)."""
    ticket = await new_ticket(sec.server.url, sec.tokens["read"])
    if first is None:
        async with sec.client() as c:
            r = await sse_status(c, path, params={"ticket": ticket, "after": 0})
            assert r.status_code == 200, r.text
            r = await sse_status(c, path, params={"ticket": ticket, "after": 0})
            assert_error(r, 401, "unauthorized")
        return
    res = await ws_first(sec.ws_url(path, {"ticket": ticket}))
    assert res.frame is not None and res.frame["type"] == first, res
    res = await ws_first(sec.ws_url(path, {"ticket": ticket}))
    assert res.frame is None and res.code == 4401, res


async def test_ticket_is_not_an_http_credential_and_keeps_the_binding(sec: Sec) -> None:
    """A ticket authenticates streams only (plain HTTP with ?ticket= is 401), and a ticket issued
    to a token bound to A carries that binding (asking for B → 4403; replay shows only A)."""
    ticket = await new_ticket(sec.server.url, sec.tokens["read"])
    async with sec.client() as c:
        assert_error(await c.get("/api/v1/events", params={"ticket": ticket}), 401, "unauthorized")
    ticket = await new_ticket(sec.server.url, sec.tokens["bound_read"])
    res = await ws_first(sec.ws_url("/api/v1/stream", {"ticket": ticket, "agent_id": B, "after": 0}))
    assert res.frame is None and res.code == 4403, res
    ticket = await new_ticket(sec.server.url, sec.tokens["bound_read"])
    async with connect(sec.ws_url("/api/v1/stream", {"ticket": ticket, "after": 0}), ping_interval=None) as ws:
        frames = []
        while (frame := orjson.loads(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)))["type"] != "live":
            frames.append(frame)
    events = [f for f in frames if is_event(f)]
    assert events and all(f["type"] == "agent_log" and f["data"]["agent_id"] == A for f in events), events


async def test_ticket_expires(tuned: Server) -> None:
    """With ORCHLOG_TICKET_TTL_S=1 a fresh ticket opens the stream, but one left unused for longer
    than the TTL is refused with 4401 (the one test that waits on the clock: expiry is the behaviour)."""
    fresh = await new_ticket(tuned.url, TUNED_TOKENS["viewer"])
    res = await ws_first(f"{tuned.ws}/api/v1/stream?ticket={fresh}")
    assert res.frame is not None and res.frame["type"] == "hello", res
    stale = await new_ticket(tuned.url, TUNED_TOKENS["viewer"])
    await asyncio.sleep(1.5)  # TTL 1 s, counted from before the ticket was answered
    res = await ws_first(f"{tuned.ws}/api/v1/stream?ticket={stale}")
    assert res.frame is None and res.code == 4401, res


# ---------------------------------------------------------------------------------- Origin / CORS

REFUSED_ORIGINS = ["https://evil.example", "http://localhost.evil.example", "http://127.0.0.1.evil.example", "null"]
ACCEPTED_ORIGINS = [None, "http://localhost:5173", "http://127.0.0.1:3000", "http://[::1]:8080", ALLOWED_ORIGIN]


@pytest.mark.parametrize("origin", REFUSED_ORIGINS)
@pytest.mark.parametrize("path", ["/api/v1/stream", "/ws"])
async def test_foreign_origin_refused_on_websockets(sec: Sec, origin: str, path: str) -> None:
    """A page on a foreign origin cannot open a WebSocket even with a valid token or ticket: 1008."""
    res = await ws_first(sec.ws_url(path), origin=origin, additional_headers=bearer(sec.tokens["read"]))
    assert res.frame is None and res.code == 1008, res
    ticket = await new_ticket(sec.server.url, sec.tokens["read"])
    res = await ws_first(sec.ws_url(path, {"ticket": ticket}), origin=origin)
    assert res.frame is None and res.code == 1008, res


@pytest.mark.parametrize("origin", REFUSED_ORIGINS)
async def test_foreign_origin_refused_on_sse(sec: Sec, origin: str) -> None:
    """SSE from a foreign origin is 403 even with a valid token."""
    async with sec.client("read") as c:
        r = await sse_status(c, "/api/v1/stream/sse", headers={"Origin": origin})
    assert_error(r, 403, "forbidden_origin")
    no_leak(r.text, sec)


@pytest.mark.parametrize("origin", ACCEPTED_ORIGINS, ids=lambda o: o or "no-origin")
async def test_allowed_origins_open_streams(sec: Sec, origin: str | None) -> None:
    """No Origin (not a browser), loopback origins on any port and ORCHLOG_ALLOWED_ORIGINS open the
    WebSocket and SSE streams."""
    res = await ws_first(sec.ws_url("/api/v1/stream"), origin=origin, additional_headers=bearer(sec.tokens["read"]))
    assert res.frame is not None and res.frame["type"] == "hello", res
    async with sec.client("read") as c:
        r = await sse_status(c, "/api/v1/stream/sse", headers={"Origin": origin} if origin else {})
    assert r.status_code == 200, r.text


async def test_same_origin_sse_allowed_other_host_refused(sec: Sec) -> None:
    """Behind a name (Host header), a page served by orchlog itself (same origin) opens SSE; the
    same Origin against another Host is foreign (403)."""
    async with sec.client("read") as c:
        r = await sse_status(
            c,
            "/api/v1/stream/sse",
            headers={"Host": "logs.team.example:8000", "Origin": "http://logs.team.example:8000"},
        )
        assert r.status_code == 200, r.text
        r = await sse_status(
            c,
            "/api/v1/stream/sse",
            headers={"Host": "other.team.example:8000", "Origin": "http://logs.team.example:8000"},
        )
        assert_error(r, 403, "forbidden_origin")


@pytest.mark.parametrize("origin", ["http://localhost:5173", "http://127.0.0.1:8080", ALLOWED_ORIGIN])
@pytest.mark.parametrize("path", ["/api/v1/events", "/get_events", "/api/v1/agent-logs"])
async def test_cors_preflight_answered_for_allowed_origins(sec: Sec, origin: str, path: str) -> None:
    """A CORS preflight (no token: browsers never send one) from a loopback or listed origin is
    answered 200 allowing that origin and the Authorization header."""
    async with sec.client() as c:
        r = await c.options(
            path,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST" if "logs" in path else "GET",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
    assert r.status_code == 200, r.text
    assert r.headers.get("access-control-allow-origin") == origin, r.headers
    assert "authorization" in r.headers.get("access-control-allow-headers", "").lower(), r.headers


async def test_cors_foreign_origin_gets_no_allowance(sec: Sec) -> None:
    """A preflight or request from a foreign origin is not granted CORS (no allow-origin for it);
    a loopback origin's real requests carry the allowance, refusals included (so a page can ask for a token)."""
    async with sec.client() as c:
        r = await c.options(
            "/api/v1/events",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert r.headers.get("access-control-allow-origin") not in ("https://evil.example", "*"), r.headers
        r = await c.get("/api/v1/events", headers={"Origin": "https://evil.example", **bearer(sec.tokens["read"])})
        assert r.headers.get("access-control-allow-origin") not in ("https://evil.example", "*"), r.headers
        r = await c.get("/api/v1/events", headers={"Origin": "http://localhost:5173", **bearer(sec.tokens["read"])})
        assert r.status_code == 200 and r.headers.get("access-control-allow-origin") == "http://localhost:5173"
        r = await c.get("/api/v1/events", headers={"Origin": "http://localhost:5173"})
        assert r.status_code == 401 and r.headers.get("access-control-allow-origin") == "http://localhost:5173"


# ------------------------------------------------------------------------------------- rate limit


async def test_ingest_rate_limit_429_retry_after_then_succeeds(tuned: Server) -> None:
    """ORCHLOG_INGEST_RATE=50 / BURST=50: a burst of 200 events (20 concurrent requests of 10) gets
    429 rate_limited with an integer Retry-After for what exceeds the bucket, refused requests write
    nothing, another token is not throttled, and after Retry-After seconds the same request succeeds."""
    tag = uuid.uuid4().hex
    quota = httpx.AsyncClient(base_url=tuned.url, headers=bearer(TUNED_TOKENS["quota"]), timeout=30)
    other = httpx.AsyncClient(base_url=tuned.url, headers=bearer(TUNED_TOKENS["other"]), timeout=30)
    viewer = httpx.AsyncClient(base_url=tuned.url, headers=bearer(TUNED_TOKENS["viewer"]), timeout=30)
    async with quota, other, viewer:

        def batch(i: int) -> list[dict[str, Any]]:
            return [{"message": f"{tag} r{i} e{j}"} for j in range(10)]

        started = time.monotonic()
        replies = await asyncio.gather(*(quota.post("/api/v1/system-logs", json=batch(i)) for i in range(20)))
        elapsed = time.monotonic() - started
        ok = [r for r in replies if r.status_code == 201]
        limited = [r for r in replies if r.status_code == 429]
        assert len(ok) + len(limited) == 20, [r.status_code for r in replies]
        assert limited, "a burst of 200 events against a 50-event bucket must be throttled"
        assert 10 * len(ok) <= 50 + 50 * elapsed + 10, (len(ok), elapsed)
        for r in limited:
            assert_error(r, 429, "rate_limited")
            assert r.headers["retry-after"].isdigit() and int(r.headers["retry-after"]) >= 1, r.headers
            no_leak(r.text)
        stored = await history(viewer, {"contains": tag})
        assert len(stored) == 10 * len(ok), "a 429 must write nothing"

        r = await other.post("/api/v1/system-logs", json={"message": f"{tag} other"})
        assert r.status_code == 201, "the quota is per token"

        retry_after = int(limited[-1].headers["retry-after"])
        refused_at = time.monotonic()
        await wait_until(lambda: time.monotonic() - refused_at >= retry_after, retry_after + 5, "Retry-After to pass")
        r = await quota.post("/api/v1/system-logs", json=batch(99))
        assert r.status_code == 201, r.text


# --------------------------------------------------------------------------------- safe defaults


def test_non_loopback_without_tokens_is_refused(tmp_path: Path) -> None:
    """`serve --host 0.0.0.0` on a database without tokens exits non-zero before listening, saying
    how to proceed (--insecure-no-auth, or create a token), without a traceback."""
    done = orchlog_cli(
        "serve", "--db", str(tmp_path / "o.db"), "--host", "0.0.0.0", "--port", str(free_port()), timeout=30
    )
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "--insecure-no-auth" in out and "token" in out, out
    assert "Traceback" not in out, out


@pytest.mark.parametrize("how", ["flag", "env"])
async def test_insecure_no_auth_serves_open_on_all_interfaces(
    tmp_path: Path, server_factory: Callable[..., Server], how: str
) -> None:
    """With --insecure-no-auth (or ORCHLOG_INSECURE_NO_AUTH=1) a server without tokens binds 0.0.0.0
    (reachable on 127.0.0.1), serves without a token, and warns in its log that it is open."""
    args = ("--host", "0.0.0.0", "--insecure-no-auth") if how == "flag" else ("--host", "0.0.0.0")
    env = {"ORCHLOG_INSECURE_NO_AUTH": "1"} if how == "env" else {}
    srv = server_factory(*args, env=env, db=tmp_path / "open.db")
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as c:
        r = await c.get("/api/v1/events")
    assert r.status_code == 200, r.text
    assert "insecure-no-auth" in srv.log_text() and "OPEN" in srv.log_text(), srv.log_text()


@pytest.mark.parametrize("how", ["cli-token", "seeded-token"])
async def test_non_loopback_with_a_token_starts_and_requires_it(tmp_path: Path, how: str) -> None:
    """With a token configured (database or ORCHLOG_TOKENS) `serve --host 0.0.0.0` starts without
    --insecure-no-auth, and requests then need that token."""
    db = tmp_path / "closed.db"
    env: dict[str, str] = {}
    if how == "cli-token":
        token = create_token(db, "ops", "read")
    else:
        token = "olg_" + secrets.token_urlsafe(32)
        env["ORCHLOG_TOKENS"] = f"ops:read:{token}"
    srv = TokenServer(db, "--host", "0.0.0.0", env=env)
    try:
        srv.start()
        async with httpx.AsyncClient(base_url=srv.url, timeout=30) as c:
            assert_error(await c.get("/api/v1/events"), 401, "unauthorized")
            r = await c.get("/api/v1/events", headers=bearer(token))
            assert r.status_code == 200, r.text
    finally:
        srv.stop()
    assert token[4:] not in srv.log_text()


# ----------------------------------------------------------------------- tokens never in the clear


async def test_tokens_never_logged_listed_or_stored(sec: Sec, tuned: Server) -> None:
    """After every credential was used (good, bad, revoked, subprotocol, ticket; seeded tokens on the
    other server), no token appears in either server's log, in `orchlog token list`, in any column of
    api_tokens, or anywhere in the database files."""
    # use each kind of credential once more, so this test stands on its own
    ticket = await new_ticket(sec.server.url, sec.tokens["read"])
    await ws_first(sec.ws_url("/api/v1/stream", {"ticket": ticket}))
    for cred in CREDS:
        await ws_first(sec.ws_url("/api/v1/stream"), subprotocols=["orchlog.v1", f"bearer.{sec.cred(cred)}"])
        async with sec.client(cred if cred != "none" else None) as c:
            await c.get("/api/v1/events")
            await c.post("/api/v1/system-logs", json={"message": "x"})
    async with httpx.AsyncClient(base_url=tuned.url, timeout=30) as c:
        for token in TUNED_TOKENS.values():
            await c.get("/api/v1/events", headers=bearer(token))

    all_tokens = [*sec.tokens.values(), BAD_TOKEN, *TUNED_TOKENS.values()]
    listing = orchlog_cli("token", "list", "--db", str(sec.db))
    assert listing.returncode == 0, listing.stderr
    for name in ("reader", "writer", "boss", "former", "a-reader", "a-writer"):
        assert name in listing.stdout
    texts = {
        "sec log": sec.server.log_text(),
        "tuned log": tuned.log_text(),
        "token list": listing.stdout + listing.stderr,
    }
    assert "/api/v1/events" in texts["sec log"], "the server log must record requests for this search to mean anything"
    for where, text in texts.items():
        for token in all_tokens:
            assert token[4:] not in text, f"a token appears in the {where}"

    conn = sqlite3.connect(f"file:{sec.db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT * FROM api_tokens").fetchall()
    finally:
        conn.close()
    assert len(rows) == 6
    cells = " ".join(str(cell) for row in rows for cell in row)
    assert "olg_" not in cells
    for token in sec.tokens.values():
        assert token[4:] not in cells
    blobs = b"".join(p.read_bytes() for p in sec.db.parent.glob(sec.db.name + "*") if p.is_file())
    for token in sec.tokens.values():
        assert token[4:].encode() not in blobs, "a token is stored in the clear"


async def test_stream_limits_per_client_and_per_token(tmp_path: Path) -> None:
    """Open streams are limited per client address (and per token): the one over the limit is
    closed with 4429 and a reason naming the limit; closing one frees its slot."""
    srv = Server(tmp_path / "limits.db", env={"ORCHLOG_MAX_STREAMS_PER_CLIENT": "3"}).start()
    try:
        url = f"{srv.ws}/api/v1/stream"
        open_ = [await connect(url, ping_interval=None) for _ in range(3)]
        for ws in open_:
            assert json.loads(await ws.recv())["type"] == "hello"
        extra = await connect(url, ping_interval=None)
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(extra.recv(), 10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 4429
        assert "per-address" in info.value.rcvd.reason
        async with httpx.AsyncClient() as c:
            r = await c.get(f"{srv.url}/api/v1/stream/sse")
        assert r.status_code == 429 and "Retry-After" in r.headers
        await open_[0].close()

        async def fourth_opens() -> bool:
            ws = await connect(url, ping_interval=None)
            try:
                return json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "hello"
            except ConnectionClosed:
                return False
            finally:
                await ws.close()

        await wait_until(fourth_opens, 10, "a freed slot")
        for ws in open_[1:]:
            await ws.close()
    finally:
        srv.stop()
