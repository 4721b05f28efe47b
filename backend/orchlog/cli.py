"""The ``orchlog`` command: a thin skin over the library (settings → function)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from . import __version__
from .config import Settings
from .errors import OrchlogError

DB_HELP = "Database: a SQLite path or sqlite:///path (env ORCHLOG_DB). Default ./orchlog.db."


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings.load(overrides)
    except OrchlogError as exc:
        raise click.UsageError(exc.message) from None


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

    Every option also reads an ORCHLOG_* environment variable (ORCHLOG_DB, ORCHLOG_PORT, ...).
    """


@main.command()
@click.option("--db", default=None, help=DB_HELP)
@click.option(
    "--host", default=None, help="Interface to bind (env ORCHLOG_HOST). Default 127.0.0.1 (local only)."
)
@click.option(
    "--port", type=int, default=None, help="TCP port (env ORCHLOG_PORT). Default 8000; 0 picks a free one."
)
@click.option(
    "--synchronous",
    type=click.Choice(["NORMAL", "FULL"], case_sensitive=False),
    default=None,
    help="SQLite durability. NORMAL (default): acked events survive a crash of the process. "
    "FULL: they also survive power loss, at a cost per commit.",
)
@click.option("--log-level", default=None, help="debug, info, warning, error (env ORCHLOG_LOG_LEVEL).")
def serve(
    db: str | None, host: str | None, port: int | None, synchronous: str | None, log_level: str | None
) -> None:
    """Run the server: ingest API, history, live streams, orchestrator_3_stream compatibility.

    Applies pending schema migrations first. Stops cleanly on SIGTERM / Ctrl-C: streams are
    flushed and closed with 1001 (clients resume elsewhere), queued writes are committed.
    """
    settings = _settings(
        db=db,
        host=host,
        port=port,
        synchronous=synchronous.upper() if synchronous else None,
        log_level=log_level,
    )
    from .server import serve as run_server

    try:
        run_server(settings)
    except OrchlogError as exc:
        click.echo(f"orchlog: {exc.message}", err=True)
        sys.exit(1)


@main.command()
@click.option("--db", default=None, help=DB_HELP)
def migrate(db: str | None) -> None:
    """Create or upgrade the database schema (safe to run again: a no-op when up to date)."""
    settings = _settings(db=db)
    from .store import sqlite_path
    from .store.sqlite import migrate_path

    path = sqlite_path(settings.db)
    try:
        applied = migrate_path(path, settings)
    except OrchlogError as exc:
        click.echo(f"orchlog: {exc.message}", err=True)
        sys.exit(1)
    if applied:
        click.echo(f"{path}: applied {', '.join(applied)}")
    else:
        click.echo(f"{path}: schema is up to date")


URL_HELP = "Server URL (env ORCHLOG_URL). Default http://127.0.0.1:8000."
TOKEN_HELP = "Bearer token (env ORCHLOG_TOKEN)."


@main.command(context_settings={"ignore_unknown_options": False})
@click.option(
    "-f", "--follow", is_flag=True, help="Keep printing new events as they are committed (like tail -f)."
)
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(0, 100_000),
    default=None,
    help="Start with the last N events (default 10).",
)
@click.option(
    "--since", default=None, help="Only events at or after this time: 10m, 2h, 1d or an ISO-8601 time."
)
@click.option("--until", default=None, help="Only events before this time (same forms as --since).")
@click.option(
    "--after", type=click.IntRange(0), default=None, help="Start after this seq (0 = from the beginning)."
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
    type=click.Choice(["agent", "system"]),
    default=None,
    help="Only agent logs or only system logs.",
)
@click.option("--task", default=None, help="Only this task_slug.")
@click.option(
    "--grep", default=None, help="Only events whose text contains PATTERN (case-insensitive), highlighted."
)
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
@click.option(
    "--url", envvar="ORCHLOG_URL", default="http://127.0.0.1:8000", show_default=True, help=URL_HELP
)
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
    use_color = color == "always" or (
        color == "auto" and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    )
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
    type=click.Choice(["agent", "system"]),
    default="system",
    show_default=True,
    help="What plain-text lines become.",
)
@click.option("--agent", default=None, help="Agent name or id (required for --kind agent).")
@click.option("--level", default="INFO", show_default=True, help="Level for plain-text lines.")
@click.option(
    "--type", "event_type", default="text", show_default=True, help="event_type for plain-text agent lines."
)
@click.option(
    "--category", default="response", show_default=True, type=click.Choice(["hook", "response", "adw_step"])
)
@click.option(
    "--spool",
    default=None,
    type=click.Path(dir_okay=False),
    help="Keep unsent events in this SQLite file while the server is down.",
)
@click.option(
    "--url", envvar="ORCHLOG_URL", default="http://127.0.0.1:8000", show_default=True, help=URL_HELP
)
@click.option("--token", envvar="ORCHLOG_TOKEN", default=None, help=TOKEN_HELP)
def post(
    kind: str,
    agent: str | None,
    level: str,
    event_type: str,
    category: str,
    spool: str | None,
    url: str,
    token: str | None,
) -> None:
    """Post events read from stdin, one per line: a JSON object, or plain text.

    \b
    Batches, retries (idempotently) and prints a summary to stderr:
        my-agent 2>&1 | orchlog post --kind system --level INFO
        cat events.ndjson | orchlog post
    """
    from .post import run_post

    sys.exit(
        run_post(
            sys.stdin,
            kind=kind,
            agent=agent,
            level=level,
            event_type=event_type,
            category=category,
            spool=spool,
            url=url,
            token=token,
        )
    )


@main.command()
@click.argument("suites", nargs=-1, type=click.Choice(["ingest", "fanout", "catchup", "memory", "tail"]))
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
