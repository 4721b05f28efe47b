// orchlog dashboard: history + live over the public API only (WebSocket, SSE fallback).
// Gapless by construction: the page remembers the last seq it received and resumes after it.

const MAX_EVENTS = 100_000; // kept in memory (for download and re-render)
const MAX_ROWS = 3_000; // rendered in the DOM; older rows are trimmed from the top
const LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];

const $ = (id) => document.getElementById(id);
const state = {
  events: [], // {type, seq, data} ascending
  seen: new Set(),
  lastSeq: null, // resume point
  agents: new Map(), // id -> {name, status, log_count}
  filters: readFilters(),
  paused: false,
  buffered: [],
  pending: [], // received, not yet painted
  follow: true, // auto-scroll
  socket: null,
  sse: null,
  attempts: 0,
  wsFailures: 0,
  useSSE: false,
  rateWindow: [],
  token: sessionStorage.getItem("orchlog-token") || "",
  generation: 0, // bumps on every (re)subscription with new filters
  helloAfter: null,
};

// ------------------------------------------------------------------ filters <-> URL

function readFilters() {
  const p = new URLSearchParams(location.search);
  return {
    levels: (p.get("level") || "").split(",").filter(Boolean),
    agents: (p.get("agent_id") || "").split(",").filter(Boolean),
    kind: p.get("kind") || "",
    category: p.get("event_category") || "",
    etype: p.get("event_type") || "",
    q: p.get("q") || "",
    after: p.get("after"),
  };
}

function filterParams(f = state.filters) {
  const p = new URLSearchParams();
  if (f.levels.length) p.set("level", f.levels.join(","));
  if (f.agents.length) p.set("agent_id", f.agents.join(","));
  if (f.kind) p.set("kind", f.kind);
  if (f.category) p.set("event_category", f.category);
  if (f.etype) p.set("event_type", f.etype);
  if (f.q) p.set("q", f.q);
  return p;
}

function writeURL() {
  const p = filterParams();
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
  renderAgents();
}

function setFilters(change) {
  Object.assign(state.filters, change, { after: null });
  writeURL();
  syncControls();
  restart();
}

// ------------------------------------------------------------------ HTTP helpers

async function api(path, init = {}) {
  const headers = Object.assign({}, init.headers || {});
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const r = await fetch(path, Object.assign({}, init, { headers }));
  if (r.status === 401) {
    askToken();
    throw new Error("unauthorized");
  }
  if (!r.ok) throw new Error(`${r.status} ${await r.text()}`);
  return r.json();
}

function askToken() {
  const dialog = $("token-dialog");
  if (!dialog.open) {
    $("token-input").value = state.token;
    dialog.showModal();
  }
}

// ------------------------------------------------------------------ agents sidebar

async function loadAgents() {
  try {
    const body = await api("/list_agents");
    for (const a of body.agents) state.agents.set(a.id, a);
    renderAgents();
  } catch (e) {
    /* the stream still works without names */
  }
}

let agentsRefresh = 0;
function refreshAgentsSoon() {
  const now = Date.now();
  if (now - agentsRefresh < 5000) return;
  agentsRefresh = now;
  loadAgents();
}

function agentColor(name) {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  // golden-angle spread: names that differ in one character (agent-1, agent-2) get distinct hues
  return `hsl(${Math.round((h * 137.508) % 360)} 65% 55%)`;
}

function renderAgents() {
  const ul = $("agents");
  ul.replaceChildren();
  const list = [...state.agents.values()].sort((a, b) => a.name.localeCompare(b.name));
  for (const a of list) {
    const li = document.createElement("li");
    li.className = "agent" + (state.filters.agents.includes(a.id) ? " on" : "");
    li.dataset.id = a.id;
    li.innerHTML = `<span class="dot" data-status="${a.status || "idle"}"></span>
      <span class="name"></span><span class="count">${a.log_count ?? ""}</span>`;
    li.querySelector(".name").textContent = a.name;
    li.querySelector(".name").style.color = agentColor(a.name);
    li.title = `${a.name} · ${a.model || ""} · ${a.status || "no status"}`;
    li.onclick = () => {
      const ids = new Set(state.filters.agents);
      ids.has(a.id) ? ids.delete(a.id) : ids.add(a.id);
      setFilters({ agents: [...ids] });
    };
    ul.append(li);
  }
}

// ------------------------------------------------------------------ the stream

function restart() {
  state.generation += 1;
  state.events = [];
  state.seen = new Set();
  state.buffered = [];
  state.pending = [];
  state.lastSeq = state.filters.after != null ? Number(state.filters.after) : null;
  state.helloAfter = null;
  state.live = false;
  $("stream").replaceChildren();
  $("new-events").hidden = true;
  connect();
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

function setMode(mode, text) {
  const el = $("mode");
  el.dataset.mode = mode;
  el.textContent = text;
}

function closeTransport() {
  if (state.socket) {
    state.socket.onclose = null;
    state.socket.close();
    state.socket = null;
  }
  if (state.sse) {
    state.sse.close();
    state.sse = null;
  }
}

async function connect() {
  closeTransport();
  const generation = state.generation;
  setConn("connecting", "connecting…");
  setMode("replaying", "replaying…");
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
      askToken();
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

function onFrame(frame) {
  switch (frame.type) {
    case "hello":
      $("head").textContent = frame.head_seq;
      state.helloAfter = frame.after; // where "only new" started, if nothing arrives before a reconnect
      return;
    case "events":
      for (const item of frame.items) addEvent(item);
      return;
    case "agent_log":
    case "system_log":
      addEvent(frame);
      return;
    case "live":
      state.live = true;
      setMode(state.paused ? "paused" : "live", state.paused ? "paused" : "live");
      return;
    case "heartbeat":
      $("head").textContent = frame.head_seq;
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
        state.agents.set(frame.data.id, Object.assign({}, prev, frame.data));
        renderAgents();
      }
      return;
  }
}

function addEvent(ev) {
  if (state.seen.has(ev.seq) || (state.lastSeq != null && ev.seq <= state.lastSeq)) {
    return; // exactly once and in order, even if a frame is repeated
  }
  state.seen.add(ev.seq);
  state.lastSeq = Math.max(state.lastSeq ?? 0, ev.seq);
  state.events.push(ev);
  if (state.events.length > MAX_EVENTS) {
    const gone = state.events.splice(0, state.events.length - MAX_EVENTS);
    for (const g of gone) state.seen.delete(g.seq);
  }
  if (state.live) state.rateWindow.push(performance.now()); // replayed history is not a rate
  if (ev.data.agent_id && state.agents.has(ev.data.agent_id)) {
    state.agents.get(ev.data.agent_id).log_count = (state.agents.get(ev.data.agent_id).log_count || 0) + 1;
  }
  if (state.paused) {
    state.buffered.push(ev);
    $("new-events").hidden = false;
    $("new-events").textContent = `${state.buffered.length} new events — resume`;
  } else {
    queuePaint(ev);
  }
}

// ------------------------------------------------------------------ rendering (batched per frame)

let painting = false;
function queuePaint(ev) {
  state.pending.push(ev);
  if (!painting) {
    painting = true;
    requestAnimationFrame(paint);
  }
}

function paint() {
  painting = false;
  const stream = $("stream");
  const atBottom = stream.scrollHeight - stream.scrollTop - stream.clientHeight < 40;
  const frag = document.createDocumentFragment();
  for (const ev of state.pending) frag.append(row(ev));
  state.pending = [];
  stream.append(frag);
  while (stream.childElementCount > MAX_ROWS) stream.firstElementChild.remove();
  $("count").textContent = stream.childElementCount;
  if (state.follow && atBottom) stream.scrollTop = stream.scrollHeight;
}

function esc(s) {
  return String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

function highlight(text) {
  const safe = esc(text);
  const q = state.filters.q;
  if (!q) return safe;
  const re = new RegExp(esc(q).replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "gi");
  return safe.replace(re, (m) => `<mark>${m}</mark>`);
}

function row(ev) {
  const d = ev.data;
  const el = document.createElement("div");
  el.className = `row ${ev.type} lvl-${d.level}`;
  el.dataset.seq = ev.seq;
  const time = (d.timestamp || "").slice(11, 23);
  const text = ev.type === "agent_log" ? d.content : d.message;
  let who;
  if (ev.type === "agent_log") {
    const a = state.agents.get(d.agent_id);
    if (!a) refreshAgentsSoon(); // a new agent: fetch names for the rows that follow
    const name = a ? a.name : d.agent_id.slice(0, 8);
    who = `<span class="who" style="color:${agentColor(name)}">${esc(name)}</span>
           <span class="what">${esc(d.event_category)}/${esc(d.event_type)}</span>`;
  } else {
    who = `<span class="who system">system</span><span class="what">${esc(d.file_path || "")}</span>`;
  }
  el.innerHTML = `<span class="seq">${ev.seq}</span><span class="time">${time}</span>
    <span class="level">${d.level}</span>${who}<span class="text">${highlight((text || "").split("\n")[0])}</span>
    <span class="actions"><a href="?after=${Math.max(0, ev.seq - 25)}" target="_blank" title="view in context">⤢</a></span>`;
  el.addEventListener("click", (e) => {
    if (e.target.closest("a")) return;
    toggleDetails(el, ev);
  });
  return el;
}

function toggleDetails(el, ev) {
  const open = el.querySelector(".details");
  if (open) return open.remove();
  const pre = document.createElement("pre");
  pre.className = "details";
  pre.textContent = JSON.stringify(ev.data, null, 2);
  el.append(pre);
}

function showNotice(text, kind) {
  const n = $("notice");
  n.textContent = text;
  n.dataset.kind = kind;
  n.hidden = false;
}

// ------------------------------------------------------------------ controls

function togglePause() {
  state.paused = !state.paused;
  $("pause").textContent = state.paused ? "Resume" : "Pause";
  $("pause").classList.toggle("on", state.paused);
  if (state.paused) {
    setMode("paused", "paused");
  } else {
    setMode("live", "live");
    for (const ev of state.buffered) queuePaint(ev);
    state.buffered = [];
    $("new-events").hidden = true;
    goLive();
  }
}

function goLive() {
  state.follow = true;
  if (state.paused) togglePause();
  const stream = $("stream");
  requestAnimationFrame(() => (stream.scrollTop = stream.scrollHeight));
}

async function loadOlder() {
  const generation = state.generation;
  const first = state.events[0];
  const p = filterParams();
  if (p.has("q")) {
    // history's q is full-text; the live stream's q is a substring: ask history for the same
    p.set("contains", p.get("q"));
    p.delete("q");
  }
  p.set("limit", "200");
  if (first) p.set("before", String(first.seq));
  else if (state.lastSeq != null) p.set("before", String(state.lastSeq + 1));
  const body = await api(`/api/v1/events?${p}`);
  if (generation !== state.generation) return; // the filters changed while this was in flight
  const older = body.items.filter((it) => !state.seen.has(it.seq)).map((it) => ({ type: it.kind, seq: it.seq, data: it.data }));
  if (!older.length) return showNotice("No older events match.", "info");
  for (const ev of older) state.seen.add(ev.seq);
  state.events.unshift(...older);
  const stream = $("stream");
  const height = stream.scrollHeight;
  const frag = document.createDocumentFragment();
  for (const ev of older) frag.append(row(ev));
  stream.prepend(frag);
  stream.scrollTop += stream.scrollHeight - height;
  $("count").textContent = stream.childElementCount;
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
  state.rateWindow = state.rateWindow.filter((t) => now - t < 1000);
  $("rate").textContent = state.rateWindow.length;
}

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem("orchlog-theme", theme);
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
  $("filters").onsubmit = (e) => e.preventDefault();
  $("clear").onclick = () => setFilters({ levels: [], agents: [], kind: "", category: "", etype: "", q: "" });
  $("pause").onclick = togglePause;
  $("live").onclick = goLive;
  $("new-events").onclick = togglePause;
  $("older").onclick = () => loadOlder().catch((e) => showNotice(String(e), "warn"));
  $("download").onclick = download;
  $("theme").onclick = () => applyTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark");
  $("token-btn").onclick = askToken;
  $("token-dialog").addEventListener("close", () => {
    if ($("token-dialog").returnValue === "save") {
      state.token = $("token-input").value.trim();
      sessionStorage.setItem("orchlog-token", state.token);
      loadAgents();
      restart();
    }
  });
  $("stream").addEventListener("scroll", () => {
    const s = $("stream");
    state.follow = s.scrollHeight - s.scrollTop - s.clientHeight < 40;
  });
  document.addEventListener("keydown", (e) => {
    if (e.target.matches("input, select, textarea")) {
      if (e.key === "Escape") e.target.blur();
      return;
    }
    if (e.key === "/") {
      e.preventDefault();
      $("search").focus();
    } else if (e.key === " ") {
      e.preventDefault();
      togglePause();
    } else if (e.key === "g") {
      goLive();
    }
  });
  setInterval(tickRate, 500);
}

applyTheme(localStorage.getItem("orchlog-theme") || (matchMedia("(prefers-color-scheme: light)").matches ? "light" : "dark"));
wire();
syncControls();
// names first, so the first rows show agent names rather than ids
loadAgents().finally(restart);
// expose a read-only view for tests and the curious
window.orchlog = { state, events: () => state.events.map((e) => e.seq) };
