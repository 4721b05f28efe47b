"""Settings that never mislead: validated at start-up (all errors at once, naming flag and
variable), unknown ORCHLOG_* variables warned about, `orchlog config` printing TOML that
`--config` takes back, the README table generated from the model, a quiet access log by default,
and `--help` texts that state each default once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import click
import httpx
import pytest
from pydantic import SecretStr

from helpers import REPO, Server, free_port, wait_until
from orchlog.cli import main
from orchlog.config import Settings, settings_table

README = REPO / "README.md"


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ORCHLOG_")}
    return subprocess.run(
        [sys.executable, "-m", "orchlog", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=timeout,
    )


def test_a_bad_retention_age_stops_the_server_with_a_clear_message(tmp_path: Path) -> None:
    """ORCHLOG_RETENTION_AGE="30 days" used to start, say ready, and log a traceback every
    maintenance round; now serve exits 2 at once naming the variable and the accepted forms."""
    started = time.monotonic()
    done = cli(
        "serve", "--db", str(tmp_path / "o.db"), "--port", str(free_port()), env={"ORCHLOG_RETENTION_AGE": "30 days"}
    )
    assert done.returncode == 2, done
    assert time.monotonic() - started < 20
    assert "ORCHLOG_RETENTION_AGE" in done.stderr and "'30 days'" in done.stderr and "30d" in done.stderr
    assert "Traceback" not in done.stderr and "serving" not in done.stderr
    assert not (tmp_path / "o.db").exists()


def test_every_bad_setting_is_reported_at_once_with_flag_and_variable() -> None:
    done = cli(
        "config", "--check", env={"ORCHLOG_PORT": "eighty", "ORCHLOG_MAX_ITEMS": "0", "ORCHLOG_LOG_LEVEL": "loud"}
    )
    assert done.returncode == 1, done
    assert "3 bad settings" in done.stderr, done.stderr
    assert "flag --port, env ORCHLOG_PORT" in done.stderr
    assert "env ORCHLOG_MAX_ITEMS" in done.stderr and "flag --max-items" not in done.stderr
    assert "flag --log-level, env ORCHLOG_LOG_LEVEL" in done.stderr and "'loud'" in done.stderr
    assert cli("config", "--check").returncode == 0


def test_unknown_orchlog_variables_are_warned_about_once(tmp_path: Path) -> None:
    """A typo like ORCHLOG_RETENTON_AGE is named once on stderr; client variables (ORCHLOG_URL,
    ORCHLOG_TOKEN) are not settings but known, so not warned about."""
    done = cli("config", "--check", env={"ORCHLOG_RETENTON_AGE": "7d", "ORCHLOG_URL": "http://x", "ORCHLOG_TOKEN": "t"})
    assert done.returncode == 0, done
    assert done.stderr.count("ORCHLOG_RETENTON_AGE") == 1, done.stderr
    assert "ORCHLOG_URL" not in done.stderr and "ORCHLOG_TOKEN" not in done.stderr


def test_config_prints_toml_that_config_accepts_back(tmp_path: Path) -> None:
    """`orchlog config` output is valid TOML (unset values and secrets as comments); feeding it back
    with --config gives the same settings; the secret never appears."""
    env = {"ORCHLOG_PORT": "9123", "ORCHLOG_RETENTION_AGE": "7d", "ORCHLOG_TOKENS": "ci:ingest:olg_topsecret"}
    first = cli("config", env=env)
    assert first.returncode == 0, first
    parsed = tomllib.loads(first.stdout)["orchlog"]
    assert parsed["port"] == 9123 and parsed["retention_age"] == "7d" and "tokens" not in parsed
    assert "olg_topsecret" not in first.stdout + first.stderr
    saved = tmp_path / "orchlog.toml"
    saved.write_text(first.stdout)
    again = cli("config", "--config", str(saved))
    assert again.returncode == 0, again
    assert again.stdout.replace("(unset;", "(set, hidden;") == first.stdout.replace("(unset;", "(set, hidden;")
    assert cli("config", "--check", "--config", str(saved)).returncode == 0


def test_secrets_are_secretstr() -> None:
    settings = Settings(tokens=SecretStr("a:read:olg_hidden"))
    assert "olg_hidden" not in repr(settings) and "olg_hidden" not in str(settings.public())


def test_readme_settings_table_is_the_generated_one() -> None:
    """The README's table is `orchlog config --markdown`: every setting, its flag (if any), default."""
    text = README.read_text()
    found = re.search(r"<!-- settings-table:[^\n]*-->\n(.*?)<!-- /settings-table -->", text, re.S)
    assert found, "README lacks the settings-table markers"
    assert found.group(1) == settings_table(), "regenerate it: orchlog config --markdown"
    assert all(f"`ORCHLOG_{name.upper()}`" in found.group(1) for name in Settings.model_fields)


@pytest.mark.parametrize("log_all", [False, True])
async def test_access_log_default_is_errors_and_slow_only(tmp_path: Path, log_all: bool) -> None:
    """By default a 200 leaves no access line and a 404 does; with --access-log both do."""
    srv = Server(tmp_path / "o.db", *(["--access-log"] if log_all else [])).start()
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=30) as c:
            assert (await c.get("/api/v1/events", params={"marker": "fine"})).status_code == 200
            assert (await c.get("/api/v1/no-such-route-xyz")).status_code == 404
        await wait_until(lambda: "no-such-route-xyz" in srv.log_text(), 10, "the 404 access line")
    finally:
        srv.stop()
    assert ("marker=fine" in srv.log_text()) == log_all, srv.log_text()[-3000:]


def _commands(group: click.Group, ctx: click.Context) -> list[tuple[str, click.Command, click.Context]]:
    out = []
    for name, command in group.commands.items():
        sub = click.Context(command, info_name=name, parent=ctx)
        out.append((sub.command_path, command, sub))
        if isinstance(command, click.Group):
            out.extend(_commands(command, sub))
    return out


def test_no_help_text_states_a_default_twice() -> None:
    """Each option's help (its text plus click's [default: ...]) mentions its default at most once."""
    root = click.Context(main, info_name="orchlog")
    for path, command, ctx in _commands(main, root):
        for param in command.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            assert record[1].lower().count("default") <= 1, (path, record)
