// orchlog dashboard: history + live over the public API only (WebSocket, SSE fallback).
// Gapless by construction: the page remembers the last seq it received and resumes after it.
// Frames are taken in as they arrive (cheap), the DOM is touched once per animation frame, and
// only the rows on screen exist in the DOM (vlist.js), so a burst of tens of thousands of events
// per second stays current.

import { esc, formatAgo, formatDuration, formatTime, prettyValue, richText, stripAnsi, zoneLabel } from "./format.js";
import { VirtualList } from "./vlist.js";

const DEFAULT_MAX_EVENTS = 100_000; // held in memory; override with ?max_events= (kept in the URL)
const LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
const CONTEXT = 100; // rows loaded before a "view in context" target
const OLDER_PAGE = 200;
const PRE = "PreToolUse";
const POSTS = new Set(["PostToolUse", "PostToolUseFailure"]);
const TEXT_FILTERS = ["session_id", "task_slug", "adw_id"];

const $ = (id) => document.getElementById(id);
const params0 = new URLSearchParams(location.search);

const state = {
  events: [], // {type, seq, data} ascending: what the page holds
  rows: [], // what the list shows: {ev, post?} (a tool call's PostToolUse joins its PreToolUse)
  pendingPre: new Map(), // pairing key -> [row] waiting for their PostToolUse
  lastSeq: null, // resume point (the highest seq taken from the stream)
  head: 0, // the server's head seq as last seen (hello, heartbeat, any event, history)
  agents: new Map(), // id -> row from /list_agents and `agent` frames, plus log_count
  countsHead: Infinity, // /list_agents counted every event up to this seq
  lastEventAt: new Map(), // agent id -> newest timestamp seen
  filters: readFilters(params0),
  maxEvents: Math.max(100, Number(params0.get("max_events")) || DEFAULT_MAX_EVENTS),
  around: params0.get("around") != null ? Number(params0.get("around")) : null,
  utc: localStorage.getItem("orchlog-utc") === "1",
  pair: localStorage.getItem("orchlog-pair") !== "0",
  paused: false,
  buffered: [], // received while paused
  follow: true, // stick to the newest row
  unseen: 0, // rows added below the viewport while the reader is scrolled up
  detached: false, // the newest events were let go: live is off until "jump to latest"
  protect: null, // [fromSeq, toSeq] just loaded by "Load older": never let go
  live: false,
  socket: null,
  sse: null,
  attempts: 0,
  wsFailures: 0,
  useSSE: false,
  rateWindow: [],
  token: sessionStorage.getItem("orchlog-token") || "",
  tokenError: "",
  generation: 0, // bumps on every (re)subscription with new filters
  helloAfter: null,
  letGo: 0, // events let go from memory since the last notice
  values: { session_id: new Set(), task_slug: new Set(), adw_id: new Set(), tool: new Set() },
};

// ------------------------------------------------------------------ filters <-> URL

function readFilters(p) {
  const f = {
    levels: (p.get("level") || "").split(",").filter(Boolean),
    agents: (p.get("agent_id") || "").split(",").filter(Boolean),
    kind: p.get("kind") || "",
    category: p.get("event_category") || "",
    etype: p.get("event_type") || "",
    q: p.get("q") || "",
    since: p.get("since") || "",
    until: p.get("until") || "",
    tool: p.get("tool") || "",
    after: p.get("after"),
  };
  for (const name of TEXT_FILTERS) f[name] = p.get(name) || "";
  return f;
}

// the filters the server applies (stream and history)
function filterParams(f = state.filters) {
  const p = new URLSearchParams();
  if (f.levels.length) p.set("level", f.levels.join(","));
  if (f.agents.length) p.set("agent_id", f.agents.join(","));
  if (f.kind) p.set("kind", f.kind);
  if (f.category) p.set("event_category", f.category);
  if (f.etype) p.set("event_type", f.etype);
  for (const name of TEXT_FILTERS) if (f[name]) p.set(name, f[name]);
  if (f.since) p.set("since", f.since);
  if (f.until) p.set("until", f.until);
  if (f.q) p.set("q", f.q);
  return p;
}

function serverFiltered() {
  return filterParams().toString() !== "";
}

function writeURL() {
  const p = filterParams();
  if (state.filters.tool) p.set("tool", state.filters.tool);
  if (state.around != null) p.set("around", String(state.around));
  if (params0.get("max_events")) p.set("max_events", params0.get("max_events"));
  const url = location.pathname + (p.toString() ? "?" + p : "");
  history.replaceState(null, "", url);
}

function syncControls() {
  const f = state.filters;
  for (const chip of document.querySelectorAll("#levels .chip")) {
    chip.classList.toggle("on", f.levels.includes(chip.dataset.level));
  }
  $("kind").value = f.kind;
  $("category").value = f.category;
  $("etype").value = f.etype;
  $("search").value = f.q;
  $("tool").value = f.tool;
  for (const name of TEXT_FILTERS) $(name).value = f[name];
  for (const b of document.querySelectorAll("#range button[data-since]")) {
    b.classList.toggle("on", b.dataset.since === f.since && !f.until);
  }
  $("range-label").textContent = rangeLabel();
  renderAgents();
}

function rangeLabel() {
  const { since, until } = state.filters;
  if (!since && !until) return "all time";
  const show = (v) => (/^\d/.test(v) && v.includes("T") ? fmtTs(v) : v + " ago");
  if (since && !until) return `since ${show(since)}`;
  if (!since) return `until ${show(until)}`;
  return `${show(since)} → ${show(until)}`;
}

function setFilters(change) {
  Object.assign(state.filters, change, { after: null });
  state.around = null;
  writeURL();
  syncControls();
  restart();
}

// ------------------------------------------------------------------ HTTP helpers

async function api(path, init = {}) {
  const headers = Object.assign({}, init.headers || {});
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const r = await fetch(path, Object.assign({}, init, { headers }));
  if (r.status === 401 || r.status === 403) {
    askToken(r.status === 401 ? refusedText(401) : refusedText(403));
    throw new Error(r.status === 401 ? "unauthorized" : "forbidden");
  }
  if (!r.ok) throw new Error(`${r.status} ${await r.text()}`);
  return r.json();
}

function refusedText(code) {
  if (!state.token) return "This server needs a token; none is set.";
  if (code === 401 || code === 4401) return "The server refused this token (unknown, revoked or mistyped).";
  return "This token is valid but may not read these events (it lacks the read scope or is bound to other agents).";
}

function askToken(message = "") {
  const dialog = $("token-dialog");
  $("token-error").textContent = message;
  $("token-error").hidden = !message;
  if (!dialog.open) {
    $("token-input").value = state.token;
    dialog.showModal();
  }
}

// ------------------------------------------------------------------ agents sidebar

async function loadAgents() {
  try {
    const body = await api("/list_agents");
    // every event up to this head is in log_count; only later live events are added on top
    const meta = await api("/api/v1/events?limit=1&before=1");
    state.countsHead = meta.head_seq;
    noteHead(meta.head_seq);
    const seen = new Set();
    for (const a of body.agents) {
      seen.add(a.id);
      state.agents.set(a.id, Object.assign(state.agents.get(a.id) || {}, a));
    }
    for (const id of [...state.agents.keys()]) if (!seen.has(id)) state.agents.delete(id);
    renderAgents();
  } catch (e) {
    /* the stream still works without names */
  }
}

let agentsRefresh = 0;
let agentsTimer = null;
function refreshAgentsSoon() {
  if (agentsTimer) return;
  const wait = Math.max(0, 5000 - (Date.now() - agentsRefresh));
  agentsTimer = setTimeout(() => {
    agentsTimer = null;
    agentsRefresh = Date.now();
    loadAgents();
  }, wait);
}

function agentColor(name) {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  // golden-angle spread: names that differ in one character (agent-1, agent-2) get distinct hues
  return `hsl(${Math.round((h * 137.508) % 360)} 65% 55%)`;
}

const num = new Intl.NumberFormat("en-US");
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

let agentsDirty = false;
function renderAgents() {
  agentsDirty = false;
  const ul = $("agents");
  ul.replaceChildren();
  const list = [...state.agents.values()].filter((a) => !a.archived).sort((a, b) => a.name.localeCompare(b.name));
  $("agent-total").textContent = list.length ? `${list.length}` : "";
  for (const a of list) {
    const li = document.createElement("li");
    li.className = "agent" + (state.filters.agents.includes(a.id) ? " on" : "");
    li.dataset.id = a.id;
    li.tabIndex = 0;
    const cost = Number(a.total_cost ?? 0);
    const last = state.lastEventAt.get(a.id);
    li.innerHTML = `<div class="agent-head"><span class="dot" data-status="${esc(a.status || "idle")}"></span>
      <span class="name"></span><span class="count" title="events">${num.format(a.log_count ?? 0)}</span></div>
      <div class="agent-meta"><span class="model">${esc(a.model || "")}</span>
      <span class="status">${esc(a.status || "no status")}</span></div>
      <div class="agent-meta"><span class="tokens" title="input / output tokens">⇣${compact.format(a.input_tokens ?? 0)} ⇡${compact.format(a.output_tokens ?? 0)}</span>
      <span class="cost" title="total cost">$${cost.toFixed(cost < 1 ? 4 : 2)}</span>
      <span class="last" title="${esc(last ? fmtTs(last) : "no event seen")}">${esc(formatAgo(last))}</span></div>`;
    li.querySelector(".name").textContent = a.name;
    li.querySelector(".name").style.color = agentColor(a.name);
    li.title = `${a.name} · ${a.model || ""} · ${a.status || "no status"} — click to filter`;
    const toggle = () => {
      const ids = new Set(state.filters.agents);
      ids.has(a.id) ? ids.delete(a.id) : ids.add(a.id);
      setFilters({ agents: [...ids] });
    };
    li.onclick = toggle;
    li.onkeydown = (e) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), toggle());
    ul.append(li);
  }
}

// ------------------------------------------------------------------ the stream

async function restart() {
  closeTransport();
  state.generation += 1;
  const generation = state.generation;
  state.events = [];
  state.rows = [];
  state.pendingPre = new Map();
  state.buffered = [];
  state.lastSeq = state.filters.after != null ? Number(state.filters.after) : null;
  state.helloAfter = null;
  state.live = false;
  state.detached = false;
  state.protect = null;
  state.unseen = 0;
  state.follow = state.around == null;
  state.olderDone = false;
  state.letGo = 0;
  hideNotice();
  list.setRows(state.rows);
  schedulePaint();
  if (state.around != null) {
    // "view in context": the rows just before the target (and it), then the stream after it
    const p = filterParams();
    p.set("before", String(state.around + 1));
    p.set("limit", String(CONTEXT));
    try {
      const body = await api(`/api/v1/events?${history_q(p)}`);
      if (generation !== state.generation) return;
      noteHead(body.head_seq);
      const items = body.items.map((it) => ({ type: it.kind, seq: it.seq, data: it.data }));
      takeEvents(items, "older");
      state.lastSeq = state.around;
      state.protect = [items.length ? items[0].seq : state.around, state.around];
      state.scrollTo = state.around; // centred on the next paint, once its row exists
    } catch (e) {
      showNotice(`Could not load the context: ${e.message}`, "warn");
    }
  }
  connect();
}

// history's q is full-text; the live stream's q is a substring: ask history for the same
function history_q(p) {
  if (p.has("q")) {
    p.set("contains", p.get("q"));
    p.delete("q");
  }
  return p;
}

function streamURL(transport) {
  const p = filterParams();
  p.set("batch", "1");
  const resume = state.lastSeq ?? state.helloAfter;
  if (resume != null) p.set("after", String(resume));
  else p.set("tail", "200");
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  if (transport === "ws") return `${proto}//${location.host}/api/v1/stream?${p}`;
  return `/api/v1/stream/sse?${p}`;
}

function setConn(stateName, text) {
  const el = $("conn");
  el.dataset.state = stateName;
  el.textContent = text;
}

function closeTransport() {
  if (state.socket) {
    state.socket.onclose = null;
    state.socket.onmessage = null;
    state.socket.close();
    state.socket = null;
  }
  if (state.sse) {
    state.sse.close();
    state.sse = null;
  }
}

function connect() {
  closeTransport();
  const generation = state.generation;
  setConn("connecting", "connecting…");
  if (state.useSSE) return connectSSE(generation);
  const protocols = state.token ? ["orchlog.v1", "bearer." + state.token] : undefined;
  let opened = false;
  const ws = new WebSocket(streamURL("ws"), protocols);
  state.socket = ws;
  ws.onopen = () => {
    opened = true;
    state.attempts = 0;
    state.wsFailures = 0;
    setConn("open", "connected");
  };
  ws.onmessage = (msg) => {
    if (generation === state.generation) onFrame(JSON.parse(msg.data));
  };
  ws.onclose = (ev) => {
    if (generation !== state.generation) return;
    state.socket = null;
    if (ev.code === 4401 || ev.code === 4403) {
      setConn("error", ev.code === 4401 ? "token needed" : "forbidden");
      askToken(refusedText(ev.code));
      return;
    }
    if (ev.code === 4400) {
      showNotice(`The server refused these filters: ${ev.reason}`, "warn");
      setConn("error", "bad filters");
      return;
    }
    if (!opened) {
      // A server that is down (restarting) refuses plain HTTP too: that is an outage, not a
      // blocked WebSocket. Only a server that answers HTTP while its WebSocket never opens
      // counts towards the fall back to SSE.
      fetch("app.js", { method: "HEAD", cache: "no-store" }).then(
        () => {
          if (generation === state.generation && !state.useSSE && ++state.wsFailures >= 3) {
            state.useSSE = true; // WebSockets blocked somewhere on the way: fall back to SSE
            showNotice("WebSocket unavailable; using Server-Sent Events", "info");
          }
        },
        () => (state.wsFailures = 0),
      );
    }
    scheduleReconnect(ev.reason || "connection lost");
  };
}

async function connectSSE(generation) {
  let url = streamURL("sse");
  if (state.token) {
    try {
      const t = await api("/api/v1/stream/ticket", { method: "POST" });
      url += `&ticket=${encodeURIComponent(t.ticket)}`;
    } catch (e) {
      return scheduleReconnect("ticket refused");
    }
  }
  const es = new EventSource(url);
  state.sse = es;
  es.onopen = () => {
    state.attempts = 0;
    setConn("open", "connected (SSE)");
  };
  const handler = (ev) => {
    if (generation === state.generation) onFrame(JSON.parse(ev.data));
  };
  for (const type of ["hello", "agent_log", "system_log", "live", "reset", "agent", "events"]) {
    es.addEventListener(type, handler);
  }
  es.onerror = () => {
    if (generation !== state.generation) return;
    es.close();
    state.sse = null;
    scheduleReconnect("connection lost");
  };
}

function scheduleReconnect(reason) {
  state.attempts += 1;
  const delay = Math.min(10_000, 250 * 2 ** Math.min(state.attempts, 6)) * (0.5 + Math.random() / 2);
  setConn("down", `reconnecting in ${(delay / 1000).toFixed(1)}s (${reason})`);
  const generation = state.generation;
  setTimeout(() => {
    if (generation === state.generation) connect();
  }, delay);
}

function noteHead(seq) {
  if (seq != null && seq > state.head) {
    state.head = seq;
    schedulePaint();
  }
}

function onFrame(frame) {
  switch (frame.type) {
    case "hello":
      noteHead(frame.head_seq);
      state.helloAfter = frame.after; // where "only new" started, if nothing arrives before a reconnect
      return;
    case "events":
      takeLive(frame.items);
      return;
    case "agent_log":
    case "system_log":
      takeLive([frame]);
      return;
    case "live":
      state.live = true;
      noteHead(frame.seq);
      schedulePaint();
      return;
    case "heartbeat":
      noteHead(frame.head_seq);
      return;
    case "reset":
      showNotice(
        `Some events are gone (${frame.reason.replaceAll("_", " ")}); continuing after seq ${frame.after}.`,
        "warn",
      );
      state.lastSeq = frame.after;
      return;
    case "agent":
      if (frame.data && frame.data.id) {
        const prev = state.agents.get(frame.data.id) || {};
        const next = Object.assign({}, prev, frame.data, { log_count: prev.log_count ?? 0 });
        if (frame.op === "deleted") next.archived = true;
        state.agents.set(frame.data.id, next);
        agentsDirty = true;
        schedulePaint();
      }
      return;
  }
}

// Frames from the stream: exactly once and in order, even if a frame is repeated.
function takeLive(frames) {
  const fresh = [];
  for (const ev of frames) {
    if (state.lastSeq != null && ev.seq <= state.lastSeq) continue;
    state.lastSeq = ev.seq;
    fresh.push(ev);
  }
  if (!fresh.length) return;
  noteHead(fresh[fresh.length - 1].seq);
  const now = performance.now();
  let counted = !serverFiltered();
  for (const ev of fresh) {
    const id = ev.data.agent_id;
    if (state.live) state.rateWindow.push(now); // replayed history is not a rate
    if (id) {
      const a = state.agents.get(id);
      if (!a) refreshAgentsSoon(); // a new agent: fetch its name for the rows that follow
      else if (ev.seq > state.countsHead) {
        if (counted) a.log_count = (a.log_count || 0) + 1;
        agentsDirty = true;
      }
    }
  }
  if (!counted) refreshAgentsSoon(); // filtered streams do not see every event: ask for the counts
  if (state.detached) return; // the page let go of the newest events; nothing to append to
  if (state.paused) {
    state.buffered.push(...fresh);
    schedulePaint();
    return;
  }
  takeEvents(fresh, "live");
}

// Events into memory and into the list's rows (newest at the end, or older ones at the start).
function takeEvents(evs, where) {
  for (const ev of evs) {
    const d = ev.data;
    if (d.agent_id && d.timestamp && !(state.lastEventAt.get(d.agent_id) >= d.timestamp)) {
      state.lastEventAt.set(d.agent_id, d.timestamp);
      agentsDirty = true;
    }
    for (const name of TEXT_FILTERS) if (d[name] && state.values[name].size < 500) state.values[name].add(d[name]);
    const tool = d.payload && d.payload.tool_name;
    if (tool && state.values.tool.size < 200) state.values.tool.add(String(tool));
  }
  if (where === "live") {
    state.events.push(...evs);
    const added = appendRows(evs);
    if (!state.follow) state.unseen += added;
  } else {
    state.events.unshift(...evs);
    rebuildRows();
  }
  state.valuesDirty = true;
  histogramDirty = true;
  schedulePaint();
}

function toolName(ev) {
  return (ev.data.payload && ev.data.payload.tool_name) || "";
}

function pairKey(ev) {
  const d = ev.data;
  const p = d.payload || {};
  return `${d.agent_id}|${d.session_id ?? ""}|${p.tool_use_id ?? ""}|${p.tool_use_id ? "" : (p.tool_name ?? "")}`;
}

function visibleEvent(ev) {
  return !state.filters.tool || toolName(ev) === state.filters.tool;
}

// Append rows for `evs`; a PostToolUse whose PreToolUse is held joins that row. Returns rows added.
function appendRows(evs) {
  let added = 0;
  for (const ev of evs) {
    if (!visibleEvent(ev)) continue;
    if (state.pair && ev.type === "agent_log") {
      const t = ev.data.event_type;
      if (t === PRE) {
        const row = { ev };
        const key = pairKey(ev);
        const q = state.pendingPre.get(key);
        if (q) q.push(row);
        else state.pendingPre.set(key, [row]);
        state.rows.push(row);
        added++;
        continue;
      }
      if (POSTS.has(t)) {
        const key = pairKey(ev);
        const q = state.pendingPre.get(key);
        if (q && q.length) {
          const row = q.shift();
          if (!q.length) state.pendingPre.delete(key);
          row.post = ev;
          list.invalidate(row);
          continue;
        }
      }
    }
    state.rows.push({ ev });
    added++;
  }
  list.dirty = true;
  return added;
}

function rebuildRows() {
  const heights = new Map();
  const open = new Set();
  for (const r of state.rows) {
    if (r.h != null && !r.post) heights.set(r.ev.seq, r.h);
    if (r.open) open.add(r.ev.seq);
  }
  state.rows = [];
  state.pendingPre = new Map();
  appendRows(state.events);
  for (const r of state.rows) {
    if (!r.post && heights.has(r.ev.seq)) r.h = heights.get(r.ev.seq);
    if (open.has(r.ev.seq)) r.open = true;
  }
  list.setRows(state.rows); // the old rows' elements go on the next render, in the same frame

}

// Hold at most maxEvents: let go of the end farthest from what the reader looks at; never the
// rows on screen, nor those "Load older" or "view in context" just brought in.
function trim() {
  const over = state.events.length - state.maxEvents;
  if (over <= 0) return;
  const slack = Math.min(Math.floor(state.maxEvents / 10), 5000);
  const [first, last] = list.rows.length ? list.visibleRange() : [0, -1];
  let loSeq = first <= last ? state.rows[Math.max(0, first - 50)].ev.seq : Infinity;
  let hiSeq = first <= last ? state.rows[Math.min(state.rows.length - 1, last + 50)].ev.seq : -Infinity;
  if (state.protect) {
    loSeq = Math.min(loSeq, state.protect[0]);
    hiSeq = Math.max(hiSeq, state.protect[1]);
  }
  const lo = lowerBound(state.events, loSeq); // first protected index
  const hi = upperBound(state.events, hiSeq); // one past the last protected index
  const centre = first <= last ? (first + last) / 2 / state.rows.length : 1;
  const want = over + slack;
  if (state.follow || (centre >= 0.5 && !state.protect) || hi >= state.events.length) {
    const k = Math.min(want, lo);
    if (k <= 0) return;
    const removed = list.offsetOf(rowIndexOfSeq(state.events[k].seq));
    state.events.splice(0, k);
    state.olderDone = false;
    noteLetGo(k, "older");
    rebuildRows();
    if (!state.follow) list.scroller.scrollTop = Math.max(0, list.scroller.scrollTop - removed);
  } else {
    const k = Math.min(want, state.events.length - hi);
    if (k <= 0) return;
    state.events.splice(state.events.length - k, k);
    detach();
    noteLetGo(k, "newer");
    rebuildRows();
  }
}

function rowIndexOfSeq(seq) {
  let lo = 0;
  let hi = state.rows.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (state.rows[mid].ev.seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function lowerBound(evs, seq) {
  let lo = 0;
  let hi = evs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (evs[mid].seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function upperBound(evs, seq) {
  let lo = 0;
  let hi = evs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (evs[mid].seq <= seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// The newest events were let go to keep what the reader looks at: stop taking live events
// (and stop the stream) until "jump to latest".
function detach() {
  if (state.detached) return;
  state.detached = true;
  closeTransport();
  setConn("idle", "stopped (reading older)");
}

function noteLetGo(n, which) {
  state.letGo += n;
  const total = state.letGo;
  if (which === "older") {
    showNotice(
      `${num.format(total)} older events were let go to stay within ${num.format(state.maxEvents)} held; Load older brings them back.`,
      "info",
      { keep: true },
    );
  } else {
    showNotice(
      `${num.format(total)} newer events were let go to keep the rows you are reading; live updates are stopped — jump to latest to resume.`,
      "info",
      { keep: true },
    );
  }
}

// ------------------------------------------------------------------ rendering (batched per frame)

let painting = false;
let paintedTop = 0;
function schedulePaint() {
  if (!painting) {
    painting = true;
    requestAnimationFrame(paint);
  }
}

function paint() {
  painting = false;
  trim();
  if (state.follow && !state.paused) list.scrollToBottom();
  if (state.scrollTo != null) {
    // keep centring the target until it is on screen (heights settle as rows are measured) or
    // the reader scrolls somewhere else
    const i = rowIndexOfSeq(state.scrollTo);
    const hit = i < state.rows.length ? i : Math.max(0, i - 1);
    if (state.rows.length) {
      list.render();
      const [first, last] = list.visibleRange();
      if (hit < first || hit > last) list.scrollToIndex(hit);
      else state.scrollTo = null;
    }
  }
  list.render();
  if (state.follow && !state.paused && !list.atBottom(2)) {
    list.scrollToBottom(); // measured heights moved the bottom
    list.render();
  }
  paintedTop = list.scroller.scrollTop;
  $("head").textContent = state.head ? num.format(state.head) : "–";
  $("count").textContent = state.events.length;
  updateMode();
  if (agentsDirty) renderAgents();
  if (state.valuesDirty) renderValues();
  if (histogramDirty) scheduleHistogram();
}

function updateMode() {
  const el = $("mode");
  let mode;
  let text;
  if (state.detached) [mode, text] = ["detached", "reading older · not live"];
  else if (state.paused) [mode, text] = ["paused", "paused"];
  else if (!state.live) [mode, text] = ["replaying", "replaying…"];
  else if (!state.follow) [mode, text] = ["scrolled", "scrolled up"];
  else [mode, text] = ["live", "live"];
  if (el.dataset.mode !== mode) {
    el.dataset.mode = mode;
    el.textContent = text;
  }
  const pill = $("new-events");
  let label = "";
  if (state.paused && state.buffered.length) label = `${num.format(state.buffered.length)} new — resume`;
  else if (state.detached) label = "jump to latest";
  else if (!state.follow && state.unseen) label = `${num.format(state.unseen)} new — jump to latest`;
  else if (!state.follow && state.around != null) label = "jump to latest";
  pill.hidden = !label;
  if (label && pill.textContent !== label) pill.textContent = label;
}

function fmtTs(iso) {
  const t = formatTime(iso, state.utc);
  return `${t.date} ${t.time} ${t.zone}`;
}

function textOf(ev) {
  return (ev.type === "agent_log" ? ev.data.content : ev.data.message) ?? "";
}

function buildRow(r) {
  const ev = r.ev;
  const d = ev.data;
  const el = document.createElement("div");
  el.className = `row ${ev.type} lvl-${d.level}`;
  if (r.post) el.classList.add("paired", `lvl-post-${r.post.data.level}`);
  if (r.open) el.classList.add("open");
  if (state.around != null && (ev.seq === state.around || (r.post && r.post.seq === state.around))) {
    el.classList.add("target");
  }
  el.dataset.seq = ev.seq;
  if (r.post) el.dataset.postSeq = r.post.seq;
  const t = formatTime(d.timestamp, state.utc);
  const text = textOf(ev);
  const lines = text.split("\n");
  let who;
  if (ev.type === "agent_log") {
    const a = state.agents.get(d.agent_id);
    const name = a ? a.name : String(d.agent_id).slice(0, 8);
    who = `<span class="who" style="color:${agentColor(name)}">${esc(name)}</span>
           <span class="what">${esc(d.event_category)}/${esc(r.post ? "tool" : d.event_type)}</span>`;
  } else {
    who = `<span class="who system">system</span><span class="what">${esc(d.file_path || "")}</span>`;
  }
  let badge = "";
  if (r.post) {
    const ms = new Date(r.post.data.timestamp) - new Date(d.timestamp);
    const failed = r.post.data.event_type === "PostToolUseFailure" || ["ERROR", "CRITICAL"].includes(r.post.data.level);
    badge = `<span class="tool-badge ${failed ? "fail" : "ok"}" title="PreToolUse seq ${ev.seq} → ${esc(r.post.data.event_type)} seq ${r.post.seq}">${failed ? "✗" : "✓"} ${esc(formatDuration(ms))}</span>`;
  } else if (d.event_type === PRE && state.pair) {
    badge = `<span class="tool-badge running" title="no PostToolUse yet">…</span>`;
  }
  const more = lines.length > 1 && !r.open ? `<span class="more" title="${lines.length} lines">+${lines.length - 1} lines</span>` : "";
  const q = state.filters.q;
  const body = r.open ? richText(text, q) : richText(lines[0], q);
  el.innerHTML = `<span class="seq">${ev.seq}</span><span class="time" title="${esc(d.timestamp || "")}"><span class="date">${t.date}</span> ${t.time}<span class="zone">${t.zone}</span></span>
    <span class="level">${esc(d.level)}</span>${who}<span class="text">${badge}${body}${more}</span>
    <span class="actions"><a href="?around=${ev.seq}" target="_blank" rel="noopener" title="view in context" aria-label="view seq ${ev.seq} in context">⤢</a></span>`;
  if (r.open) el.append(details(r));
  el.addEventListener("click", (e) => {
    if (e.target.closest("a") || e.target.closest(".details")) return;
    r.open = !r.open;
    list.invalidate(r);
    schedulePaint();
  });
  return el;
}

function details(r) {
  const box = document.createElement("div");
  box.className = "details";
  const part = (ev, title) => {
    const sec = document.createElement("section");
    const text = textOf(ev);
    const rest = Object.assign({}, ev.data);
    sec.innerHTML = `<h4>${esc(title)} · seq ${ev.seq} · ${esc(fmtTs(ev.data.timestamp))}</h4>` +
      (text ? `<pre class="full">${richText(text, state.filters.q)}</pre>` : "") +
      `<pre class="json">${prettyValue(rest)}</pre>`;
    return sec;
  };
  box.append(part(r.ev, r.post ? r.ev.data.event_type : r.ev.type));
  if (r.post) box.append(part(r.post, r.post.data.event_type));
  return box;
}

let noticeTimer = null;
function showNotice(text, kind, { keep = false } = {}) {
  const n = $("notice");
  $("notice-text").textContent = text;
  n.dataset.kind = kind;
  n.hidden = false;
  clearTimeout(noticeTimer);
  if (kind === "info" && !keep) noticeTimer = setTimeout(hideNotice, 4000);
}

function hideNotice() {
  clearTimeout(noticeTimer);
  $("notice").hidden = true;
}

// ------------------------------------------------------------------ choices for the filters

function renderValues() {
  state.valuesDirty = false;
  for (const [name, id] of [["session_id", "dl-session"], ["task_slug", "dl-task"], ["adw_id", "dl-adw"], ["tool", "dl-tool"]]) {
    const dl = $(id);
    const values = [...state.values[name]].sort();
    if (dl.childElementCount === values.length) continue;
    dl.replaceChildren(...values.map((v) => Object.assign(document.createElement("option"), { value: v })));
  }
}

// ------------------------------------------------------------------ histogram (held events)

let histogramDirty = true;
let histogramTimer = null;
const BUCKETS = 60;

function scheduleHistogram() {
  if (histogramTimer) return;
  histogramTimer = setTimeout(() => {
    histogramTimer = null;
    histogramDirty = false;
    renderHistogram();
  }, 300);
}

function histogramDomain() {
  const { since, until } = state.filters;
  const abs = (v) => (v && v.includes("T") ? Date.parse(v) : null);
  const rel = (v) => {
    const m = /^(\d+(?:\.\d+)?)\s*([smhdw])$/.exec(v || "");
    return m ? Date.now() - Number(m[1]) * { s: 1e3, m: 6e4, h: 36e5, d: 864e5, w: 6048e5 }[m[2]] : null;
  };
  let lo = abs(since) ?? rel(since);
  let hi = abs(until) ?? rel(until);
  if (state.events.length) {
    const first = Date.parse(state.events[0].data.timestamp);
    const last = Date.parse(state.events[state.events.length - 1].data.timestamp);
    lo = lo ?? first;
    hi = hi ?? Math.max(last, Date.now() - 1000 < last ? Date.now() : last);
  }
  if (lo == null || hi == null || !(hi > lo)) return null;
  return [lo, hi];
}

function renderHistogram() {
  const svg = $("histogram");
  const w = svg.clientWidth || 600;
  const h = svg.clientHeight || 48;
  const domain = histogramDomain();
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  if (!domain) {
    svg.innerHTML = "";
    state.histogram = null;
    return;
  }
  const [lo, hi] = domain;
  const span = hi - lo || 1;
  const counts = LEVELS.map(() => new Uint32Array(BUCKETS));
  const rank = Object.fromEntries(LEVELS.map((l, i) => [l, i]));
  for (const ev of state.events) {
    const t = Date.parse(ev.data.timestamp);
    const b = Math.min(BUCKETS - 1, Math.floor(((t - lo) / span) * BUCKETS));
    if (b >= 0) counts[rank[ev.data.level] ?? 1][b]++;
  }
  let max = 1;
  for (let b = 0; b < BUCKETS; b++) {
    let s = 0;
    for (const c of counts) s += c[b];
    max = Math.max(max, s);
  }
  const bw = w / BUCKETS;
  let out = "";
  for (let b = 0; b < BUCKETS; b++) {
    let y = h;
    for (let l = 0; l < LEVELS.length; l++) {
      const c = counts[l][b];
      if (!c) continue;
      const bh = (c / max) * (h - 2);
      y -= bh;
      out += `<rect class="h-${LEVELS[l]}" x="${(b * bw + 0.5).toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(1, bw - 1).toFixed(1)}" height="${bh.toFixed(1)}"><title>${c} ${LEVELS[l]}</title></rect>`;
    }
  }
  svg.innerHTML = out + `<rect id="h-sel" class="h-sel" x="0" y="0" width="0" height="${h}" visibility="hidden"></rect>`;
  state.histogram = { lo, hi, w };
  $("h-lo").textContent = fmtTs(new Date(lo).toISOString());
  $("h-hi").textContent = fmtTs(new Date(hi).toISOString());
}

function wireHistogram() {
  const svg = $("histogram");
  let start = null;
  const xOf = (e) => {
    const r = svg.getBoundingClientRect();
    return Math.max(0, Math.min(r.width, e.clientX - r.left));
  };
  svg.addEventListener("pointerdown", (e) => {
    if (!state.histogram) return;
    start = xOf(e);
    svg.setPointerCapture(e.pointerId);
  });
  svg.addEventListener("pointermove", (e) => {
    if (start == null) return;
    const x = xOf(e);
    const sel = $("h-sel");
    const scale = state.histogram.w / svg.getBoundingClientRect().width;
    sel.setAttribute("x", String(Math.min(start, x) * scale));
    sel.setAttribute("width", String(Math.abs(x - start) * scale));
    sel.setAttribute("visibility", "visible");
  });
  svg.addEventListener("pointerup", (e) => {
    if (start == null) return;
    const x = xOf(e);
    const a = Math.min(start, x);
    const b = Math.max(start, x);
    start = null;
    const width = svg.getBoundingClientRect().width;
    if (b - a < 3 || !state.histogram) return renderHistogram();
    const { lo, hi } = state.histogram;
    const at = (px) => new Date(lo + (px / width) * (hi - lo)).toISOString();
    setFilters({ since: at(a), until: at(b) });
  });
}

// ------------------------------------------------------------------ controls

function togglePause() {
  state.paused = !state.paused;
  $("pause").textContent = state.paused ? "Resume" : "Pause";
  $("pause").classList.toggle("on", state.paused);
  if (!state.paused) {
    const buffered = state.buffered;
    state.buffered = [];
    if (buffered.length) takeEvents(buffered, "live");
    goLive();
  }
  schedulePaint();
}

function goLive() {
  if (state.detached || state.around != null) {
    // the newest events are not held: start over from the tail
    state.around = null;
    state.paused = false;
    $("pause").textContent = "Pause";
    $("pause").classList.remove("on");
    writeURL();
    restart();
    return;
  }
  if (state.paused) return togglePause();
  state.follow = true;
  state.unseen = 0;
  state.protect = null;
  schedulePaint();
}

async function loadOlder() {
  const generation = state.generation;
  const first = state.events[0];
  const p = history_q(filterParams());
  p.set("limit", String(OLDER_PAGE));
  if (first) p.set("before", String(first.seq));
  else if (state.lastSeq != null) p.set("before", String(state.lastSeq + 1));
  const body = await api(`/api/v1/events?${p}`);
  if (generation !== state.generation) return; // the filters changed while this was in flight
  noteHead(body.head_seq);
  const older = body.items
    .filter((it) => !first || it.seq < first.seq)
    .map((it) => ({ type: it.kind, seq: it.seq, data: it.data }));
  if (!older.length) {
    state.olderDone = true;
    return showNotice("No older events match.", "info");
  }
  // keep the reader's row where it is: the rows above it grow by the new rows' height
  const s = list.scroller;
  const anchor = state.rows.length ? state.rows[list.visibleRange()[0]] : null;
  const anchorOffset = anchor ? list.offsetOf(state.rows.indexOf(anchor)) - s.scrollTop : 0;
  state.follow = false;
  state.protect = [older[0].seq, first ? first.seq + 0 : older[older.length - 1].seq];
  takeEvents(older, "older");
  if (anchor) {
    const i = state.rows.findIndex((r) => r.ev.seq === anchor.ev.seq);
    if (i >= 0) s.scrollTop = list.offsetOf(i) - anchorOffset;
  }
  // show the first rows just loaded at the top
  s.scrollTop = Math.max(0, s.scrollTop);
  if (!body.has_more) state.olderDone = true;
}

function download() {
  const lines = state.events.map((ev) => JSON.stringify({ seq: ev.seq, kind: ev.type, data: ev.data }));
  const blob = new Blob([lines.join("\n") + "\n"], { type: "application/x-ndjson" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `orchlog-${new Date().toISOString().replace(/[:.]/g, "-")}.ndjson`;
  a.click();
  URL.revokeObjectURL(a.href);
}

function tickRate() {
  const now = performance.now();
  let i = 0;
  while (i < state.rateWindow.length && now - state.rateWindow[i] >= 1000) i++;
  if (i) state.rateWindow.splice(0, i);
  $("rate").textContent = num.format(state.rateWindow.length);
  if (state.agents.size) agentsDirty = true; // "last event 5s ago" moves on
  schedulePaint();
}

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem("orchlog-theme", theme);
}

function setUTC(utc) {
  state.utc = utc;
  localStorage.setItem("orchlog-utc", utc ? "1" : "0");
  $("tz").textContent = zoneLabel(utc);
  $("tz").classList.toggle("on", utc);
  $("tz").title = utc ? "times in UTC — click for local time" : "times in local time — click for UTC";
  list.invalidateAll();
  histogramDirty = true;
  syncControls();
  schedulePaint();
}

function setDrawer(open) {
  document.body.classList.toggle("drawer-open", open);
  $("agents-btn").setAttribute("aria-expanded", String(open));
}

function wire() {
  for (const chip of document.querySelectorAll("#levels .chip")) {
    chip.onclick = () => {
      const set = new Set(state.filters.levels);
      set.has(chip.dataset.level) ? set.delete(chip.dataset.level) : set.add(chip.dataset.level);
      setFilters({ levels: LEVELS.filter((l) => set.has(l)) });
    };
  }
  $("kind").onchange = (e) => setFilters({ kind: e.target.value });
  $("category").onchange = (e) => setFilters({ category: e.target.value });
  let typing;
  const debounce = (fn) => {
    clearTimeout(typing);
    typing = setTimeout(fn, 350);
  };
  $("etype").oninput = (e) => debounce(() => setFilters({ etype: e.target.value.trim() }));
  $("search").oninput = (e) => debounce(() => setFilters({ q: e.target.value.trim() }));
  for (const name of TEXT_FILTERS) {
    $(name).oninput = (e) => debounce(() => setFilters({ [name]: e.target.value.trim() }));
  }
  $("tool").oninput = (e) =>
    debounce(() => {
      state.filters.tool = e.target.value.trim();
      writeURL();
      rebuildRows();
      schedulePaint();
    });
  $("filters").onsubmit = (e) => e.preventDefault();
  $("clear").onclick = () =>
    setFilters({ levels: [], agents: [], kind: "", category: "", etype: "", q: "", since: "", until: "", tool: "", session_id: "", task_slug: "", adw_id: "" });
  for (const b of document.querySelectorAll("#range button[data-since]")) {
    b.onclick = () => setFilters({ since: b.dataset.since, until: "" });
  }
  $("pause").onclick = togglePause;
  $("live").onclick = goLive;
  $("new-events").onclick = () => (state.paused ? togglePause() : goLive());
  $("older").onclick = () => loadOlder().catch((e) => showNotice(String(e.message || e), "warn"));
  $("download").onclick = download;
  $("theme").onclick = () => applyTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark");
  $("tz").onclick = () => setUTC(!state.utc);
  $("pair").checked = state.pair;
  $("pair").onchange = (e) => {
    state.pair = e.target.checked;
    localStorage.setItem("orchlog-pair", state.pair ? "1" : "0");
    rebuildRows();
    schedulePaint();
  };
  $("token-btn").onclick = () => askToken();
  $("notice-close").onclick = hideNotice;
  $("agents-btn").onclick = () => setDrawer(!document.body.classList.contains("drawer-open"));
  $("scrim").onclick = () => setDrawer(false);
  $("more-filters").onclick = () => {
    const open = document.body.classList.toggle("filters-open");
    $("more-filters").setAttribute("aria-expanded", String(open));
  };
  $("token-dialog").addEventListener("close", () => {
    if ($("token-dialog").returnValue === "save") {
      state.token = $("token-input").value.trim();
      sessionStorage.setItem("orchlog-token", state.token);
      loadAgents();
      restart();
    }
  });
  const scroller = $("stream");
  scroller.addEventListener("scroll", () => {
    // a position paint() left is not the reader's doing (content grew, heights were measured)
    if (Math.abs(scroller.scrollTop - paintedTop) < 1) return;
    state.scrollTo = null;
    if (list.atBottom(40)) {
      if (!state.follow && !state.paused) {
        state.follow = true;
        state.unseen = 0;
        state.protect = null;
      }
    } else {
      state.follow = false; // the reader scrolled away from the newest rows
    }
    schedulePaint();
  });
  document.addEventListener("keydown", (e) => {
    if (e.target.matches("input, select, textarea")) {
      if (e.key === "Escape") e.target.blur();
      return;
    }
    if (e.key === "/") {
      e.preventDefault();
      $("search").focus();
    } else if (e.key === " " && !e.target.closest("button, .agent")) {
      e.preventDefault();
      togglePause();
    } else if (e.key === "g") {
      goLive();
    } else if (e.key === "Escape") {
      setDrawer(false);
    }
  });
  let width = 0;
  new ResizeObserver(() => {
    if (scroller.clientWidth === width) return;
    width = scroller.clientWidth;
    list.invalidateAll(); // rows wrap differently at another width
    histogramDirty = true;
    schedulePaint();
  }).observe(scroller);
  wireHistogram();
  setInterval(tickRate, 500);
}

const list = new VirtualList($("stream"), buildRow);
applyTheme(localStorage.getItem("orchlog-theme") || (matchMedia("(prefers-color-scheme: light)").matches ? "light" : "dark"));
wire();
setUTC(state.utc);
syncControls();
// names first, so the first rows show agent names rather than ids
loadAgents().finally(restart);
// a read-only view for tests and the curious
window.orchlog = {
  state,
  events: () => state.events.map((e) => e.seq),
  rows: () => state.rows.map((r) => (r.post ? [r.ev.seq, r.post.seq] : [r.ev.seq])),
  stripAnsi,
};
