"""`orchlog token create | list | revoke` as an operator runs them, against a database and a live server."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx

from conftest import Server, bearer, create_token, orchlog_cli, wait_until


def test_create_prints_the_token_once_and_list_never_shows_it(tmp_path: Path) -> None:
    """`token create` prints only the new `olg_` token on stdout (a summary without it on stderr);
    `token list` shows names, scopes, agent bindings and state, but never a secret."""
    db = str(tmp_path / "o.db")
    empty = orchlog_cli("token", "list", "--db", db)
    assert empty.returncode == 0 and empty.stdout == "" and "no tokens" in empty.stderr, empty
    agent = str(uuid.uuid4())
    made = {}
    for name, scopes, agents in (("dash", ["read"], []), ("ci", ["ingest", "read"], []), ("bot", ["ingest"], [agent])):
        cmd = ["token", "create", "--db", db, "--name", name]
        for scope in scopes:
            cmd += ["--scope", scope]
        for a in agents:
            cmd += ["--agent", a]
        done = orchlog_cli(*cmd)
        assert done.returncode == 0, done.stderr
        token = done.stdout.strip()
        assert done.stdout == token + "\n" and token.startswith("olg_") and len(token) >= 40, done.stdout
        assert token not in done.stderr and token[4:] not in done.stderr
        assert name in done.stderr, done.stderr
        made[name] = token
    assert len(set(made.values())) == 3

    listing = orchlog_cli("token", "list", "--db", db)
    assert listing.returncode == 0, listing.stderr
    lines = {line.split()[1]: line for line in listing.stdout.splitlines()}
    assert set(lines) == {"dash", "ci", "bot"}, listing.stdout
    assert " read " in lines["dash"] and "all agents" in lines["dash"] and "active" in lines["dash"]
    assert "ingest+read" in lines["ci"]
    assert " ingest " in lines["bot"] and agent in lines["bot"]
    for token in made.values():
        assert token not in listing.stdout + listing.stderr and token[4:] not in listing.stdout + listing.stderr
    assert "olg_" not in listing.stdout


def test_duplicate_name_is_a_usage_error(tmp_path: Path) -> None:
    """A second token with a taken name exits 2 naming the name, without a traceback, and prints no token."""
    db = tmp_path / "o.db"
    create_token(db, "dash", "read")
    done = orchlog_cli("token", "create", "--db", str(db), "--name", "dash", "--scope", "admin")
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "dash" in done.stderr and "exists" in done.stderr, done.stderr
    assert "olg_" not in done.stdout + done.stderr and "Traceback" not in done.stderr
    listing = orchlog_cli("token", "list", "--db", str(db))
    assert len(listing.stdout.splitlines()) == 1 and " read " in listing.stdout, listing.stdout


def test_bad_scope_or_agent_is_a_usage_error(tmp_path: Path) -> None:
    """An unknown scope or an --agent that is not a UUID exits 2 with a message; nothing is created."""
    db = str(tmp_path / "o.db")
    for extra, hint in ((["--scope", "root"], "root"), (["--scope", "read", "--agent", "builder"], "UUID")):
        done = orchlog_cli("token", "create", "--db", db, "--name", "x", *extra)
        assert done.returncode == 2, (extra, done.returncode, done.stderr)
        assert hint in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert "olg_" not in done.stdout
    assert orchlog_cli("token", "list", "--db", db).stdout == ""


def test_revoke_unknown_token_fails_clearly(tmp_path: Path) -> None:
    """Revoking a name that does not exist exits non-zero naming it, without a traceback."""
    db = tmp_path / "o.db"
    create_token(db, "dash", "read")
    done = orchlog_cli("token", "revoke", "nobody", "--db", str(db))
    assert done.returncode != 0, done
    assert "nobody" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "active" in orchlog_cli("token", "list", "--db", str(db)).stdout


async def test_tokens_created_and_revoked_while_the_server_runs(tmp_path: Path) -> None:
    """A server started without tokens is open on loopback (and says "dev mode"); the first
    `token create` closes it within a few seconds (no token → 401, the token → 200); `token revoke`
    by name, then by id, makes the server refuse those tokens within a few seconds, the listing
    marks them revoked, and revoking every token does not reopen the API."""
    db = tmp_path / "o.db"
    server = Server(db).start()
    try:
        assert "dev mode" in server.log_text()
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:

            async def status(token: str | None) -> int:
                return (await c.get("/api/v1/events", headers=bearer(token))).status_code

            async def answers(token: str | None, code: int) -> bool:
                return await status(token) == code

            assert await status(None) == 200
            first = create_token(db, "first", "read")
            second = create_token(db, "second", "read")
            await wait_until(lambda: answers(None, 401), 10, "the first token to close the open API")
            await wait_until(lambda: answers(first, 200), 10, "the new token to be accepted")
            assert await status(second) == 200

            done = orchlog_cli("token", "revoke", "first", "--db", str(db))
            assert done.returncode == 0 and "first" in done.stdout, done
            await wait_until(lambda: answers(first, 401), 10, "the revoked token to be refused")
            assert await status(second) == 200

            second_id = next(
                line.split()[0]
                for line in orchlog_cli("token", "list", "--db", str(db)).stdout.splitlines()
                if line.split()[1] == "second"
            )
            done = orchlog_cli("token", "revoke", second_id, "--db", str(db))
            assert done.returncode == 0, done
            await wait_until(lambda: answers(second, 401), 10, "the token revoked by id to be refused")
            assert await status(None) == 401, "revoking every token must not reopen the API"

        listing = orchlog_cli("token", "list", "--db", str(db)).stdout
        assert listing.count("revoked") == 2 and "active" not in listing, listing
        for token in (first, second):
            assert token[4:] not in server.log_text() and token[4:] not in listing
    finally:
        server.stop()
