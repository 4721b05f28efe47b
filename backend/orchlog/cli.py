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


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig()
    main()
