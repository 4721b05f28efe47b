"""What the dashboard's browser tests share: launching Debian's Chromium with Playwright, opening
pages that collect their console errors, posting events, and waiting on what a page holds and
shows. Nothing is mocked: the page talks to a real ``orchlog serve`` over its public API.

The list is virtualized, so "shows" means: every held event is in exactly one row of the list
(a PostToolUse may share its PreToolUse's row), and the rows in the DOM are a contiguous run of
that list.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout

from .api import history

CHROMIUM = "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else shutil.which("chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# screenshots for people to look at: $ORCHLOG_ARTIFACTS, else <tmp>/orchlog-artifacts (outside the
# repository, so never committed)
ARTIFACTS = Path(os.environ.get("ORCHLOG_ARTIFACTS") or Path(tempfile.gettempdir()) / "orchlog-artifacts")
LEVELS = ["INFO", "DEBUG", "ERROR", "WARNING", "INFO", "CRITICAL", "INFO", "ERROR"]

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium at /usr/bin/chromium or on PATH (apt-get install -y chromium)"
)

# [held seqs, list rows (each a list of seqs), DOM rows (leading seq), DOM rows (all seqs)]
JS_SHOWN = """() => {
  const dom = [...document.querySelectorAll('#stream .row')];
  return [
    window.orchlog ? window.orchlog.events() : null,
    window.orchlog ? window.orchlog.rows() : null,
    dom.map((r) => Number(r.dataset.seq)),
    dom.flatMap((r) => [Number(r.dataset.seq), ...(r.dataset.postSeq ? [Number(r.dataset.postSeq)] : [])]),
  ];
}"""
JS_SHOWS_EXACTLY = """(want) => {
  if (!window.orchlog) return false;
  const held = window.orchlog.events();
  if (held.length !== want.length || !held.every((s, i) => s === want[i])) return false;
  const rows = window.orchlog.rows();
  const flat = rows.flat().sort((a, b) => a - b);
  if (flat.length !== want.length || !flat.every((s, i) => s === want[i])) return false;
  const dom = [...document.querySelectorAll('#stream .row')].map((r) => Number(r.dataset.seq));
  if (!rows.length) return dom.length === 0;
  if (!dom.length) return false;
  const start = rows.findIndex((r) => r[0] === dom[0]);
  if (start < 0 || !dom.every((s, i) => rows[start + i] && rows[start + i][0] === s)) return false;
  const st = window.orchlog.state;  // a page that follows the newest rows shows the newest row
  return !(st.follow && !st.paused) || dom[dom.length - 1] === rows[rows.length - 1][0];
}"""
JS_NEXT_FRAMES = "() => new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(ok)))"
# the rows wholly or partly inside the list's viewport
JS_VISIBLE_ROWS = """() => {
  const box = document.querySelector('#stream').getBoundingClientRect();
  return [...document.querySelectorAll('#stream .row')].filter((r) => {
    const b = r.getBoundingClientRect();
    return b.bottom > box.top + 1 && b.top < box.bottom - 1;
  }).map((r) => Number(r.dataset.seq));
}"""


class Dashboard:
    """Opens dashboard pages in fresh browser contexts and collects their console errors."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.errors: list[str] = []

    async def page(self, width: int = 1280, height: int = 800, **context: Any) -> Page:
        ctx = await self.browser.new_context(viewport={"width": width, "height": height}, **context)
        page = await ctx.new_page()
        page.on(
            "console",
            lambda msg: msg.type == "error" and self.errors.append(f"console: {msg.text} @ {msg.location.get('url')}"),
        )
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        return page

    async def open(self, url: str, within: float = 10.0, width: int = 1280, height: int = 800, **context: Any) -> Page:
        page = await self.page(width, height, **context)
        page.set_default_timeout(within * 1000)
        await page.goto(url)
        await wait_state(page, "#conn", "state", "open", within)
        return page

    def assert_clean(self, allowed: Any = None) -> None:
        """No console error and no uncaught exception (except messages matching `allowed`)."""
        bad = [e for e in self.errors if allowed is None or not allowed.search(e)]
        assert not bad, "the page logged errors:\n" + "\n".join(bad)


async def launch() -> AsyncIterator[Dashboard]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield Dashboard(browser)
        finally:
            await browser.close()


def mixed_events(agents: list[str], n: int, start: int = 0) -> list[dict[str, Any]]:
    """n events for POST /api/v1/events: agent logs of several agents and levels, some system logs;
    every 5th mentions a "NeEdLe" (mixed case, for the case-insensitive search)."""
    items: list[dict[str, Any]] = []
    for i in range(start, start + n):
        level = LEVELS[i % len(LEVELS)]
        text = f"step {i} found the NeEdLe here" if i % 5 == 0 else f"step {i}: ran the tool <ok> & done"
        if i % 7 == 3:
            items.append({"kind": "system_log", "level": level, "message": text, "file_path": "adw/run.py"})
        else:
            items.append(
                {
                    "kind": "agent_log",
                    "agent_id": agents[i % len(agents)],
                    "event_category": ["hook", "response"][i % 2],
                    "event_type": ["PreToolUse", "PostToolUse", "text"][i % 3],
                    "level": level,
                    "content": text,
                    "payload": {"i": i, "tool": "Bash"},
                }
            )
    return items


async def post_events(client: httpx.AsyncClient, items: list[dict[str, Any]]) -> list[int]:
    r = await client.post("/api/v1/events", json=items)
    assert r.status_code == 201, r.text
    return [item["seq"] for item in r.json()["items"]]


async def history_seqs(client: httpx.AsyncClient, params: dict[str, Any] | None = None) -> list[int]:
    return [item["seq"] for item in await history(client, params)]


def describe(got: list[int] | None, want: list[int]) -> str:
    if got is None:
        return "window.orchlog is not defined"
    dups = sorted({s for s in got if got.count(s) > 1})
    return (
        f"{len(got)} seqs, want {len(want)}; missing {sorted(set(want) - set(got))[:20]}, "
        f"extra {sorted(set(got) - set(want))[:20]}, duplicates {dups[:20]}, "
        f"in order: {got == sorted(got)}; got head {got[:10]} tail {got[-10:]}"
    )


async def wait_shown(page: Page, want: list[int], within: float = 10.0) -> None:
    """The page holds exactly `want` in this order, every one in a row of its list, and the DOM
    shows a contiguous run of those rows, within `within` seconds."""
    try:
        await page.wait_for_function(JS_SHOWS_EXACTLY, arg=want, timeout=within * 1000, polling=50)
    except PlaywrightTimeout:
        held, rows, dom, _ = await page.evaluate(JS_SHOWN)
        flat = sorted(s for r in rows or [] for s in r)
        raise AssertionError(
            f"after {within}s the page holds {describe(held, want)}\nits rows hold {describe(flat, want)}\n"
            f"and the DOM shows rows {dom[:5]}…{dom[-5:]}"
        ) from None


async def wait_state(page: Page, selector: str, attr: str, value: str, within: float = 10.0) -> None:
    try:
        await page.wait_for_selector(f'{selector}[data-{attr}="{value}"]', timeout=within * 1000)
    except PlaywrightTimeout:
        now = await page.evaluate(f"document.querySelector('{selector}').dataset.{attr}")
        raise AssertionError(f"{selector} data-{attr} is {now!r} after {within}s, want {value!r}") from None


async def wait_js(page: Page, expr: str, what: str, within: float = 10.0, arg: Any = None) -> None:
    try:
        await page.wait_for_function(expr, arg=arg, timeout=within * 1000, polling=50)
    except PlaywrightTimeout:
        raise AssertionError(f"timed out after {within}s waiting for {what}; {await summary(page)}") from None


async def summary(page: Page) -> str:
    """What the page is doing, for failure messages."""
    return str(
        await page.evaluate(
            """() => {
              const st = window.orchlog && window.orchlog.state;
              if (!st) return 'no window.orchlog';
              const $ = (sel) => document.querySelector(sel);
              const dom = [...document.querySelectorAll('#stream .row')].map((r) => Number(r.dataset.seq));
              return {url: location.search, held: st.events.length, rows: st.rows && st.rows.length,
                follow: st.follow, mode: $('#mode').dataset.mode, conn: $('#conn').textContent,
                lastSeq: st.lastSeq, scrollTop: $('#stream').scrollTop, dom: [dom[0], dom.at(-1), dom.length],
                notice: $('#notice').hidden ? null : $('#notice').textContent};
            }"""
        )
    )


async def rendered(page: Page) -> list[int]:
    """Every seq the DOM shows (a paired row counts for both of its events), ascending."""
    return sorted((await page.evaluate(JS_SHOWN))[3])


async def visible_rows(page: Page) -> list[int]:
    return list(await page.evaluate(JS_VISIBLE_ROWS))


def url_filters(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


async def save_screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    await page.screenshot(path=str(shot))
    return keep_png(shot)


def keep_png(shot: Path) -> Path:
    """Check the file is a PNG worth looking at and copy it to ARTIFACTS."""
    assert shot.is_file() and shot.stat().st_size > 1000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / shot.name)
    return shot
