"""`orchlog token create | list | revoke` as an operator runs them, against a database and a live server."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from helpers import Server, bearer, create_token, orchlog_cli, wait_until
from helpers.pg import needs_pg


def test_create_prints_the_token_once_and_list_never_shows_it(tmp_path: Path) -> None:
    """`token create` prints only the new `olg_` token on stdout (a summary without it on stderr);
    `token list` shows names, scopes, agent bindings and state, but never a secret."""
    db = str(tmp_path / "o.db")
    assert orchlog_cli("migrate", "--db", db).returncode == 0
    empty = orchlog_cli("token", "list", "--db", db)
    assert empty.returncode == 0 and empty.stdout == "" and "no tokens" in empty.stderr, empty
    assert "auth: OFF" in empty.stderr, empty.stderr
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
            # created a moment after the first: a token reload may fall between the two
            await wait_until(lambda: answers(second, 200), 10, "the second token to be accepted")

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


def test_reading_commands_never_create_a_database(tmp_path: Path) -> None:
    """`token list|revoke|delete`, `backup` and `retention` on a path that does not exist exit 1
    naming the path, and leave no file behind (a typo must not look like an empty, open server)."""
    typo = tmp_path / "typo.db"
    for cmd in (
        ["token", "list"],
        ["token", "revoke", "x"],
        ["token", "delete", "x"],
        ["backup", str(tmp_path / "copy.db")],
        ["retention", "--rows", "5"],
    ):
        done = orchlog_cli(*cmd, "--db", str(typo))
        assert done.returncode == 1, (cmd, done)
        assert str(typo) in done.stderr and "no database" in done.stderr, (cmd, done.stderr)
        assert "no tokens" not in done.stderr and "Traceback" not in done.stderr
        assert not typo.exists(), cmd
    assert list(tmp_path.iterdir()) == []


def test_db_that_is_neither_a_path_nor_a_supported_url_is_refused(tmp_path: Path) -> None:
    """`--db mysql://...` is a clear error for every database command; no directory named after
    the scheme appears (it used to create `mysql:/` holding a SQLite file)."""
    for cmd in (["token", "list"], ["token", "create", "--name", "a", "--scope", "read"], ["migrate"]):
        done = subprocess.run(
            [sys.executable, "-m", "orchlog", *cmd, "--db", "mysql://u@h/db"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )
        assert done.returncode != 0, (cmd, done)
        assert "mysql://u@h/db" in done.stderr and "supported URL" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and "olg_" not in done.stdout
    assert list(tmp_path.iterdir()) == []


async def test_auth_lifecycle_revoke_keeps_it_on_delete_turns_it_off(tmp_path: Path) -> None:
    """The documented lifecycle against a live server: create → auth ON; revoke the only token →
    still ON (fail closed), and `token list` says no token is active; `token delete` of the last
    row → OFF again (dev mode) within a few seconds, and `token list` says so."""
    db = tmp_path / "o.db"
    server = Server(db).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:

            async def answers(token: str | None, code: int) -> bool:
                return (await c.get("/api/v1/events", headers=bearer(token))).status_code == code

            secret = create_token(db, "only", "read")
            await wait_until(lambda: answers(None, 401), 10, "the token to turn auth on")
            listing = orchlog_cli("token", "list", "--db", str(db))
            assert "auth: ON" in listing.stderr and "1 active" in listing.stderr, listing.stderr

            assert orchlog_cli("token", "revoke", "only", "--db", str(db)).returncode == 0
            await wait_until(lambda: answers(secret, 401), 10, "the revoked token to be refused")
            assert await answers(None, 401)
            listing = orchlog_cli("token", "list", "--db", str(db))
            assert "revoked" in listing.stdout and "auth: ON" in listing.stderr, listing
            assert "no token is active" in listing.stderr, listing.stderr

            done = orchlog_cli("token", "delete", "only", "--db", str(db))
            assert done.returncode == 0 and "deleted" in done.stdout and "auth: OFF" in done.stderr, done
            await wait_until(lambda: answers(None, 200), 10, "deleting the last token to return to dev mode")
            listing = orchlog_cli("token", "list", "--db", str(db))
            assert listing.stdout == "" and "auth: OFF" in listing.stderr, listing
    finally:
        server.stop()


def test_revoke_purge_deletes_the_row(tmp_path: Path) -> None:
    """`token revoke --purge` is `token delete`: the row is gone from the listing."""
    db = tmp_path / "o.db"
    create_token(db, "a", "read")
    create_token(db, "b", "read")
    done = orchlog_cli("token", "revoke", "--purge", "a", "--db", str(db))
    assert done.returncode == 0 and "deleted 'a'" in done.stdout, done
    listing = orchlog_cli("token", "list", "--db", str(db)).stdout
    assert [line.split()[1] for line in listing.splitlines()] == ["b"], listing


def test_token_help_says_when_auth_is_on() -> None:
    """`token --help` states the rule: any row (active or revoked) or ORCHLOG_TOKENS → on; delete → off."""
    text = " ".join(orchlog_cli("token", "--help").stdout.split())
    assert "Auth is ON while the database holds at least one token row (active or revoked)" in text, text
    assert "ORCHLOG_TOKENS" in text and "token delete" in text and "dev mode" in text


@needs_pg
def test_token_commands_work_against_postgresql(pg_db: str, tmp_path: Path) -> None:
    """`token create|list|revoke|delete`, `migrate`, `retention` and `backup` with a
    postgresql:// --db go to PostgreSQL (no SQLite file or `postgresql:` folder appears);
    `backup` names pg_dump with the exact command and never prints the password."""

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHLOG_")}
        return subprocess.run(
            [sys.executable, "-m", "orchlog", *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
        )

    assert cli("migrate", "--db", pg_db).returncode == 0
    empty = cli("token", "list", "--db", pg_db)
    assert empty.returncode == 0 and empty.stdout == "" and "auth: OFF" in empty.stderr, empty
    made = cli("token", "create", "--db", pg_db, "--name", "pgdash", "--scope", "read")
    assert made.returncode == 0 and made.stdout.startswith("olg_"), made
    listing = cli("token", "list", "--db", pg_db)
    assert listing.returncode == 0 and " pgdash " in listing.stdout and "active" in listing.stdout, listing
    assert "auth: ON" in listing.stderr
    dup = cli("token", "create", "--db", pg_db, "--name", "pgdash", "--scope", "read")
    assert dup.returncode == 2 and "exists" in dup.stderr, dup
    assert cli("token", "revoke", "pgdash", "--db", pg_db).returncode == 0
    assert "revoked" in cli("token", "list", "--db", pg_db).stdout
    assert cli("token", "delete", "pgdash", "--db", pg_db).returncode == 0
    assert "auth: OFF" in cli("token", "list", "--db", pg_db).stderr
    assert cli("retention", "--db", pg_db, "--rows", "5").returncode == 0

    dump = cli("backup", str(tmp_path / "x.dump"), "--db", pg_db)
    assert dump.returncode == 1 and "pg_dump --format=custom" in dump.stderr, dump
    password = urlsplit(pg_db).password
    if password:
        assert f":{password}@" not in dump.stderr, dump.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [], list(tmp_path.iterdir())
