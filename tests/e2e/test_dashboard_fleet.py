"""The dashboard's fleet views (issue 19) in a real headless Chromium against a real server:
agent cards, the session/task/adw/tool filters with the values present, paired tool calls, the
log-volume histogram with its time presets and drag-select, and the screenshots people look at.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import Server, make_agents
from helpers.dashboard import (
    JS_NEXT_FRAMES,
    Dashboard,
    history_seqs,
    mixed_events,
    needs_chromium,
    post_events,
    save_screenshot,
    url_filters,
    wait_js,
    wait_shown,
    wait_state,
)

pytestmark = needs_chromium


def ts(base: datetime, seconds: float) -> str:
    return (base + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def tool_call(agent: str, session: str, tool_use_id: str, tool: str, at: str, post: str | None = None, **kw: Any):
    payload = {"tool_name": tool, "tool_use_id": tool_use_id, "tool_input": {"command": "pytest -q"}}
    base = {"kind": "agent_log", "agent_id": agent, "event_category": "hook", "session_id": session, **kw}
    items = [{**base, "event_type": "PreToolUse", "content": f"{tool}: pytest -q", "payload": payload, "timestamp": at}]
    if post:
        items.append(
            {**base, "event_type": "PostToolUse", "content": f"{tool} done", "payload": payload, "timestamp": post}
        )
    return items


async def test_agent_cards_show_status_model_tokens_cost_and_update_live(
    dashboard: Dashboard, server: Server, client: httpx.AsyncClient
):
    _, agents = await make_agents(client, 2)
    r = await client.patch(
        f"/api/v1/agents/{agents[0]}",
        json={"status": "executing", "input_tokens": 1500, "output_tokens": 200, "total_cost": "0.0123"},
    )
    assert r.status_code == 200, r.text
    page = await dashboard.open(server.url + "/")
    card = page.locator(f'#agents .agent[data-id="{agents[0]}"]')
    await card.wait_for()
    assert await card.locator(".model").text_content() == "test-model"
    assert await card.locator(".status").text_content() == "executing"
    assert await card.locator(".dot").get_attribute("data-status") == "executing"
    assert await card.locator(".tokens").text_content() == "⇣1.5K ⇡200"
    assert await card.locator(".cost").text_content() == "$0.0123"
    assert await card.locator(".last").text_content() == "\N{EN DASH}"  # no event seen yet

    # `agent` frames update the card while the page is open
    r = await client.patch(f"/api/v1/agents/{agents[0]}", json={"status": "blocked", "add_cost": "1.5"})
    assert r.status_code == 200, r.text
    sel = f'#agents .agent[data-id="{agents[0]}"]'
    await wait_js(
        page,
        f"() => document.querySelector('{sel} .status').textContent === 'blocked'"
        f" && document.querySelector('{sel} .cost').textContent === '$1.51'",
        "the card to show the update",
        within=5,
    )
    await post_events(client, mixed_events(agents[:1], 3))
    await wait_js(page, f"() => /s ago$/.test(document.querySelector('{sel} .last').textContent)", "last event time")
    dashboard.assert_clean()


async def test_session_task_adw_filters_offer_the_values_present_and_filter_on_the_server(
    dashboard: Dashboard, server: Server, client: httpx.AsyncClient
):
    _, agents = await make_agents(client, 2)
    items = mixed_events(agents, 60)
    for i, item in enumerate(items):
        if item["kind"] == "agent_log":
            item.update(session_id=f"sess-{i % 3}", task_slug=f"task-{i % 2}", adw_id=f"adw-{i % 4}")
    await post_events(client, items)
    page = await dashboard.open(server.url + "/")
    await wait_shown(page, await history_seqs(client))
    options = await page.evaluate("() => [...document.querySelectorAll('#dl-session option')].map((o) => o.value)")
    assert options == ["sess-0", "sess-1", "sess-2"]
    assert await page.evaluate("() => document.querySelectorAll('#dl-task option').length") == 2
    assert await page.evaluate("() => document.querySelectorAll('#dl-adw option').length") == 4

    await page.click("#more-filters") if await page.is_visible("#more-filters") else None
    await page.fill("#session_id", "sess-1")
    await wait_shown(page, await history_seqs(client, {"session_id": "sess-1"}))
    assert url_filters(page) == {"session_id": ["sess-1"]}
    await page.fill("#adw_id", "adw-2")
    await wait_shown(page, await history_seqs(client, {"session_id": "sess-1", "adw_id": "adw-2"}))
    await page.fill("#task_slug", "task-0")
    await wait_js(page, "() => new URLSearchParams(location.search).has('task_slug')", "task_slug in the URL")
    want = await history_seqs(client, {"session_id": "sess-1", "adw_id": "adw-2", "task_slug": "task-0"})
    await wait_shown(page, want)
    assert url_filters(page) == {"session_id": ["sess-1"], "adw_id": ["adw-2"], "task_slug": ["task-0"]}
    dashboard.assert_clean()


async def test_a_tool_call_is_one_row_with_its_duration_and_outcome(
    dashboard: Dashboard, server: Server, client: httpx.AsyncClient
):
    _, agents = await make_agents(client, 1)
    base = datetime.now(UTC) - timedelta(minutes=1)
    items = [
        *tool_call(agents[0], "s1", "toolu_1", "Bash", ts(base, 0), post=ts(base, 1.5)),
        *tool_call(agents[0], "s1", "toolu_2", "Read", ts(base, 2)),  # still running
    ]
    fail = tool_call(agents[0], "s1", "toolu_3", "Edit", ts(base, 3), post=ts(base, 3.25), level="ERROR")
    fail[1]["event_type"] = "PostToolUseFailure"
    seqs = await post_events(client, items + fail)
    page = await dashboard.open(server.url + "/")
    await wait_shown(page, await history_seqs(client))

    paired = page.locator(f'#stream .row[data-seq="{seqs[0]}"]')
    assert await paired.get_attribute("data-post-seq") == str(seqs[1])
    assert await page.locator(f'#stream .row[data-seq="{seqs[1]}"]').count() == 0  # no row of its own
    assert await paired.locator(".tool-badge.ok").text_content() == "✓ 1.50 s"
    assert await page.locator(f'#stream .row[data-seq="{seqs[2]}"] .tool-badge.running').count() == 1
    assert await page.locator(f'#stream .row[data-seq="{seqs[3]}"] .tool-badge.fail').text_content() == "✗ 250 ms"

    await paired.click()  # expandable: both events in full
    details = page.locator(f'#stream .row[data-seq="{seqs[0]}"] .details section')
    await details.first.wait_for()
    assert await details.count() == 2
    assert "toolu_1" in (await details.nth(1).text_content() or "")

    # the PostToolUse of the running call arrives live and joins its row
    [post] = await post_events(client, tool_call(agents[0], "s1", "toolu_2", "Read", ts(base, 2), post=ts(base, 4))[1:])
    await wait_js(
        page,
        f"() => document.querySelector('#stream .row[data-seq=\"{seqs[2]}\"]')?.dataset.postSeq === '{post}'",
        "the live PostToolUse joins its PreToolUse's row",
        within=5,
    )

    # a tool name filter: the server's tool_name (payload.tool_name), in history and live
    await page.click("#more-filters") if await page.is_visible("#more-filters") else None
    await page.fill("#tool", "Edit")
    await wait_js(
        page,
        f"() => JSON.stringify(window.orchlog.rows()) === JSON.stringify([[{seqs[3]}, {seqs[4]}]])",
        "only the Edit call",
    )
    assert url_filters(page) == {"tool_name": ["Edit"]}
    dashboard.assert_clean()


async def test_histogram_presets_and_drag_select_set_since_until(
    dashboard: Dashboard, server: Server, client: httpx.AsyncClient
):
    _, agents = await make_agents(client, 2)
    base = datetime.now(UTC) - timedelta(hours=3)
    items = mixed_events(agents, 180)
    for i, item in enumerate(items):
        item["timestamp"] = ts(base, i * 60)  # one a minute over three hours
    await post_events(client, items)
    page = await dashboard.open(server.url + "/")
    await wait_shown(page, (await history_seqs(client))[-200:])
    await wait_js(page, "() => document.querySelectorAll('#histogram rect[class^=\"h-\"]').length > 20", "bars")

    await page.click('#range button[data-since="1h"]')
    await wait_shown(page, await history_seqs(client, {"since": "1h"}))
    assert url_filters(page) == {"since": ["1h"]}
    await page.click('#range button[data-since=""]')  # all
    await wait_state(page, "#mode", "mode", "live")
    assert url_filters(page) == {}

    box = await page.locator("#histogram").bounding_box()
    assert box is not None
    await page.evaluate(JS_NEXT_FRAMES)
    y = box["y"] + box["height"] / 2
    await page.mouse.move(box["x"] + box["width"] * 0.25, y)
    await page.mouse.down()
    await page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    await page.mouse.up()
    await wait_js(page, "() => new URLSearchParams(location.search).has('until')", "since/until in the URL")
    got = url_filters(page)
    since, until = got["since"][0], got["until"][0]
    assert base.isoformat() < since < until
    want = await history_seqs(client, {"since": since, "until": until})
    assert 20 < len(want) < 70  # a quarter of three hours, give or take a bucket
    await wait_shown(page, want)
    assert "→" in (await page.text_content("#range-label") or "")
    dashboard.assert_clean()


JS_VOLUME_TOTAL = """() => {
  const v = window.orchlog && window.orchlog.volume();
  return v ? v.buckets.reduce((n, b) => n + Object.values(b.counts).reduce((a, c) => a + c, 0), 0) : null;
}"""


async def test_histogram_counts_every_stored_event_not_only_the_held_ones(
    dashboard: Dashboard, server: Server, client: httpx.AsyncClient
):
    """The bars are the server's counts (/api/v1/stats/volume): 1,000 stored events are all counted
    while the page holds its 200-row tail; live events raise the total within a few seconds; a
    filter change counts what the new filter selects; the bars drawn add up to the same total."""
    _, agents = await make_agents(client, 2)
    base = datetime.now(UTC) - timedelta(hours=2)
    items = mixed_events(agents, 1000)
    for i, item in enumerate(items):
        item["timestamp"] = ts(base, i * 6)
    await post_events(client, items)
    page = await dashboard.open(server.url + "/")
    await wait_shown(page, (await history_seqs(client))[-200:])
    await wait_js(page, f"() => ({JS_VOLUME_TOTAL})() === 1000", "all 1000 stored events counted")
    drawn = await page.evaluate(
        """() => [...document.querySelectorAll('#histogram rect[data-bucket]')]
             .reduce((n, r) => n + Number(r.querySelector('title').textContent.split(' ')[0].replace(/\\D/g, '')), 0)"""
    )
    assert drawn == 1000
    assert len(await page.evaluate("() => window.orchlog.events()")) == 200

    await post_events(client, mixed_events(agents, 50, start=1000))
    await wait_js(page, f"() => ({JS_VOLUME_TOTAL})() === 1050", "live events counted", within=8)
    # live refreshes recount only the newest bucket: what the page merged equals a full recount
    shown = await page.evaluate("() => window.orchlog.volume()")
    r = await client.get("/api/v1/stats/volume", params={"since": shown["since"], "bucket": shown["bucket_s"]})
    full = {b["start"]: b["counts"] for b in r.json()["buckets"]}
    merged = {b["start"]: b["counts"] for b in shown["buckets"]}
    assert merged == {start: full[start] for start in merged}

    await page.click('#levels .chip[data-level="ERROR"]')
    errors = len(await history_seqs(client, {"level": "ERROR"}))
    await wait_js(page, f"() => ({JS_VOLUME_TOTAL})() === {errors}", "the new filter's count", within=5)
    dashboard.assert_clean()


async def fleet(client: httpx.AsyncClient) -> None:
    """A small fleet with tool calls, a stack trace, ANSI colours, warnings and errors."""
    _, agents = await make_agents(client, 4)
    for i, (status, tokens, cost) in enumerate(
        [("executing", 48_200, "0.4120"), ("waiting", 12_900, "0.0930"), ("idle", 3_100, "0.0210"), ("blocked", 0, "0")]
    ):
        await client.patch(
            f"/api/v1/agents/{agents[i]}",
            json={"status": status, "input_tokens": tokens, "output_tokens": tokens // 6, "total_cost": cost},
        )
    base = datetime.now(UTC) - timedelta(minutes=20)
    items: list[dict[str, Any]] = []
    tools = ["Bash", "Read", "Edit", "Grep"]
    for i in range(60):
        a = agents[i % 4]
        at = ts(base, i * 18)
        items += tool_call(a, f"s{i % 4}", f"toolu_{i}", tools[i % 4], at, post=ts(base, i * 18 + 0.2 + (i % 5) * 0.7))
        items.append(
            {
                "kind": "agent_log",
                "agent_id": a,
                "event_category": "response",
                "event_type": "text",
                "level": ["INFO", "INFO", "WARNING", "INFO", "DEBUG"][i % 5],
                "content": ["Looking at the failing test first.", "All checks pass now.", "Retrying: flaky network"][
                    i % 3
                ],
                "timestamp": ts(base, i * 18 + 5),
            }
        )
        if i % 9 == 4:
            items.append(
                {
                    "kind": "system_log",
                    "level": "ERROR",
                    "message": "\x1b[31mFAILED\x1b[0m tests/test_api.py::test_login\nAssertionError: 401 != 200",
                    "file_path": "adw/run.py",
                    "timestamp": ts(base, i * 18 + 9),
                }
            )
    await post_events(client, items)


@pytest.mark.parametrize(("width", "height"), [(1440, 900), (390, 844)])
async def test_screenshots(
    dashboard: Dashboard, server: Server, client: httpx.AsyncClient, tmp_path: Path, width: int, height: int
):
    await fleet(client)
    page = await dashboard.open(server.url + "/", width=width, height=height, color_scheme="dark")
    await wait_state(page, "#mode", "mode", "live")
    await wait_js(page, "() => document.querySelectorAll('#agents .agent').length === 4", "4 agent cards")
    await wait_js(page, "() => !/\\u2013/.test(document.querySelector('#agents').textContent)", "last event times")
    await wait_js(page, "() => document.querySelectorAll('#histogram rect[class^=\"h-\"]').length > 20", "bars")
    await page.locator("#stream .row.system_log").last.click()  # one row open: a stack trace in full
    await page.evaluate(JS_NEXT_FRAMES)
    assert await page.evaluate("document.documentElement.scrollWidth") <= width
    await save_screenshot(page, tmp_path, f"dashboard-{width}x{height}.png")
    dashboard.assert_clean()


@pytest.mark.parametrize("width", [360, 700, 1024, 1920])
async def test_every_width_from_360_to_1920_fits_and_keeps_every_control(
    dashboard: Dashboard, server: Server, client: httpx.AsyncClient, width: int
):
    await fleet(client)
    page = await dashboard.open(server.url + "/", width=width, height=800)
    await wait_state(page, "#mode", "mode", "live")
    await page.evaluate(JS_NEXT_FRAMES)
    assert await page.evaluate("document.documentElement.scrollWidth") <= width
    outside = await page.evaluate(
        """(width) => [...document.querySelectorAll('header button, header label, #filters > *, #range button')]
             .filter((el) => el.offsetParent !== null)
             .filter((el) => { const b = el.getBoundingClientRect(); return b.left < 0 || b.right > width; })
             .map((el) => el.id || el.textContent)""",
        width,
    )
    assert outside == []
    for control in ("#pause", "#live", "#older", "#download", "#tz", "#theme", "#token-btn", "#search"):
        assert await page.locator(control).is_visible(), control
    # rows wrap rather than scroll sideways
    assert await page.evaluate(
        "document.querySelector('#stream').scrollWidth <= document.querySelector('#stream').clientWidth"
    )
    dashboard.assert_clean()
