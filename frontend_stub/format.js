// Pure text helpers for the dashboard: HTML escaping, ANSI colours to classes, control bytes made
// visible, search highlighting and timestamps. No DOM, no state: everything here returns strings.

const HTML = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => HTML[c]);
}

// C0 controls (except tab and newline), DEL and C1 controls are shown as visible symbols, never
// passed to the page: U+2400 "control pictures" for C0/DEL, \xNN for C1.
function visibleControl(ch) {
  const code = ch.charCodeAt(0);
  if (code < 0x20) return String.fromCharCode(0x2400 + code);
  if (code === 0x7f) return "\u2421";
  return "\\x" + code.toString(16).padStart(2, "0");
}
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g; // eslint-disable-line no-control-regex

function escText(s) {
  return esc(s).replace(CONTROLS, (c) => `<span class="ctl" title="control byte 0x${c.charCodeAt(0).toString(16).padStart(2, "0")}">${visibleControl(c)}</span>`);
}

// SGR (Select Graphic Rendition) sequences become classes; any other escape sequence is shown.
const SGR = /\x1b\[([0-9;]*)m/g; // eslint-disable-line no-control-regex

function sgrClasses(params, cur) {
  const codes = params === "" ? [0] : params.split(";").map((n) => Number(n) || 0);
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (c === 0) Object.assign(cur, { fg: null, bg: null, bold: false, dim: false, italic: false, under: false });
    else if (c === 1) cur.bold = true;
    else if (c === 2) cur.dim = true;
    else if (c === 3) cur.italic = true;
    else if (c === 4) cur.under = true;
    else if (c === 22) cur.bold = cur.dim = false;
    else if (c === 23) cur.italic = false;
    else if (c === 24) cur.under = false;
    else if (c >= 30 && c <= 37) cur.fg = c - 30;
    else if (c >= 90 && c <= 97) cur.fg = c - 90 + 8;
    else if (c === 39) cur.fg = null;
    else if (c >= 40 && c <= 47) cur.bg = c - 40;
    else if (c >= 100 && c <= 107) cur.bg = c - 100 + 8;
    else if (c === 49) cur.bg = null;
    else if ((c === 38 || c === 48) && codes[i + 1] === 5) {
      // 256 colours: the 16 basic ones map to classes, the rest to the nearest basic one
      const n = codes[i + 2] ?? 0;
      const basic = n < 16 ? n : 7;
      if (c === 38) cur.fg = basic;
      else cur.bg = basic;
      i += 2;
    } else if ((c === 38 || c === 48) && codes[i + 1] === 2) i += 4; // truecolour: ignored
  }
  const cls = [];
  if (cur.fg != null) cls.push(`ansi-fg${cur.fg}`);
  if (cur.bg != null) cls.push(`ansi-bg${cur.bg}`);
  if (cur.bold) cls.push("ansi-bold");
  if (cur.dim) cls.push("ansi-dim");
  if (cur.italic) cls.push("ansi-italic");
  if (cur.under) cls.push("ansi-under");
  return cls.join(" ");
}

// Text (possibly with ANSI colours) to safe HTML: escaped, colours as <span class="ansi-…">,
// other control bytes visible, the search term wrapped in <mark>.
export function richText(text, query = "") {
  const s = String(text ?? "");
  const cur = {};
  let out = "";
  let last = 0;
  let open = "";
  const emit = (chunk) => {
    const html = highlight(chunk, query);
    out += open ? `<span class="${open}">${html}</span>` : html;
  };
  SGR.lastIndex = 0;
  for (let m; (m = SGR.exec(s)); ) {
    if (m.index > last) emit(s.slice(last, m.index));
    open = sgrClasses(m[1], cur);
    last = m.index + m[0].length;
  }
  if (last < s.length) emit(s.slice(last));
  return out;
}

// The text with the ANSI colour sequences removed (for search matching and plain copies).
export function stripAnsi(text) {
  return String(text ?? "").replace(SGR, "");
}

function highlight(chunk, query) {
  if (!query) return escText(chunk);
  const lower = chunk.toLowerCase();
  const q = query.toLowerCase();
  let out = "";
  let at = 0;
  for (let i = lower.indexOf(q); i !== -1 && q; i = lower.indexOf(q, at)) {
    out += escText(chunk.slice(at, i)) + `<mark>${escText(chunk.slice(i, i + q.length))}</mark>`;
    at = i + q.length;
  }
  return out + escText(chunk.slice(at));
}

// ------------------------------------------------------------------ time

const pad = (n, w = 2) => String(n).padStart(w, "0");

// The zone label for `date` in the browser's zone (e.g. "UTC+01:00"), or "UTC".
export function zoneLabel(utc, date = new Date()) {
  if (utc) return "UTC";
  const off = -date.getTimezoneOffset();
  if (off === 0) return "UTC+00:00";
  const sign = off > 0 ? "+" : "-";
  return `UTC${sign}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
}

// "2026-12-01 10:53:16.123" in UTC or local time, plus the zone ("Z" or "+01:00").
export function formatTime(iso, utc) {
  if (!iso) return { date: "", time: "", zone: "" };
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return { date: "", time: String(iso), zone: "" };
  if (utc) {
    return {
      date: `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`,
      time: `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}`,
      zone: "Z",
    };
  }
  const off = -d.getTimezoneOffset();
  const zone = `${off >= 0 ? "+" : "-"}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
  return {
    date: `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`,
    time: `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`,
    zone,
  };
}

export function formatDuration(ms) {
  if (ms == null || !Number.isFinite(ms)) return "";
  if (ms < 1) return "<1 ms";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  return `${Math.floor(ms / 60_000)} m ${Math.round((ms % 60_000) / 1000)} s`;
}

export function formatAgo(iso, now = Date.now()) {
  if (!iso) return "–";
  const s = Math.max(0, (now - new Date(iso).getTime()) / 1000);
  if (s < 60) return `${Math.floor(s)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

// A value as indented JSON-like text where strings keep their real newlines (so a multi-line
// message or a stack trace in a payload reads as text, not as "\n"). Returns safe HTML.
export function prettyValue(value, indent = "") {
  if (value === null || value === undefined) return '<span class="j-null">null</span>';
  if (typeof value === "string") {
    const body = richText(value).replaceAll("\n", "\n" + indent + " ");
    return `<span class="j-str">"${body}"</span>`;
  }
  if (typeof value === "number" || typeof value === "boolean") return `<span class="j-num">${esc(value)}</span>`;
  const inner = indent + "  ";
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return "[\n" + value.map((v) => inner + prettyValue(v, inner)).join(",\n") + "\n" + indent + "]";
  }
  const keys = Object.keys(value);
  if (!keys.length) return "{}";
  return (
    "{\n" +
    keys.map((k) => `${inner}<span class="j-key">"${esc(k)}"</span>: ${prettyValue(value[k], inner)}`).join(",\n") +
    "\n" +
    indent +
    "}"
  );
}
