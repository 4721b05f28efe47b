"""`orchlog tail` and `orchlog post` (issue 4), run as users run them: `python -m orchlog ...` subprocesses
against real `orchlog serve` processes.

Every tail test compares what the command printed with what the history API says is stored, so
a gap, a duplicate, a wrong filter or a wrong order fails the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from helpers import Server, free_port, history, make_agents, make_agents_sync, wait_until

LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
SEEDED = 600  # enough JSON output (> 64 KiB) to fill a pipe for the broken-pipe tests


# ---------------------------------------------------------------- helpers


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHLOG_")}
    env["NO_COLOR"] = "1"
    env.pop("PYTHONUNBUFFERED", None)  # stdout block-buffered into a pipe, as for users
    return env


def orchlog(*args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `python -m orchlog ARGS` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "orchlog", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=timeout,
    )


class Running:
    """A long-running `orchlog` subprocess whose stdout lines and stderr are collected by threads."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchlog", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
        )
        self.lines: list[str] = []
        self.err: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream: Any, sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))

    @property
    def stderr(self) -> str:
        return "\n".join(self.err)

    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in list(self.lines)]

    def interrupt(self, timeout: float = 15) -> int:
        """Ctrl-C: SIGINT, then the exit code (output threads drained)."""
        self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(timeout)
        for t in self._threads:
            t.join(5)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def printed(stdout: str) -> list[dict[str, Any]]:
    """`-o json` output: one JSON object per line."""
    return [orjson.loads(line) for line in stdout.splitlines()]


def as_stream(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """History items as `tail -o json` prints them: {"type", "seq", "data"}."""
    return [{"type": i["kind"], "seq": i["seq"], "data": i["data"]} for i in items]


def history_sync(url: str, params: dict[str, Any] | None = None, after: int = 0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, timeout=30) as c:
        while True:
            r = c.get("/api/v1/events", params={**(params or {}), "after": after, "limit": 1000})
            assert r.status_code == 200, r.text
            body = r.json()
            out.extend(body["items"])
            if not body["has_more"]:
                return out
            after = body["next_after"]


def post_system(url: str, messages: list[str], level: str = "INFO") -> list[int]:
    r = httpx.post(url + "/api/v1/system-logs", json=[{"level": level, "message": m} for m in messages], timeout=30)
    assert r.status_code == 201, r.text
    return [i["seq"] for i in r.json()["items"]]


def restart(server: Server) -> Server:
    """The same database, the same port, a new process."""
    return Server(server.db, *server.args, port=server.port).start()


# ---------------------------------------------------------------- a seeded server for read-only tests


@pytest.fixture(scope="module")
def seeded(module_server: Server) -> dict[str, Any]:
    """600 events: system logs at every level and agent logs of two agents, some with 'NEEDLE'."""
    with httpx.Client(base_url=module_server.url, timeout=30) as c:
        _, agents = make_agents_sync(c, 2, prefix="tailer")
        items: list[dict[str, Any]] = []
        for i in range(SEEDED):
            text = f"event {i}" + (" with a NEEDLE inside" if i % 7 == 0 else "")
            level = LEVELS[i % 5]
            if i % 3 == 0:
                items.append({"kind": "system_log", "level": level, "message": "sys " + text})
            else:
                items.append(
                    {
                        "kind": "agent_log",
                        "agent_id": agents[i % 2],
                        "event_category": "hook",
                        "event_type": "PreToolUse",
                        "level": level,
                        "content": "agent " + text,
                    }
                )
        for start in range(0, SEEDED, 200):
            r = c.post("/api/v1/events", json=items[start : start + 200])
            assert r.status_code == 201, r.text
    return {"url": module_server.url, "agents": agents, "names": ["tailer-0", "tailer-1"]}


# ---------------------------------------------------------------- non-follow reads


def test_last_n_as_json_then_exit_0(seeded: dict[str, Any]) -> None:
    """`tail -n 5 -o json` prints exactly the last 5 stored events (JSON, seq ascending) and exits 0."""
    p = orchlog("tail", "-n", "5", "-o", "json", "--url", seeded["url"])
    assert p.returncode == 0, p.stderr
    assert printed(p.stdout) == as_stream(history_sync(seeded["url"])[-5:])


def test_json_lines_are_objects_with_ascending_seq(seeded: dict[str, Any]) -> None:
    """Every `-o json` line is one JSON object carrying `seq`, strictly ascending, with the row."""
    p = orchlog("tail", "-n", "300", "-o", "json", "--url", seeded["url"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 300
    objects = [orjson.loads(line) for line in lines]
    assert all(isinstance(o, dict) for o in objects)
    seqs = [o["seq"] for o in objects]
    assert seqs == sorted(set(seqs))
    assert all(o["data"]["seq"] == o["seq"] and o["type"] in ("agent_log", "system_log") for o in objects)


def test_default_is_last_10_as_text_with_agent_names(seeded: dict[str, Any]) -> None:
    """Without -n: the last 10, one text line each, with level, agent name (not id) and content."""
    p = orchlog("tail", "--url", seeded["url"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    expected = history_sync(seeded["url"])[-10:]
    assert len(lines) == 10, p.stdout
    names = dict(zip(seeded["agents"], seeded["names"], strict=True))
    for line, item in zip(lines, expected, strict=True):
        data = item["data"]
        assert data["level"] in line
        assert "\x1b[" not in line  # NO_COLOR and not a terminal: no escape codes
        if item["kind"] == "agent_log":
            assert line.endswith(data["content"]), line
            assert names[data["agent_id"]] in line
            assert "hook/PreToolUse" in line
        else:
            assert line.endswith(data["message"]), line
            assert "system" in line


def test_after_seq_prints_everything_after_it(seeded: dict[str, Any]) -> None:
    """`--after SEQ` without -f prints every event with seq > SEQ, then exits 0."""
    everything = history_sync(seeded["url"])
    cut = everything[-40]["seq"]
    p = orchlog("tail", "--after", str(cut), "-o", "json", "--url", seeded["url"])
    assert p.returncode == 0, p.stderr
    assert printed(p.stdout) == as_stream(everything[-39:])


def test_kind_system_filter(seeded: dict[str, Any]) -> None:
    """`--kind system` prints only system logs: exactly the stored ones."""
    p = orchlog("tail", "--kind", "system", "-n", "1000", "-o", "json", "--url", seeded["url"])
    assert p.returncode == 0, p.stderr
    expected = history_sync(seeded["url"], {"kind": "system_log"})
    assert len(expected) == SEEDED // 3
    assert printed(p.stdout) == as_stream(expected)


def test_agent_filter_by_name(seeded: dict[str, Any]) -> None:
    """`--agent NAME` is resolved to the agent's id: only that agent's logs, all of them."""
    p = orchlog("tail", "--agent", "tailer-1", "-n", "1000", "-o", "json", "--url", seeded["url"])
    assert p.returncode == 0, p.stderr
    expected = history_sync(seeded["url"], {"agent_id": seeded["agents"][1]})
    assert expected and all(i["data"]["agent_id"] == seeded["agents"][1] for i in expected)
    assert printed(p.stdout) == as_stream(expected)


def test_agent_filter_repeated_name_and_id(seeded: dict[str, Any]) -> None:
    """`--agent` is repeatable and takes a name or an id: the union of both agents' logs."""
    p = orchlog(
        "tail",
        "--agent",
        "tailer-0",
        "--agent",
        seeded["agents"][1],
        "-n",
        "1000",
        "-o",
        "json",
        "--url",
        seeded["url"],
    )
    assert p.returncode == 0, p.stderr
    expected = history_sync(seeded["url"], {"kind": "agent_log"})
    assert printed(p.stdout) == as_stream(expected)


def test_min_level_filter(seeded: dict[str, Any]) -> None:
    """`-p warning` (any case) prints WARNING, ERROR and CRITICAL events of both kinds, nothing else."""
    p = orchlog("tail", "-p", "warning", "-n", "1000", "-o", "json", "--url", seeded["url"])
    assert p.returncode == 0, p.stderr
    got = printed(p.stdout)
    assert {e["data"]["level"] for e in got} == {"WARNING", "ERROR", "CRITICAL"}
    assert {e["type"] for e in got} == {"agent_log", "system_log"}
    assert got == as_stream(history_sync(seeded["url"], {"min_level": "WARNING"}))


def test_grep_is_server_side(seeded: dict[str, Any]) -> None:
    """`--grep needle` prints exactly the events whose text contains it (case-insensitive)."""
    p = orchlog("tail", "--grep", "needle", "-n", "1000", "-o", "json", "--url", seeded["url"])
    assert p.returncode == 0, p.stderr
    got = printed(p.stdout)
    assert len(got) == len(range(0, SEEDED, 7))
    for e in got:
        text = e["data"].get("content") or e["data"].get("message")
        assert "needle" in text.lower()
    assert got == as_stream(history_sync(seeded["url"], {"q": "needle"}))


def test_unknown_agent_exits_2_naming_it(seeded: dict[str, Any]) -> None:
    """`--agent nobody-here` is bad usage: exit 2, the message names the agent, no traceback."""
    p = orchlog("tail", "--agent", "nobody-here", "--url", seeded["url"])
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "nobody-here" in p.stderr
    assert "Traceback" not in p.stderr
    assert p.stdout == ""


@pytest.mark.parametrize(
    "args",
    [["--no-such-flag"], ["-n", "-3"], ["--after", "abc"], ["-p", "loud"], ["-o", "yaml"], ["--kind", "x"]],
)
def test_bad_flags_exit_2(args: list[str]) -> None:
    """Unknown flags and invalid values are rejected with exit 2 and a usage message (no server needed)."""
    p = orchlog("tail", *args, "--url", f"http://127.0.0.1:{free_port()}")
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Usage" in p.stderr or "Error" in p.stderr
    assert "Traceback" not in p.stderr


def test_help() -> None:
    """`tail --help` exits 0 and documents --follow and --cursor-file."""
    p = orchlog("tail", "--help")
    assert p.returncode == 0, p.stderr
    assert "--follow" in p.stdout
    assert "--cursor-file" in p.stdout


def test_unreachable_server_is_an_error_not_a_traceback() -> None:
    """Without -f, a server that is not there is a one-line error and a non-zero exit, not a crash."""
    url = f"http://127.0.0.1:{free_port()}"
    p = orchlog("tail", "--url", url, timeout=30)
    assert p.returncode not in (0, 2), (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    assert "orchlog tail" in p.stderr


# ---------------------------------------------------------------- broken pipe


@pytest.mark.parametrize("follow", [False, True], ids=["read", "follow"])
def test_broken_pipe_ends_quietly(seeded: dict[str, Any], follow: bool) -> None:
    """`orchlog tail -n 500 -o json | head -1` (with and without -f): the tail ends by itself once the
    reader is gone, with no traceback and no 'Exception ignored' on stderr."""
    args = ["tail", "-n", "500", "-o", "json", "--url", seeded["url"], *(["-f"] if follow else [])]
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchlog", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        assert orjson.loads(first)["seq"] > 0
        proc.stdout.close()  # `head -1` exits
        rc = proc.wait(30)
        err = proc.stderr.read().decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert "Traceback" not in err, err
    assert "Exception ignored" not in err, err
    assert rc in (0, 141, -signal.SIGPIPE), (rc, err)


# ---------------------------------------------------------------- follow across a server crash


async def test_follow_resumes_without_gap_or_duplicate_across_kill9(server: Server, client: httpx.AsyncClient) -> None:
    """`tail -f` survives a kill -9 and restart of the server (same port, same db): its JSON output
    is exactly the stored history (nothing skipped, nothing twice), it says it reconnected, and
    Ctrl-C ends it with 130 and no traceback."""
    _, (agent,) = await make_agents(client, 1)
    batch_a = [{"kind": "system_log", "message": f"a{i}"} for i in range(30)]
    batch_a += [
        {
            "kind": "agent_log",
            "agent_id": agent,
            "event_category": "hook",
            "event_type": "T",
            "content": f"a{i}",
        }
        for i in range(30)
    ]
    r = await client.post("/api/v1/events", json=batch_a)
    assert r.status_code == 201, r.text

    tail = Running("tail", "-f", "--after", "0", "-o", "json", "--url", server.url)
    restarted: Server | None = None
    try:
        await wait_until(lambda: len(tail.lines) >= 60, 20, "the first 60 events printed")

        # Acked, then the server dies at once: the tail may or may not have seen these live.
        post_system(server.url, [f"b{i}" for i in range(40)])
        server.kill9()
        await wait_until(lambda: "disconnected" in tail.stderr, 15, "a disconnect notice on stderr")

        restarted = restart(server)
        post_system(restarted.url, [f"c{i}" for i in range(40)])
        (sentinel,) = post_system(restarted.url, ["sentinel"])
        await wait_until(
            lambda: any(orjson.loads(line)["seq"] == sentinel for line in list(tail.lines)),
            30,
            "the sentinel printed after the restart",
        )
        expected = as_stream(history_sync(restarted.url))
        assert len(expected) == 60 + 40 + 40 + 1
        got = tail.events()
        assert [e["seq"] for e in got] == [e["seq"] for e in expected]
        assert got == expected
        assert "reconnected" in tail.stderr

        rc = tail.interrupt()
        assert rc == 130, (rc, tail.stderr)
        assert "Traceback" not in tail.stderr, tail.stderr
        assert tail.events() == expected  # nothing more printed on the way out
    finally:
        tail.kill()
        if restarted is not None:
            restarted.stop()


async def test_ctrl_c_while_reconnecting_exits_130() -> None:
    """`tail -f` against a server that is down keeps retrying with a notice on stderr; Ctrl-C during
    the retries exits 130 without a traceback."""
    tail = Running("tail", "-f", "--url", f"http://127.0.0.1:{free_port()}")
    try:
        await wait_until(lambda: "disconnected" in tail.stderr, 20, "a disconnect notice")
        assert tail.proc.poll() is None  # still retrying, not given up
        assert tail.interrupt() == 130, tail.stderr
    finally:
        tail.kill()
    assert "Traceback" not in tail.stderr, tail.stderr
    assert tail.lines == []


# ---------------------------------------------------------------- --cursor-file


async def test_cursor_file_resume_across_runs(server: Server, tmp_path: Path) -> None:
    """Run 1 prints the last 5 and saves the last printed seq; events are posted; run 2 with the same
    cursor file prints exactly the new ones; run 3 (nothing new) prints nothing."""
    cursor = tmp_path / "tail.cursor"
    post_system(server.url, [f"old {i}" for i in range(20)])

    p1 = orchlog("tail", "-n", "5", "--cursor-file", str(cursor), "-o", "json", "--url", server.url)
    assert p1.returncode == 0, p1.stderr
    before = history_sync(server.url)
    assert printed(p1.stdout) == as_stream(before[-5:])
    assert cursor.read_text().strip() == str(before[-1]["seq"])

    post_system(server.url, [f"new {i}" for i in range(7)], level="ERROR")

    p2 = orchlog("tail", "--cursor-file", str(cursor), "-o", "json", "--url", server.url)
    assert p2.returncode == 0, p2.stderr
    new = history_sync(server.url, after=before[-1]["seq"])
    assert [e["data"]["message"] for e in new] == [f"new {i}" for i in range(7)]
    assert printed(p2.stdout) == as_stream(new)
    assert cursor.read_text().strip() == str(new[-1]["seq"])

    p3 = orchlog("tail", "--cursor-file", str(cursor), "-o", "json", "--url", server.url)
    assert p3.returncode == 0, p3.stderr
    assert p3.stdout == ""


async def test_cursor_file_saved_on_ctrl_c_of_follow(server: Server, tmp_path: Path) -> None:
    """`tail -f --cursor-file F` stopped with Ctrl-C saves the last printed seq; events posted while
    it is not running are printed by the next run, exactly once and none before them."""
    cursor = tmp_path / "follow.cursor"
    post_system(server.url, [f"first {i}" for i in range(10)])
    tail = Running("tail", "-f", "--after", "0", "--cursor-file", str(cursor), "-o", "json", "--url", server.url)
    try:
        await wait_until(lambda: len(tail.lines) >= 10, 20, "10 events printed")
        post_system(server.url, [f"live {i}" for i in range(5)])
        await wait_until(lambda: len(tail.lines) >= 15, 20, "15 events printed")
        assert tail.interrupt() == 130, tail.stderr
        assert "Traceback" not in tail.stderr
    finally:
        tail.kill()
    seen = tail.events()
    assert seen == as_stream(history_sync(server.url))
    assert cursor.read_text().strip() == str(seen[-1]["seq"])

    post_system(server.url, [f"while away {i}" for i in range(6)])
    p = orchlog("tail", "--cursor-file", str(cursor), "-o", "json", "--url", server.url)
    assert p.returncode == 0, p.stderr
    got = printed(p.stdout)
    assert [e["data"]["message"] for e in got] == [f"while away {i}" for i in range(6)]
    assert got == as_stream(history_sync(server.url, after=seen[-1]["seq"]))


# ---------------------------------------------------------------- orchlog post


@pytest.fixture
def post_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("post") / "orchlog.db").start()
    try:
        yield srv
    finally:
        srv.stop()


async def test_post_plain_lines_and_json_lines(post_server: Server) -> None:
    """`printf 'a\\nb\\n{"level":"error","message":"c"}\\n' | orchlog post` stores three system logs
    in order (text lines at the default level INFO, the JSON line as given) and summarises on stderr."""
    p = orchlog("post", "--url", post_server.url, stdin='a\nb\n{"level":"error","message":"c"}\n')
    assert p.returncode == 0, p.stderr
    assert "3 read" in p.stderr and "3 stored" in p.stderr, p.stderr
    async with httpx.AsyncClient(base_url=post_server.url, timeout=30) as c:
        items = await history(c)
    assert [i["kind"] for i in items] == ["system_log"] * 3
    assert [(i["data"]["message"], i["data"]["level"]) for i in items] == [
        ("a", "INFO"),
        ("b", "INFO"),
        ("c", "ERROR"),
    ]


async def test_post_agent_lines(post_server: Server) -> None:
    """`orchlog post --kind agent --agent NAME --level warning` makes agent logs of that agent (by
    name), with the given level, the default category/type, and each line as the content."""
    async with httpx.AsyncClient(base_url=post_server.url, timeout=30) as c:
        _, agents = await make_agents(c, 2)
        p = orchlog(
            "post",
            "--kind",
            "agent",
            "--agent",
            "agent-1",
            "--level",
            "warning",
            "--url",
            post_server.url,
            stdin="step one\n\nstep two\n",
        )
        assert p.returncode == 0, p.stderr
        assert "2 read" in p.stderr and "2 stored" in p.stderr, p.stderr
        items = await history(c)
    assert [i["kind"] for i in items] == ["agent_log", "agent_log"]
    assert [i["data"]["content"] for i in items] == ["step one", "step two"]
    for i in items:
        assert i["data"]["agent_id"] == agents[1]
        assert i["data"]["level"] == "WARNING"
        assert i["data"]["event_category"] == "response"
        assert i["data"]["event_type"] == "text"


@pytest.mark.parametrize("args", [["--kind", "agent"], ["--kind", "agent", "--agent", "ghost-agent"]])
def test_post_agent_usage_errors(post_server: Server, args: list[str]) -> None:
    """`--kind agent` without an agent, or with an unknown one, is exit 2 with a message; nothing stored."""
    p = orchlog("post", *args, "--url", post_server.url, stdin="x\n")
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "agent" in p.stderr and "Traceback" not in p.stderr
    if "ghost-agent" in args:
        assert "ghost-agent" in p.stderr
    assert history_sync(post_server.url) == []
