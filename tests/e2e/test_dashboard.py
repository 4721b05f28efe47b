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
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page
from playwright.async_api import TimeoutError as PlaywrightTimeout

from helpers import Server, free_port, history, make_agents
from helpers.dashboard import (
    JS_NEXT_FRAMES,
    Dashboard,
    history_seqs,
    mixed_events,
    needs_chromium,
    post_events,
    rendered,
    save_screenshot,
    url_filters,
    visible_rows,
    wait_js,
    wait_shown,
    wait_state,
)

pytestmark = needs_chromium


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
    await wait_count(page, "90")
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


async def wait_count(page: Page, expected: str) -> None:
    """The held-events counter reaches ``expected`` (it is painted on the next animation frame,
    after the rows, so reading it at once races the paint)."""
    script = "(n) => document.querySelector('#count').textContent === n"
    await page.wait_for_function(script, arg=expected, timeout=10_000)


async def test_load_older_prepends_the_earlier_events(dashboard: Dashboard, server: Server, client: httpx.AsyncClient):
    _, agents = await make_agents(client, 2)
    await post_events(client, mixed_events(agents, 400))
    everything = await history_seqs(client)
    assert len(everything) == 400

    page = await dashboard.open(server.url + "/")
    await wait_shown(page, everything[-200:])  # the initial view is the last 200
    await wait_count(page, "200")

    await page.click("#older")
    await wait_shown(page, everything)
    await wait_count(page, "400")

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


# ---------------------------------------------------------------- issue 19: the numbered defects


async def agent_counts(page: Page) -> dict[str, int]:
    return dict(
        await page.evaluate(
            """() => [...document.querySelectorAll('#agents .agent')].map((li) =>
              [li.dataset.id, Number(li.querySelector('.count').textContent.replaceAll(',', ''))])"""
        )
    )


async def real_counts(client: httpx.AsyncClient) -> dict[str, int]:
    r = await client.get("/list_agents")
    return {a["id"]: a["log_count"] for a in r.json()["agents"]}


async def test_1_agent_counts_are_the_servers_plus_live_events_only(
    dashboard: Dashboard, server: Server, client: httpx.AsyncClient
):
    _, agents = await make_agents(client, 3)
    await post_events(client, mixed_events(agents, 120))
    want = await real_counts(client)
    page = await dashboard.open(server.url + "/")
    await wait_state(page, "#mode", "mode", "live")
    await wait_js(page, "(n) => document.querySelectorAll('#agents .agent').length === n", "3 agent cards", arg=3)
    assert await agent_counts(page) == want  # replayed history is not counted again

    for _ in range(3):  # filter changes re-replay history: the counts stay the servers'
        await page.click('#levels .chip[data-level="ERROR"]')
        await wait_state(page, "#mode", "mode", "live")
        await page.click('#levels .chip[data-level="ERROR"]')
        await wait_state(page, "#mode", "mode", "live")
    assert await agent_counts(page) == want

    await post_events(client, mixed_events(agents, 30, start=120))  # live: counted once each
    want = await real_counts(client)
    try:
        await page.wait_for_function(
            """(want) => [...document.querySelectorAll('#agents .agent')].every((li) =>
                 Number(li.querySelector('.count').textContent.replaceAll(',', '')) === want[li.dataset.id])""",
            arg=want,
            timeout=5000,
        )
    except PlaywrightTimeout:
        raise AssertionError(f"counts {await agent_counts(page)}, want {want}") from None
    dashboard.assert_clean()


async def test_2_head_follows_every_event_frame(dashboard: Dashboard, server: Server, client: httpx.AsyncClient):
    _, agents = await make_agents(client, 2)
    await post_events(client, mixed_events(agents, 20))
    page = await dashboard.open(server.url + "/")
    await wait_state(page, "#mode", "mode", "live")
    for n in range(3):
        seqs = await post_events(client, mixed_events(agents, 50, start=20 + 50 * n))
        await wait_js(
            page,
            "(seq) => document.querySelector('#head').textContent.replaceAll(',', '') === String(seq)",
            f"head {seqs[-1]}",
            within=5,
            arg=seqs[-1],
        )
    dashboard.assert_clean()


async def test_3_memory_cap_never_drops_rows_being_read_or_just_loaded(
    dashboard: Dashboard, server: Server, client: httpx.AsyncClient
):
    _, agents = await make_agents(client, 2)
    for start in range(0, 3400, 1000):
        await post_events(client, mixed_events(agents, min(1000, 3400 - start), start=start))
    everything = await history_seqs(client)
    page = await dashboard.open(server.url + "/?max_events=1000")
    await wait_shown(page, everything[-200:])

    for _ in range(17):  # "Load older" back to the very first event, reading each page from its top
        await page.click("#older")
        await page.evaluate(JS_NEXT_FRAMES)
        await page.evaluate("() => { document.querySelector('#stream').scrollTop = 0; }")
        await page.evaluate(JS_NEXT_FRAMES)
        first = (await visible_rows(page))[0]
        if first == everything[0]:
            break
    assert (await visible_rows(page))[0] == everything[0], "the first event was let go while loaded and on screen"
    held = await page.evaluate("window.orchlog.events()")
    assert held[0] == everything[0] and held == sorted(held) and len(held) <= 1000 + 400
    await wait_js(page, "() => /let go/.test(document.querySelector('#notice').textContent)", "a let-go notice")

    # live events keep coming while the reader sits at the top: the rows on screen do not change
    shown = await visible_rows(page)
    for n in range(3):
        await post_events(client, mixed_events(agents, 400, start=3400 + 400 * n))
        await page.evaluate(JS_NEXT_FRAMES)
        assert (await visible_rows(page))[:5] == shown[:5]
    assert not await page.is_hidden("#new-events")  # the way back to the newest events

    await page.click("#new-events")  # jump to latest: the newest events, live again
    await wait_state(page, "#mode", "mode", "live")
    last = (await history_seqs(client, {"after": everything[-1]}))[-1]
    await wait_js(
        page, "(seq) => window.orchlog.events().at(-1) === seq", f"the newest event {last}", within=5, arg=last
    )
    dashboard.assert_clean()


async def test_4_view_in_context_shows_and_highlights_the_target(
    dashboard: Dashboard, server: Server, client: httpx.AsyncClient
):
    _, agents = await make_agents(client, 2)
    for start in range(0, 3000, 1000):
        await post_events(client, mixed_events(agents, 1000, start=start))
    everything = await history_seqs(client)
    target = everything[1234]
    page = await dashboard.open(server.url + "/?level=ERROR")
    # one row's seq and its link, read together: the list may re-render between two separate reads
    await page.locator("#stream .row .actions a").first.wait_for()
    seq, link = await page.evaluate(
        """() => { const r = [...document.querySelectorAll('#stream .row')].find((r) => r.querySelector('.actions a'));
                   return [Number(r.dataset.seq), r.querySelector('.actions a').getAttribute('href')]; }"""
    )
    assert link is not None and str(seq) in link, (seq, link)
    # the link of a row, followed for another seq: the same shape of URL
    url = server.url + "/" + link.replace(str(seq), str(target))
    ctx = await dashboard.open(url)
    # the target's row (a PostToolUse shares its PreToolUse's row) is highlighted and on screen
    js_target = """() => [...document.querySelectorAll('#stream .row.target')].map((r) =>
        [Number(r.dataset.seq), Number(r.dataset.postSeq || 0)])"""
    await wait_js(
        ctx, f"(seq) => ({js_target})().some((r) => r.includes(seq))", f"row {target} highlighted", arg=target
    )
    await ctx.evaluate(JS_NEXT_FRAMES)
    [[lead, _]] = await ctx.evaluate(js_target)
    shown = await visible_rows(ctx)
    assert lead in shown, f"target {target} (row {lead}) not on screen: {shown[:3]}…{shown[-3:]}"
    i = everything.index(lead)
    assert everything[i - 1] in shown or everything[i + 1] in shown  # with its neighbours, unfiltered
    assert await ctx.evaluate("document.querySelector('#mode').dataset.mode") != "live"
    dashboard.assert_clean()


async def test_5_multi_line_messages_say_so_and_expand_with_real_newlines(
    dashboard: Dashboard, server: Server, client: httpx.AsyncClient
):
    _, agents = await make_agents(client, 1)
    text = "Traceback (most recent call last):\n  File 'x.py', line 1\nValueError: boom"
    [seq] = await post_events(
        client,
        [
            {
                "kind": "agent_log",
                "agent_id": agents[0],
                "event_category": "response",
                "event_type": "text",
                "content": text,
                "payload": {"stderr": "line one\nline two"},
            }
        ],
    )
    page = await dashboard.open(server.url + "/")
    row = page.locator(f'#stream .row[data-seq="{seq}"]')
    await row.wait_for()
    collapsed = await row.locator(".text").inner_text()
    assert collapsed.startswith("Traceback (most recent call last):")
    assert "+2 lines" in collapsed  # a sign that there is more
    await row.click()
    await page.locator(f'#stream .row[data-seq="{seq}"] .details').wait_for()
    full = await page.locator(f'#stream .row[data-seq="{seq}"] .details .full').inner_text()
    assert full.strip() == text
    details = await page.locator(f'#stream .row[data-seq="{seq}"] .details').inner_text()
    assert "\\n" not in details and "line one\n" in details  # real newlines, not a literal \\n
    dashboard.assert_clean()


async def test_6_fits_a_390px_phone(dashboard: Dashboard, server: Server, client: httpx.AsyncClient, tmp_path: Path):
    _, agents = await make_agents(client, 3)
    long = "a long message that has to wrap on a phone rather than push the page sideways " * 3
    await post_events(client, [*mixed_events(agents, 40), {"kind": "system_log", "message": long}])
    page = await dashboard.open(server.url + "/", width=390, height=844)
    await wait_state(page, "#mode", "mode", "live")
    await page.evaluate(JS_NEXT_FRAMES)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    offscreen = await page.evaluate(
        """() => [...document.querySelectorAll('button, input, select, #stream .row .text')]
             .filter((el) => el.offsetParent !== null && !el.closest('dialog, #sidebar'))
             .filter((el) => { const b = el.getBoundingClientRect(); return b.left < 0 || b.right > 390; })
             .map((el) => el.id || el.className)"""
    )
    assert offscreen == [], f"outside the 390 px viewport: {offscreen}"
    for control in ("#pause", "#token-btn", "#older", "#search"):
        assert await page.locator(control).is_visible(), control
    await page.click("#pause")  # reachable means clickable: nothing covers it
    await wait_state(page, "#mode", "mode", "paused")
    await page.click("#pause")
    # the sidebar is a drawer
    drawer_right = "() => document.querySelector('#sidebar').getBoundingClientRect().right"
    assert await page.evaluate(drawer_right) <= 0
    await page.click("#agents-btn")
    await wait_js(page, f"() => ({drawer_right})() > 295", "the drawer to open")
    await page.locator("#agents .agent").first.click()  # its cards work: a filter by that agent
    await wait_js(page, "() => new URLSearchParams(location.search).has('agent_id')", "an agent filter")
    await wait_js(page, f"() => ({drawer_right})() <= 0", "the drawer to close after a choice")
    await page.click("#agents-btn")
    await wait_js(page, f"() => ({drawer_right})() > 295", "the drawer to open")
    await save_screenshot(page, tmp_path, "dashboard-390x844-drawer.png")
    await page.keyboard.press("Escape")
    await wait_js(page, "() => !document.body.classList.contains('drawer-open')", "the drawer closes")
    await page.evaluate(JS_NEXT_FRAMES)
    await save_screenshot(page, tmp_path, "dashboard-390x844.png")
    dashboard.assert_clean()


@pytest.mark.serial  # CPU-heavy / timing-bound: runs alone, after the parallel pass
async def test_7_a_50k_burst_is_on_screen_within_5s_of_the_last_ack(
    dashboard: Dashboard, server: Server, client: httpx.AsyncClient
):
    _, agents = await make_agents(client, 4)
    page = await dashboard.open(server.url + "/")
    await wait_state(page, "#mode", "mode", "live")
    last = 0
    for start in range(0, 50_000, 1000):
        last = (await post_events(client, mixed_events(agents, 1000, start=start)))[-1]
    await wait_js(
        page,
        """(seq) => window.orchlog.state.lastSeq === seq &&
             [...document.querySelectorAll('#stream .row')].some((r) => Number(r.dataset.seq) >= seq - 1)""",
        f"the page shows seq {last} (the last ack)",
        within=5,
        arg=last,
    )
    assert len(await page.evaluate("window.orchlog.events()")) == 50_000
    assert await page.evaluate("document.querySelectorAll('#stream .row').length") < 200  # virtualized
    dashboard.assert_clean()


async def test_8_scrolled_up_while_live_counts_new_events_and_is_not_live(
    dashboard: Dashboard, server: Server, client: httpx.AsyncClient
):
    _, agents = await make_agents(client, 2)
    await post_events(client, mixed_events(agents, 200))
    page = await dashboard.open(server.url + "/")
    await wait_shown(page, await history_seqs(client))
    await wait_state(page, "#mode", "mode", "live")
    await page.hover("#stream")
    await page.mouse.wheel(0, -1500)
    await wait_state(page, "#mode", "mode", "scrolled")
    shown = await visible_rows(page)
    await post_events(client, [{"kind": "system_log", "message": f"new {i}"} for i in range(30)])
    await wait_js(
        page,
        "() => /^30 new — jump to latest$/.test(document.querySelector('#new-events').textContent)"
        " && !document.querySelector('#new-events').hidden",
        "the '30 new — jump to latest' pill",
        within=5,
    )
    assert (await visible_rows(page)) == shown  # the reader's rows stay put
    assert await page.evaluate("document.querySelector('#mode').dataset.mode") == "scrolled"
    await page.click("#new-events")
    await wait_state(page, "#mode", "mode", "live")
    await wait_shown(page, await history_seqs(client), within=5)
    assert await page.is_hidden("#new-events")
    dashboard.assert_clean()


async def test_9_no_older_notice_goes_away(dashboard: Dashboard, server: Server, client: httpx.AsyncClient):
    _, agents = await make_agents(client, 1)
    await post_events(client, mixed_events(agents, 10))
    page = await dashboard.open(server.url + "/")
    await wait_shown(page, await history_seqs(client))
    await page.click("#older")
    await wait_js(page, "() => /No older events/.test(document.querySelector('#notice').textContent)", "the notice")
    assert await page.is_visible("#notice")
    await wait_js(page, "() => document.querySelector('#notice').hidden", "the notice to go", within=8)
    dashboard.assert_clean()


async def test_9_a_wrong_token_is_said_in_the_dialog(dashboard: Dashboard, tmp_path: Path):
    token = "olg_dash_" + "x" * 30
    srv = Server(tmp_path / "auth.db", env={"ORCHLOG_TOKENS": f"dash:read+ingest:{token}"}).start()
    try:
        page = await dashboard.page()
        await page.goto(srv.url + "/")
        await page.locator("#token-dialog").wait_for(state="visible")
        await page.fill("#token-input", "olg_wrong_token")
        await page.click("#token-save")
        await wait_js(
            page,
            "() => document.querySelector('#token-dialog').open && !document.querySelector('#token-error').hidden",
            "the dialog again, with a message",
        )
        message = await page.text_content("#token-error")
        assert message and "refused" in message
        await page.fill("#token-input", token)
        await page.click("#token-save")
        await wait_state(page, "#conn", "state", "open")
        assert await page.is_hidden("#token-dialog")
    finally:
        srv.stop()
    # the browser reports the refused requests itself; nothing else
    dashboard.assert_clean(allowed=re.compile(r"401|WebSocket connection to .* failed"))


async def test_10_ansi_colours_control_bytes_and_times_with_date_and_zone(
    dashboard: Dashboard, server: Server, client: httpx.AsyncClient
):
    _, agents = await make_agents(client, 1)
    text = "\x1b[1;31mFAILED\x1b[0m test_x <b>not bold</b> \x07bell\x00nul \x1b[32mok\x1b[0m"
    [seq] = await post_events(
        client,
        [
            {
                "kind": "agent_log",
                "agent_id": agents[0],
                "event_category": "hook",
                "event_type": "Stop",
                "content": text,
                "timestamp": "2026-03-04T22:30:05.123456Z",
            }
        ],
    )
    page = await dashboard.open(server.url + "/", timezone_id="Asia/Kolkata")  # UTC+05:30
    row = page.locator(f'#stream .row[data-seq="{seq}"]')
    await row.wait_for()
    red = row.locator(".text .ansi-fg1.ansi-bold")
    assert await red.text_content() == "FAILED"
    assert await row.locator(".text .ansi-fg2").text_content() == "ok"
    shown = await row.locator(".text").text_content() or ""
    assert "\x1b" not in shown and "\x07" not in shown and "\x00" not in shown
    assert "<b>not bold</b>" in shown and await row.locator(".text b").count() == 0  # escaped
    assert "\u2407" in shown and "\u2400" in shown  # BEL and NUL as visible control pictures
    assert "[31m" not in shown

    time = await row.locator(".time").text_content()
    assert time == "2026-03-05 04:00:05.123+05:30", time  # local by default, with date and zone
    await page.click("#tz")
    await wait_js(page, "() => document.querySelector('#tz').textContent === 'UTC'", "the UTC toggle")
    time = await page.locator(f'#stream .row[data-seq="{seq}"] .time').text_content()
    assert time == "2026-03-04 22:30:05.123Z", time
    dashboard.assert_clean()


async def test_3_following_lets_go_of_the_oldest_with_a_notice(
    dashboard: Dashboard, server: Server, client: httpx.AsyncClient
):
    _, agents = await make_agents(client, 2)
    page = await dashboard.open(server.url + "/?max_events=500")
    await wait_state(page, "#mode", "mode", "live")
    for start in range(0, 2000, 500):
        await post_events(client, mixed_events(agents, 500, start=start))
    last = (await history_seqs(client))[-1]
    await wait_js(page, "(seq) => window.orchlog.events().at(-1) === seq", f"the newest event {last}", arg=last)
    await page.evaluate(JS_NEXT_FRAMES)
    held = await page.evaluate("window.orchlog.events()")
    assert len(held) <= 500 and held == list(range(held[0], last + 1))  # the newest, contiguous
    assert (await visible_rows(page))[-1] == (await page.evaluate("window.orchlog.rows()"))[-1][0]
    assert "older events were let go" in (await page.text_content("#notice") or "")
    await wait_state(page, "#mode", "mode", "live")  # still live
    dashboard.assert_clean()
