"""The ``orchlog`` command: a thin skin over the library (settings → function)."""

from __future__ import annotations

import logging
import sys
from typing import Any, NoReturn

import click

from . import __version__
from .auth import AUTH_RULE
from .config import Settings
from .errors import OrchlogError

DB_HELP = "Database: a SQLite path, sqlite:///path or postgresql://... (env ORCHLOG_DB). Default ./orchlog.db."
DEFAULT_URL = "http://127.0.0.1:8000"
URL_HELP = f"Server URL (env ORCHLOG_URL). Default {DEFAULT_URL}."
TOKEN_HELP = "Bearer token (env ORCHLOG_TOKEN)."
KIND_CHOICES = ["agent", "system", "agent_log", "system_log"]
BACKUP_PROGRESS_PAGES = 25_600  # about 100 MiB: smaller copies finish before progress would help
TOKEN_GROUP_HELP = f"""Create, list, revoke and delete API tokens (stored hashed in the database).

\b
Scopes: read (history, streams, dashboard), ingest (post events, update agents),
admin (everything). With --agent, a token only reads / posts for those agents.

{AUTH_RULE}

\b
    orchlog token create --name dashboard --scope read
    curl -H "Authorization: Bearer $TOKEN" localhost:8000/api/v1/events
    orchlog token list          # every token, and whether auth is on
"""


def _settings(config: str | None = None, **overrides: Any) -> Settings:
    """Load and validate every setting; bad ones are listed at once (exit 2), never a traceback."""
    try:
        return Settings.load(overrides, config_file=config)
    except OrchlogError as exc:
        click.echo(f"orchlog: {exc.message}", err=True)
        sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="orchlog")
def main() -> None:
    """orchlog: a durable, gapless, live event log for fleets of AI agents.

    \b
    Start a server on http://127.0.0.1:8000 backed by ./orchlog.db:
        orchlog serve
    Post an event and read it back:
        curl -X POST localhost:8000/api/v1/system-logs -H 'content-type: application/json' \\
             -d '{"level": "info", "message": "hello"}'
        curl 'localhost:8000/api/v1/events?after=0'
    Watch it live (WebSocket): ws://127.0.0.1:8000/api/v1/stream?after=0

    Every server setting also reads an ORCHLOG_* environment variable (ORCHLOG_DB, ORCHLOG_PORT,
    ...; the full list: `orchlog config --markdown`); the client commands read ORCHLOG_URL and
    ORCHLOG_TOKEN.
    """


@main.command()
@click.option("--db", default=None, help=DB_HELP)
@click.option("--host", default=None, help="Interface to bind (env ORCHLOG_HOST). Default 127.0.0.1 (local only).")
@click.option("--port", type=int, default=None, help="TCP port (env ORCHLOG_PORT). Default 8000; 0 picks a free one.")
@click.option(
    "--synchronous",
    type=click.Choice(["NORMAL", "FULL"], case_sensitive=False),
    default=None,
    help="SQLite durability. NORMAL (default): acked events survive a crash of the process. "
    "FULL: they also survive power loss, at a cost per commit.",
)
@click.option("--log-level", default=None, help="debug, info, warning, error (env ORCHLOG_LOG_LEVEL).")
@click.option(
    "--access-log",
    is_flag=True,
    default=None,
    help="Log every request (env ORCHLOG_ACCESS_LOG). Default: only errors and slow requests.",
)
@click.option("--config", "config_file", default=None, help="TOML settings file (env ORCHLOG_CONFIG).")
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    default=None,
    help="Allow binding a non-loopback --host with no token configured (the API is then open to the network).",
)
def serve(
    db: str | None,
    host: str | None,
    port: int | None,
    synchronous: str | None,
    log_level: str | None,
    access_log: bool | None,
    config_file: str | None,
    insecure_no_auth: bool | None,
) -> None:
    """Run the server: ingest API, history, live streams, orchestrator_3_stream compatibility.

    Applies pending schema migrations first. Stops cleanly on SIGTERM / Ctrl-C: streams are
    flushed and closed with 1001 (clients resume elsewhere), queued writes are committed.
    """
    settings = _settings(
        config_file,
        db=db,
        host=host,
        port=port,
        synchronous=synchronous.upper() if synchronous else None,
        log_level=log_level,
        access_log=access_log or None,
        insecure_no_auth=insecure_no_auth or None,
    )
    from .server import serve as run_server

    try:
        run_server(settings)
    except OrchlogError as exc:
        click.echo(f"orchlog: {exc.message}", err=True)
        sys.exit(1)


def _fail(exc: OrchlogError) -> NoReturn:
    click.echo(f"orchlog: {exc.message}", err=True)
    sys.exit(1)


@main.command()
@click.option("--db", default=None, help=DB_HELP)
def migrate(db: str | None) -> None:
    """Create or upgrade the database schema (safe to run again: a no-op when up to date)."""
    from . import admin

    settings = _settings(db=db)
    try:
        applied = admin.migrate(settings)
        where = admin.describe_db(settings.db)
    except OrchlogError as exc:
        _fail(exc)
    if applied:
        click.echo(f"{where}: applied {', '.join(applied)}")
    else:
        click.echo(f"{where}: schema is up to date")


@main.group(help=TOKEN_GROUP_HELP)
def token() -> None:
    pass


@token.command("create")
@click.option("--name", required=True, help="A unique name (shown in logs and `token list`).")
@click.option("--scope", "scopes", multiple=True, required=True, type=click.Choice(["read", "ingest", "admin"]))
@click.option("--agent", "agents", multiple=True, help="Bind the token to this agent id (repeatable).")
@click.option("--db", default=None, help=DB_HELP)
def token_create(name: str, scopes: tuple[str, ...], agents: tuple[str, ...], db: str | None) -> None:
    """Create a token and print it ONCE (only its hash is stored). Turns auth on."""
    from . import admin

    settings = _settings(db=db)
    try:
        record, secret = admin.create_token(settings, name, scopes, agents)
    except OrchlogError as exc:
        raise click.UsageError(exc.message) from None
    click.echo(secret)
    bound = f", agents {', '.join(record.agent_ids)}" if record.agent_ids else ""
    click.echo(
        f"created token {record.name!r} ({record.id}) with scopes {', '.join(record.scopes)}{bound}; "
        "store it now, it cannot be shown again. Auth is now ON for every client of this database.",
        err=True,
    )


@token.command("list")
@click.option("--db", default=None, help=DB_HELP)
def token_list(db: str | None) -> None:
    """List active and revoked tokens (never the secrets), then the mode the server is in."""
    from . import admin

    settings = _settings(db=db)
    try:
        records, state = admin.list_tokens(settings)
    except OrchlogError as exc:
        _fail(exc)
    for r in records:
        status = f"revoked {r.revoked_at}" if r.revoked_at else "active"
        agents = ",".join(r.agent_ids) or "all agents"
        click.echo(f"{r.id}  {r.name:<20} {'+'.join(r.scopes):<18} {agents}  created {r.created_at}  {status}")
    if not records:
        click.echo("no tokens in this database", err=True)
    click.echo(state.describe(), err=True)


@token.command("revoke")
@click.argument("ref")
@click.option("--purge", is_flag=True, help="Delete the row as well (same as `token delete`).")
@click.option("--db", default=None, help=DB_HELP)
def token_revoke(ref: str, purge: bool, db: str | None) -> None:
    """Revoke a token by id or name (servers notice within a few seconds).

    The row stays (listed as revoked), so auth stays ON even when no token is active."""
    _revoke(ref, db, purge=purge)


@token.command("delete")
@click.argument("ref")
@click.option("--db", default=None, help=DB_HELP)
def token_delete(ref: str, db: str | None) -> None:
    """Delete a token by id or name. Deleting the last one turns auth OFF (dev mode)."""
    _revoke(ref, db, purge=True)


def _revoke(ref: str, db: str | None, *, purge: bool) -> None:
    from . import admin

    settings = _settings(db=db)
    try:
        record, state = admin.revoke_token(settings, ref, purge=purge)
    except OrchlogError as exc:
        _fail(exc)
    click.echo(f"{'deleted' if purge else 'revoked'} {record.name!r} ({record.id})")
    click.echo(state.describe(), err=True)


@main.group(invoke_without_command=True)
@click.option(
    "--agent", envvar="ORCHLOG_AGENT", default=None, help="Agent name (env ORCHLOG_AGENT; default claude-<session id>)."
)
@click.option("--spool", default=None, type=click.Path(dir_okay=False), help="Spool file (env ORCHLOG_SPOOL).")
@click.option("--wait", "wait_s", type=float, default=1.5, show_default=True, help="Longest wait for the server (s).")
@click.option("-v", "--verbose", is_flag=True, help="Say what happened on stderr.")
@click.option("--url", envvar="ORCHLOG_URL", default="http://127.0.0.1:8000", show_default=True, help="Server URL.")
@click.option("--token", default=None, help="Bearer token with the ingest scope (default: from --token-env).")
@click.option("--token-env", default="ORCHLOG_TOKEN", show_default=True, help="Environment variable holding the token.")
@click.pass_context
def hook(
    ctx: click.Context,
    agent: str | None,
    spool: str | None,
    wait_s: float,
    verbose: bool,
    url: str,
    token: str | None,
    token_env: str,
) -> None:
    """Claude Code hook: reads the hook JSON on stdin and records it as an agent log.

    \b
    Always exits 0 within about --wait seconds and prints nothing on stdout, even when the
    server is down: the event waits in a local spool and goes out with the next hook run.
    Set it up once:   orchlog hook install --project --url URL    (--dry-run to look first)
    The installed command is `PYTHON -m orchlog.hook ...`: the same hook, without this CLI's imports.
    """
    if ctx.invoked_subcommand is not None:
        return
    import os

    from .hook import run_hook

    token = token or os.environ.get(token_env) or None
    sys.exit(run_hook(sys.stdin, url=url, token=token, agent=agent, spool=spool, wait_s=wait_s, verbose=verbose))


@hook.command("install")
@click.option("--project", "scope", flag_value="project", default=True, help="./.claude/settings.json (default).")
@click.option("--user", "scope", flag_value="user", help="~/.claude/settings.json")
@click.option("--agent", default=None, help="Agent name to record events under (default claude-<session id>).")
@click.option("--url", default=None, help="Server URL baked into the command (default $ORCHLOG_URL or :8000).")
@click.option(
    "--token-env",
    default=None,
    help="Environment variable the hook reads the token from at run time (default ORCHLOG_TOKEN).",
)
@click.option(
    "--token", default=None, help="Write this token into the settings file (a secret on disk: see the warning)."
)
@click.option("--dry-run", is_flag=True, help="Print the merged settings instead of writing them.")
def hook_install(
    scope: str, agent: str | None, url: str | None, token_env: str | None, token: str | None, dry_run: bool
) -> None:
    """Add the orchlog hook to every Claude Code hook event (merging; other settings are kept).

    \b
    The command names this Python by absolute path, so it runs with Claude Code's PATH; the
    token is read at run time from $ORCHLOG_TOKEN (or --token-env VAR), never written to disk
    unless --token is given. Re-installing replaces earlier orchlog entries.
    """
    from .hook_install import install

    if token and token_env:
        raise click.UsageError("give --token or --token-env, not both")
    try:
        result = install(scope, agent=agent, url=url, token_env=token_env, token=token, dry_run=dry_run)
    except (ValueError, OSError) as exc:
        click.echo(f"orchlog: {exc}", err=True)
        sys.exit(1)
    if dry_run:
        click.echo(result, nl=False)
        return
    click.echo(f"orchlog hooks installed in {result}")
    if token:
        click.echo(
            f"orchlog: warning: the token is written in plain text into {result}; do not commit that file "
            "(prefer --token-env VAR and export VAR where Claude Code runs)",
            err=True,
        )


@main.command()
@click.option("--url", envvar="ORCHLOG_URL", default=DEFAULT_URL, help=URL_HELP)
@click.option("--token", envvar="ORCHLOG_TOKEN", default=None, help=TOKEN_HELP + " Needs the ingest scope.")
@click.option("--db", default="./orchlog-demo.db", show_default=True, help="Database for a server started by the demo.")
@click.option("--agents", type=click.IntRange(1, 6), default=4, show_default=True)
@click.option("--rate", type=float, default=20.0, show_default=True, help="Events per second.")
@click.option("--seconds", type=float, default=None, help="Stop after this long (default: until Ctrl-C).")
def demo(url: str, token: str | None, db: str, agents: int, rate: float, seconds: float | None) -> None:
    """Simulate a small agent fleet (tool calls, responses, warnings, errors, status changes).

    Starts a server on --url (with its own --db) if none answers, then posts events until Ctrl-C.
    Each run makes its own orchestrator and agents (demo-planner-XXXX, ...), so it never writes
    as an agent you already have. Open the dashboard at the URL, or `orchlog tail -f`, and watch.
    """
    from .demo import run_demo

    sys.exit(run_demo(url, token=token, db=db, agents=agents, rate=rate, seconds=seconds))


@main.command("config")
@click.option("--config", "config_file", default=None, help="TOML settings file (env ORCHLOG_CONFIG).")
@click.option("--check", is_flag=True, help="Only validate: print every problem, exit 1 if there is one.")
@click.option("--markdown", is_flag=True, help="Print the table of every setting (as in the README).")
def show_config(config_file: str | None, check: bool, markdown: bool) -> None:
    """Print the effective settings as TOML that --config accepts back (flags > ORCHLOG_* env >
    TOML file > defaults); secrets are never printed."""
    from .config import settings_table, to_toml

    if markdown:
        click.echo(settings_table(), nl=False)
        return
    try:
        settings = Settings.load(config_file=config_file)
    except OrchlogError as exc:
        click.echo(f"orchlog: {exc.message}", err=True)
        sys.exit(1)
    if check:
        click.echo("settings ok", err=True)
        return
    click.echo(to_toml(settings), nl=False)


@main.command()
@click.argument("dest", type=click.Path(dir_okay=False))
@click.option("--db", default=None, help=DB_HELP)
@click.option("--force", is_flag=True, help="Overwrite DEST if it exists.")
def backup(dest: str, db: str | None, force: bool) -> None:
    """Copy the SQLite database to DEST with SQLite's online backup API (a consistent snapshot,
    safe while the server runs), then verify the copy with integrity_check.

    Progress goes to stderr on large databases. For PostgreSQL it prints the pg_dump command to
    run instead."""
    from . import admin

    settings = _settings(db=db)
    shown = [-1]

    def progress(copied: int, total: int) -> None:
        percent = copied * 100 // max(total, 1)
        if total > BACKUP_PROGRESS_PAGES and percent // 10 != shown[0] // 10:
            shown[0] = percent
            click.echo(f"backup: {percent}% ({copied} of {total} pages)", err=True)

    try:
        pages = admin.backup(settings, dest, force=force, progress=progress)
    except OrchlogError as exc:
        _fail(exc)
    click.echo(f"backed up {pages} pages to {dest}; integrity_check ok")


@main.command()
@click.option("--db", default=None, help=DB_HELP)
@click.option("--age", default=None, help="Delete events older than this (30d, 12h, ...); default from settings.")
@click.option("--rows", type=click.IntRange(1), default=None, help="Keep only the newest N rows per table.")
def retention(db: str | None, age: str | None, rows: int | None) -> None:
    """Apply retention now (in small chunks; safe while the server runs), then checkpoint."""
    import asyncio

    from .admin import check_database
    from .runtime import Runtime

    settings = _settings(db=db, retention_age=age, retention_rows=rows)

    async def run() -> dict[str, int]:
        rt = Runtime(settings)
        await rt.store.open()
        rt.writer.start()
        try:
            return await rt.maintain()
        finally:
            await rt.writer.stop()
            await rt.store.close()

    try:
        check_database(settings)
        deleted = asyncio.run(run())
    except OrchlogError as exc:
        _fail(exc)
    if not deleted:
        click.echo("no retention configured: pass --age and/or --rows, or set ORCHLOG_RETENTION_AGE / _ROWS")
    for table, n in deleted.items():
        click.echo(f"{table}: deleted {n} rows")


@main.command(context_settings={"ignore_unknown_options": False})
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events as they are committed (like tail -f).")
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(0, 100_000),
    default=None,
    help="Start with the last N events (default 10; with --since: the last N of those); not with --after.",
)
@click.option("--since", default=None, help="Only events at or after this time: 10m, 2h, 1d or an ISO-8601 time.")
@click.option("--until", default=None, help="Only events before this time (same forms as --since).")
@click.option(
    "--after",
    type=click.IntRange(0),
    default=None,
    help="Start after this seq (0 = from the beginning); not with -n.",
)
@click.option(
    "--cursor-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Resume after the seq saved in this file, and keep saving the last printed seq there.",
)
@click.option("--agent", "agents", multiple=True, help="Only this agent (name or id). Repeat for several.")
@click.option(
    "-p",
    "--level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
    default=None,
    help="Minimum level.",
)
@click.option("--type", "types", multiple=True, help="Only this event_type (e.g. PreToolUse). Repeatable.")
@click.option(
    "--category",
    "categories",
    multiple=True,
    type=click.Choice(["hook", "response", "adw_step"]),
    help="Only this event_category. Repeatable.",
)
@click.option(
    "--kind",
    type=click.Choice(KIND_CHOICES),
    default=None,
    help="Only agent logs or only system logs (agent_log / system_log work too).",
)
@click.option("--task", default=None, help="Only this task_slug.")
@click.option("--grep", default=None, help="Only events whose text contains PATTERN (case-insensitive), highlighted.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json", "raw"]),
    default="text",
    show_default=True,
    help="text: a readable line per event; json: a JSON object per line (with seq); raw: content only.",
)
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="auto: only on a terminal, and never when NO_COLOR is set.",
)
@click.option("--timestamps", is_flag=True, help="Full UTC timestamps instead of the local time of day.")
@click.option("--url", envvar="ORCHLOG_URL", default=DEFAULT_URL, help=URL_HELP)
@click.option("--token", envvar="ORCHLOG_TOKEN", default=None, help=TOKEN_HELP)
def tail(**kw: Any) -> None:
    """Print events from a running server, and follow new ones with -f.

    \b
    Never shows an event twice or skips one: it reconnects by itself and resumes after the
    last printed seq, and --cursor-file carries that position across runs.
    \b
    Examples:
        orchlog tail -f                                # last 10, then live
        orchlog tail -f --agent builder -p warning     # one agent, warnings and worse
        orchlog tail --since 1h -o json | jq .data     # the last hour as JSON lines
        orchlog tail -f --cursor-file ~/.orchlog.cur   # pick up where the last run stopped
    \b
    Exit codes: 0 done, 2 bad usage, 3 authentication refused, 130 interrupted.
    """
    import os

    from .tail import TailOptions, run_tail

    color = kw.pop("color")
    use_color = color == "always" or (color == "auto" and sys.stdout.isatty() and "NO_COLOR" not in os.environ)
    level = kw.pop("level")
    options = TailOptions(
        url=kw.pop("url"),
        token=kw.pop("token"),
        color=use_color,
        level=level.upper() if level else None,
        **kw,
    )
    sys.exit(run_tail(options))


@main.command()
@click.option(
    "--kind",
    type=click.Choice(KIND_CHOICES),
    default="system",
    show_default=True,
    help="What plain-text lines become (agent = agent_log, system = system_log).",
)
@click.option("--agent", default=None, help="Agent name or id (required for --kind agent; a name must be unique).")
@click.option("--level", default="INFO", show_default=True, help="Level for plain-text lines.")
@click.option("--type", "event_type", default="text", show_default=True, help="event_type for plain-text agent lines.")
@click.option("--category", default="response", show_default=True, type=click.Choice(["hook", "response", "adw_step"]))
@click.option(
    "--spool",
    default=None,
    type=click.Path(dir_okay=False),
    help="Keep unsent events in this SQLite file while the server is down.",
)
@click.option("--strict", is_flag=True, help="Refuse a line that starts with '{' but is not valid JSON (exit 2).")
@click.option(
    "--wait", "wait_s", type=click.FloatRange(0), default=10.0, show_default=True, help="Longest wait to send (s)."
)
@click.option("--url", envvar="ORCHLOG_URL", default=DEFAULT_URL, help=URL_HELP)
@click.option("--token", envvar="ORCHLOG_TOKEN", default=None, help=TOKEN_HELP)
def post(**kw: Any) -> None:
    """Post events read from stdin, one per line: a JSON object, or plain text.

    \b
    Batches, retries (idempotently) and prints a summary to stderr:
        my-agent 2>&1 | orchlog post --kind system --level INFO
        cat events.ndjson | orchlog post
    \b
    A line that starts with '{' but is not JSON is posted as text with a warning (--strict refuses it).
    An unreachable server is reported at once; without --spool what is read then is counted as dropped.
    Exit codes: 0 all stored, 1 not all stored, 2 bad usage or input, 3 authentication refused.
    """
    from .post import PostOptions, run_post

    sys.exit(run_post(sys.stdin, PostOptions(**kw)))


@main.command()
@click.argument("suites", nargs=-1, type=click.Choice(["ingest", "fanout", "catchup", "memory", "tail", "hook"]))
@click.option("--quick", is_flag=True, help="Smaller runs (about a minute) for a smoke check.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Where to write bench-results.json/.md/.png.",
)
def bench(suites: tuple[str, ...], quick: bool, out_dir: str) -> None:
    """Measure orchlog on this machine: ingest, fan-out, catch-up, memory, tail.

    \b
    Each figure is printed next to a baseline measured in the same run (raw sqlite3 executemany,
    the naive one-commit-per-event pattern), so ratios stay comparable on noisy machines.
    Starts real servers on free ports; needs nothing else. Without SUITES, runs them all.
    """
    from pathlib import Path

    from .bench.run import SUITES, run

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    run(list(suites) or list(SUITES), quick, Path(out_dir))


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig()
    main()
