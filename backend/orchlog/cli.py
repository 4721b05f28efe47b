"""The ``orchlog`` command: a thin skin over the library (settings → function)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from . import __version__
from .cli_admin import COMMANDS, DB_HELP, DEFAULT_URL, KIND_CHOICES, TOKEN_HELP, URL_HELP, load_settings
from .errors import OrchlogError
from .models import CATEGORIES, LEVELS


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
    settings = load_settings(
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
    type=click.Choice(LEVELS, case_sensitive=False),
    default=None,
    help="Minimum level.",
)
@click.option("--type", "types", multiple=True, help="Only this event_type (e.g. PreToolUse). Repeatable.")
@click.option(
    "--category",
    "categories",
    multiple=True,
    type=click.Choice(CATEGORIES),
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
@click.option("--category", default="response", show_default=True, type=click.Choice(CATEGORIES))
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
@click.option(
    "--rows", default="0", show_default=True, help="Ingest at these table sizes, prefilled fast (e.g. 0,1M,5M)."
)
def bench(suites: tuple[str, ...], quick: bool, out_dir: str, rows: str) -> None:
    """Measure orchlog on this machine: ingest, fan-out, catch-up, memory, tail.

    \b
    Each figure is printed next to a baseline measured in the same run (raw sqlite3 executemany,
    the naive one-commit-per-event pattern), so ratios stay comparable on noisy machines.
    Starts real servers on free ports; needs nothing else. Without SUITES, runs them all.
    """
    from pathlib import Path

    from .bench.ingest import parse_rows
    from .bench.run import SUITES, run

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    run(list(suites) or list(SUITES), quick, Path(out_dir), parse_rows(rows))


for _command in COMMANDS:
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig()
    main()
