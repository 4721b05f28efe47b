"""The dashboard at `/` in a real headless Chromium against a real `orchlog serve` (issues 5, 19).

Nothing is mocked: events go in over HTTP, the page talks to the server over its public API, and
what the page holds (``window.orchlog.events()``) and renders (``#stream .row[data-seq]``) is
compared with the history API for the same filter. Every wait polls a condition with a deadline;
every test ends by checking that the page logged no console error and threw nothing. The
numbered defects of issue 19 each have a test below, named after what they check.
"""

from __future__ import annotations

import random
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from conftest import Server, free_port, history, make_agents
from dashboard_kit import (
    JS_NEXT_FRAMES,
    Dashboard,
    history_seqs,
    launch,
    mixed_events,
    needs_chromium,
    post_events,
    rendered,
    save_screenshot,
    url_filters,
    wait_shown,
    wait_state,
)

pytestmark = needs_chromium


@pytest.fixture
async def dashboard() -> AsyncIterator[Dashboard]:
    async for d in launch():
        yield d


# ---------------------------------------------------------------- tests


async def test_posted_events_appear_live_in_order(dashboard: Dashboard, server: Server, client: httpx.AsyncClient):
    _, agents = await make_agents(client, 3)
    await post_events(client, mixed_events(agents, 30))
    page = await dashboard.open(server.url + "/")
    await wait_shown(page, await history_seqs(client))
    await wait_state(page, "#mode", "mode", "live")

    for batch in range(3):
        posted = await post_events(client, mixed_events(agents, 20, start=30 + 20 * batch))
        want = await history_seqs(client)
        assert want[-20:] == posted
        await wait_shown(page, want, within=5)

    want_items = {item["seq"]: item for item in await history(client)}
    assert len(want_items) == 90
    rows = await page.evaluate(
        """() => [...document.querySelectorAll('#stream .row')].map((r) => ({
          seq: Number(r.dataset.seq), level: r.querySelector('.level').textContent,
          text: r.querySelector('.text').textContent, system: r.classList.contains('system_log')}))"""
    )
    assert len(rows) >= 20 and rows[-1]["seq"] == max(want_items)  # following: the newest rows
    for row in rows:
        item = want_items[row["seq"]]
        data = item["data"]
        assert row["level"] == data["level"]
        assert row["system"] == (item["kind"] == "system_log")
        # escaped, not interpreted (a paired tool row starts with its duration badge)
        assert row["text"].endswith(data.get("content") or data.get("message"))
    assert await page.text_content("#count") == "90"
    dashboard.assert_clean()


async def test_level_filter_and_search_show_exactly_the_matching_rows(
    dashboard: Dashboard, server: Server, client: httpx.AsyncClient
):
    _, agents = await make_agents(client, 2)
    await post_events(client, mixed_events(agents, 150))
    everything = await history_seqs(client)
    errors = await history_seqs(client, {"level": "ERROR"})
    errors_needle = await history_seqs(client, {"level": "ERROR", "q": "needle"})
    needle = await history_seqs(client, {"q": "needle"})
    assert 0 < len(errors_needle) < len(errors) < len(everything)
    assert len(errors_needle) < len(needle) < len(everything)

    page = await dashboard.open(server.url + "/")
    await wait_shown(page, everything)

    await page.click('#levels .chip[data-level="ERROR"]')
    await wait_shown(page, errors)
    assert url_filters(page) == {"level": ["ERROR"]}
    assert set(await page.eval_on_selector_all("#stream .row .level", "els => els.map(e => e.textContent)")) == {
        "ERROR"
    }

    await page.locator("#search").press_sequentially("needle", delay=20)  # debounced into one search
    await wait_shown(page, errors_needle)
    assert url_filters(page) == {"level": ["ERROR"], "q": ["needle"]}
    marks = await page.eval_on_selector_all("#stream .row .text mark", "els => els.map(e => e.textContent)")
    shown = await page.eval_on_selector_all("#stream .row", "els => els.length")
    assert marks == ["NeEdLe"] * shown and shown > 0  # every row highlights its match

    await page.click('#levels .chip[data-level="ERROR"]')  # off again: search only
    await wait_shown(page, needle)
    assert url_filters(page) == {"q": ["needle"]}

    # the filtered URL is shareable: a fresh page opened on it shows the same view
    await page.click('#levels .chip[data-level="ERROR"]')
    await wait_shown(page, errors_needle)
    shared = page.url
    fresh = await dashboard.open(shared)
    await wait_shown(fresh, errors_needle)
    assert await fresh.input_value("#search") == "needle"
    assert await fresh.eval_on_selector_all("#levels .chip.on", "els => els.map(e => e.dataset.level)") == ["ERROR"]

    # live events go through the same filter
    live = [
        {"kind": "system_log", "level": "ERROR", "message": "live needle, shown"},
        {"kind": "system_log", "level": "INFO", "message": "live needle, filtered out by level"},
        {"kind": "system_log", "level": "ERROR", "message": "live, filtered out by search"},
    ]
    seqs = await post_events(client, live)
    want = await history_seqs(client, {"level": "ERROR", "q": "needle"})
    assert want == [*errors_needle, seqs[0]]
    await wait_shown(fresh, want, within=5)
    await wait_shown(page, want, within=5)
    dashboard.assert_clean()


async def test_pause_buffers_and_resume_shows_the_buffered_events(
    dashboard: Dashboard, server: Server, client: httpx.AsyncClient
):
    _, agents = await make_agents(client, 2)
    await post_events(client, mixed_events(agents, 20))
    page = await dashboard.open(server.url + "/")
    before = await history_seqs(client)
    await wait_shown(page, before)

    await page.click("#pause")
    await wait_state(page, "#mode", "mode", "paused")
    await post_events(client, mixed_events(agents, 10, start=20))
    await post_events(client, mixed_events(agents, 15, start=30))
    new_events = page.locator("#new-events")
    try:
        await page.wait_for_function(
            "() => !document.querySelector('#new-events').hidden && "
            "/^25 new/.test(document.querySelector('#new-events').textContent)",
            timeout=5000,
        )
    except PlaywrightTimeout:
        raise AssertionError(f"#new-events says {await new_events.text_content()!r}, want 25 new") from None
    await page.evaluate(JS_NEXT_FRAMES)
    assert await rendered(page) == before, "events posted while paused were rendered"
    assert await page.evaluate("window.orchlog.state.paused") is True
    await wait_state(page, "#mode", "mode", "paused")

    await page.click("#pause")  # resume
    await wait_shown(page, await history_seqs(client), within=5)
    assert await new_events.is_hidden()
    await wait_state(page, "#mode", "mode", "live")

    # again, resuming from the "N new events" button this time
    await page.click("#pause")
    await post_events(client, mixed_events(agents, 5, start=45))
    await page.wait_for_function("() => /^5 new/.test(document.querySelector('#new-events').textContent)")
    await page.evaluate(JS_NEXT_FRAMES)
    assert len(await page.evaluate("window.orchlog.events()")) == 45
    await new_events.click()
    await wait_shown(page, await history_seqs(client), within=5)
    assert await new_events.is_hidden()
    await wait_state(page, "#mode", "mode", "live")
    assert await page.evaluate("window.orchlog.state.paused") is False
    dashboard.assert_clean()


async def test_load_older_prepends_the_earlier_events(dashboard: Dashboard, server: Server, client: httpx.AsyncClient):
    _, agents = await make_agents(client, 2)
    await post_events(client, mixed_events(agents, 400))
    everything = await history_seqs(client)
    assert len(everything) == 400

    page = await dashboard.open(server.url + "/")
    await wait_shown(page, everything[-200:])  # the initial view is the last 200
    assert await page.text_content("#count") == "200"

    await page.click("#older")
    await wait_shown(page, everything)
    assert await page.text_content("#count") == "400"

    await page.click("#older")  # nothing older is left: said plainly, nothing changes
    await page.wait_for_function("() => /No older events/.test(document.querySelector('#notice').textContent)")
    assert await page.is_visible("#notice")
    await wait_shown(page, everything)

    # live events still append after the prepended history
    await post_events(client, mixed_events(agents, 3, start=400))
    await wait_shown(page, await history_seqs(client), within=5)
    dashboard.assert_clean()


def port_for_restarts() -> int:
    """A free port below the kernel's ephemeral range: while the server is down, no outgoing
    connection or bind(0) elsewhere on the machine can take it, so a restart can bind it again."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(100):
        port = random.randrange(max(1025, low - 10_000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


@pytest.mark.parametrize("outage", ["brief", "long"])
async def test_server_restart_while_open_reconnects_without_duplicates_or_holes(
    dashboard: Dashboard, db_path: Path, outage: str
):
    first = Server(db_path, port=port_for_restarts()).start()
    second: Server | None = None
    try:
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as client:
            _, agents = await make_agents(client, 2)
            await post_events(client, mixed_events(agents, 40))
            page = await dashboard.open(first.url + "/")
            await wait_shown(page, await history_seqs(client))

        first.kill9()
        await page.wait_for_function("() => document.querySelector('#conn').dataset.state !== 'open'", timeout=10000)
        if outage == "long":  # down long enough for three refused reconnects: still an outage, not "no WebSocket"
            await page.wait_for_function("() => window.orchlog.state.attempts >= 4", timeout=15000)

        second = Server(db_path, port=first.port).start()
        async with httpx.AsyncClient(base_url=second.url, timeout=30) as client:
            await post_events(client, mixed_events(agents, 30, start=40))  # before the page is back
            await wait_state(page, "#conn", "state", "open", within=20)
            await post_events(client, mixed_events(agents, 10, start=70))  # live after the reconnect
            want = await history_seqs(client)
            assert len(want) == 80 and len(set(want)) == 80 and want == sorted(want)
            await wait_shown(page, want, within=15)
        # back on a WebSocket, with no claim that WebSockets are unavailable
        notice = await page.text_content("#notice")
        assert await page.evaluate("window.orchlog.state.useSSE") is False, f"fell back to SSE: {notice}"
        assert await page.text_content("#conn") == "connected"
        assert await page.is_hidden("#notice"), notice
    finally:
        first.stop()
        if second is not None:
            second.stop()
    # while the server was down the browser itself reports the refused connections; nothing else
    refused = re.compile(
        rf"(WebSocket connection to 'ws://127\.0\.0\.1:{first.port}/api/v1/stream\?.*' failed"
        r"|Failed to load resource: net::ERR_CONNECTION_REFUSED)"
    )
    dashboard.assert_clean(allowed=refused)


async def test_screenshot_is_written(dashboard: Dashboard, server: Server, client: httpx.AsyncClient, tmp_path: Path):
    _, agents = await make_agents(client, 4)
    await post_events(client, mixed_events(agents, 60))
    page = await dashboard.open(server.url + "/")
    want = await history_seqs(client)
    await wait_shown(page, want)
    await wait_state(page, "#mode", "mode", "live")
    await page.wait_for_function("() => document.querySelectorAll('#agents .agent').length === 4")

    # expand a row: its payload shows as formatted JSON
    target = page.locator("#stream .row.agent_log").last
    await target.click()
    details = await target.locator(".details").text_content()
    assert '"payload": {' in (details or "")
    await page.evaluate(JS_NEXT_FRAMES)
    await save_screenshot(page, tmp_path, "dashboard.png")
    dashboard.assert_clean()
