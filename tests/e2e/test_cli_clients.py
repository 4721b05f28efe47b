"""The commands that talk to a server (post, tail, demo) never mislead: refusals on stderr with
the reason and the fix and a non-zero exit, honest counts, safe terminal output, one way to
resolve agent names. Each test runs the CLI as a subprocess against a real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from helpers import Server, create_token, free_port, make_agents_sync


def cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ORCHLOG_")}
    return subprocess.run(
        [sys.executable, "-m", "orchlog", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=90,
    )


def events(url: str, token: str | None = None, **params: Any) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(url + "/api/v1/events", params={"after": 0, "limit": 1000, **params}, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


# ---------------------------------------------------------------- post: unreachable, broken lines


def test_post_to_a_closed_port_says_so_fast_counts_the_loss_and_suggests_spool() -> None:
    """`echo x | orchlog post --url <closed>`: within 2 s (plus interpreter start) it says the
    server is unreachable, counts the event as dropped, suggests --spool and exits non-zero."""
    started = time.monotonic()
    done = cli("post", "--url", f"http://127.0.0.1:{free_port()}", stdin="x\n")
    took = time.monotonic() - started
    assert done.returncode == 1, done
    assert took < 6, took
    assert "cannot reach the server" in done.stderr and "--spool" in done.stderr, done.stderr
    assert "1 read, 0 stored, 1 dropped" in done.stderr, done.stderr


def test_post_to_a_closed_port_with_spool_keeps_the_events_and_sends_them_later(tmp_path: Path) -> None:
    """With --spool the events are kept (counted as such, exit 1) and go out with the next run."""
    port = free_port()
    spool = tmp_path / "spool.db"
    done = cli("post", "--url", f"http://127.0.0.1:{port}", "--spool", str(spool), "--wait", "1", stdin="a\nb\n")
    assert done.returncode == 1, done
    assert "2 kept in the spool" in done.stderr and "0 dropped" in done.stderr, done.stderr
    srv = Server(tmp_path / "o.db", port=port).start()
    try:
        again = cli("post", "--url", srv.url, "--spool", str(spool), stdin="c\n")
        assert again.returncode == 0, again
        assert [e["data"]["message"] for e in events(srv.url)] == ["a", "b", "c"]
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = Server(tmp_path_factory.mktemp("clients") / "orchlog.db").start()
    try:
        yield server
    finally:
        server.stop()


def test_post_warns_about_broken_json_lines_and_strict_refuses_them(srv: Server) -> None:
    """A line starting with '{' that is not JSON is posted as text WITH a warning naming the line;
    --strict refuses it (exit 2) and posts nothing after it."""
    marker = uuid.uuid4().hex
    done = cli("post", "--url", srv.url, stdin=f'ok {marker}\n{{"message": "cut {marker}\n')
    assert done.returncode == 0, done
    assert "warning: line 2" in done.stderr and "not" in done.stderr, done.stderr
    stored = [e["data"]["message"] for e in events(srv.url, q=marker)]
    assert stored == [f"ok {marker}", f'{{"message": "cut {marker}'], stored

    strict = uuid.uuid4().hex
    done = cli("post", "--url", srv.url, "--strict", stdin=f'{{"message": "bad {strict}\nafter {strict}\n')
    assert done.returncode == 2, done
    assert "line 1" in done.stderr and "--strict" in done.stderr, done.stderr
    assert events(srv.url, q=strict) == []


# ---------------------------------------------------------------- tokens: every client takes --token


def test_post_demo_and_tail_take_token_and_explain_refusals(tmp_path: Path) -> None:
    """With tokens on: post, demo and tail without a token exit 3 and say how to pass one;
    with ORCHLOG_TOKEN (or --token) they work."""
    db = tmp_path / "o.db"
    token = create_token(db, "admin", "admin")
    server = Server(db).start()
    try:
        for cmd, stdin in ((["post"], "x\n"), (["demo", "--seconds", "1"], None), (["tail", "-n", "1"], None)):
            refused = cli(*cmd, "--url", server.url, stdin=stdin)
            assert refused.returncode == 3, (cmd, refused)
            assert "ORCHLOG_TOKEN" in refused.stderr and "--token" in refused.stderr, (cmd, refused.stderr)
        ok = cli("post", "--url", server.url, stdin="with a token\n", env={"ORCHLOG_TOKEN": token})
        assert ok.returncode == 0 and "1 stored" in ok.stderr, ok
        demo = cli("demo", "--url", server.url, "--token", token, "--seconds", "1", "--rate", "30")
        assert demo.returncode == 0, demo
        tail = cli("tail", "-n", "1", "-o", "json", "--url", server.url, env={"ORCHLOG_TOKEN": token})
        assert tail.returncode == 0 and tail.stdout.count("\n") == 1, tail
    finally:
        server.stop()


# ---------------------------------------------------------------- tail: start, terminal safety, kinds


def test_tail_from_a_closed_port_says_where_it_looked_and_what_to_check() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = cli("tail", "-n", "1", "--url", url)
    assert done.returncode == 1, done
    assert url in done.stderr and "--url / ORCHLOG_URL" in done.stderr and "Traceback" not in done.stderr


def test_tail_after_with_lines_is_refused_with_the_reason(srv: Server) -> None:
    done = cli("tail", "--after", "1", "-n", "2", "--url", srv.url)
    assert done.returncode == 2, done
    assert "--after" in done.stderr and "-n" in done.stderr and "one of them" in done.stderr, done.stderr


HOSTILE = "title\x1b]0;pwned\x07 clip\x1b]52;c;ZWNobyBwd25lZA==\x07 wipe\x1b[2J\x1b[H c1\x9b31m bell\x07 cr\rend"


def test_tail_text_escapes_control_characters_json_and_raw_stay_exact(srv: Server) -> None:
    """Text output shows every C0/C1 control as an escape (no ESC, BEL, CSI or CR reaches the
    terminal, with or without colour); -o json round-trips the exact string; -o raw is the bytes."""
    marker = uuid.uuid4().hex
    message = f"{marker} {HOSTILE}\nsecond line\x1b[1A"
    r = httpx.post(srv.url + "/api/v1/system-logs", json={"message": message, "file_path": "f\x1b[31m.py"}, timeout=30)
    assert r.status_code == 201, r.text
    for color in ("never", "always"):
        text = cli("tail", "-n", "1", "--grep", marker, "--color", color, "--url", srv.url)
        assert text.returncode == 0, text
        shown = text.stdout
        if color == "always":
            shown = re.sub(r"\x1b\[[0-9;]*m", "", shown)  # our own SGR colours are the only escapes
        assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", shown), repr(shown)
        assert "\\e]52;c;" in shown and "\\x07" in shown and "\\u009b" in shown and "\\r" in shown, shown
        assert shown.count("\n") == 2 and "\n    second line\\e[1A" in shown, repr(shown)
        assert "f\\e[31m.py" in shown
    as_json = cli("tail", "-n", "1", "--grep", marker, "-o", "json", "--url", srv.url)
    assert orjson.loads(as_json.stdout)["data"]["message"] == message
    raw = cli("tail", "-n", "1", "--grep", marker, "-o", "raw", "--url", srv.url)
    assert raw.stdout == message.replace("\r", "\n") + "\n"  # (text mode reads a CR as a newline)


def test_kind_system_and_system_log_are_both_accepted(srv: Server) -> None:
    """`--kind system_log` works in tail and post, and the API takes `kind=system` as well."""
    marker = uuid.uuid4().hex
    assert cli("post", "--kind", "system_log", "--url", srv.url, stdin=f"{marker}\n").returncode == 0
    for kind in ("system", "system_log"):
        done = cli("tail", "-n", "1", "--kind", kind, "--grep", marker, "-o", "raw", "--url", srv.url)
        assert done.returncode == 0 and done.stdout == f"{marker}\n", (kind, done)
        assert [e["data"]["message"] for e in events(srv.url, kind=kind, q=marker)] == [marker]


# ---------------------------------------------------------------- agent names


def test_an_ambiguous_agent_name_is_refused_in_tail_and_post_with_candidates(srv: Server) -> None:
    """Two orchestrators each with an agent `twin-XXXX`: tail and post refuse the name (exit 2)
    listing both ids; `--agent ID` works for each."""
    name = f"twin-{uuid.uuid4().hex[:6]}"
    ids = []
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        for _ in range(2):
            orch = c.post("/api/v1/orchestrator-agents", json={}).json()["id"]
            ids.append(
                c.post("/api/v1/agents", json={"orchestrator_agent_id": orch, "name": name, "model": "m"}).json()["id"]
            )
    for cmd, stdin in ((["tail", "-n", "1"], None), (["post", "--kind", "agent"], "hello\n")):
        done = cli(*cmd, "--agent", name, "--url", srv.url, stdin=stdin)
        assert done.returncode == 2, (cmd, done)
        assert all(i in done.stderr for i in ids) and "--agent ID" in done.stderr, done.stderr
    marker = uuid.uuid4().hex
    posted = cli("post", "--kind", "agent", "--agent", ids[1], "--url", srv.url, stdin=f"{marker}\n")
    assert posted.returncode == 0, posted
    got = cli("tail", "-n", "5", "--agent", ids[1], "-o", "json", "--url", srv.url)
    assert got.returncode == 0 and marker in got.stdout, got
    assert [e["data"]["agent_id"] for e in events(srv.url, q=marker)] == [ids[1]]


# ---------------------------------------------------------------- demo


def test_demo_uses_its_own_agents_and_its_counts_add_up(tmp_path: Path) -> None:
    """An existing agent named `builder` gets no demo events; the demo's agents are its own
    (demo-<role>-<run>), and the summary's numbers add up to what it posted and what is stored."""
    server = Server(tmp_path / "o.db").start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            _, mine = make_agents_sync(c, 1, prefix="builder")
            c.patch(f"/api/v1/agents/{mine[0]}", json={"name": "builder"})
        done = cli("demo", "--url", server.url, "--seconds", "2", "--rate", "60")
        assert done.returncode == 0, done
        counts = re.search(
            r"posted (\d+) events: (\d+) stored, (\d+) duplicates, (\d+) rejected, (\d+) dropped, (\d+) unsent",
            done.stdout,
        )
        assert counts, done.stdout
        posted, stored, *rest = map(int, counts.groups())
        assert posted == stored + sum(rest) and stored == posted, done.stdout
        stored_events = events(server.url)
        assert len(stored_events) == posted
        assert all(e["data"].get("agent_id") != mine[0] for e in stored_events)
        names = {a["name"] for a in httpx.get(server.url + "/api/v1/agents", timeout=30).json()["items"]}
        demo_names = {n for n in names if n.startswith("demo-")}
        assert len(demo_names) == 4 and all(re.fullmatch(r"demo-[a-z]+-[0-9a-f]{4}", n) for n in demo_names)
        assert "demo-builder" not in done.stdout.replace(next(n for n in demo_names if "builder" in n), "")
    finally:
        server.stop()
