"""The database commands of ``orchlog``: migrate, token, backup, retention, config.

A thin skin over ``admin.py`` (which goes through the ``Store`` for both backends); ``cli.py``
registers these on the main group. Shared option texts and the settings loader live here too.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from .auth import AUTH_RULE, SCOPES
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


def load_settings(config: str | None = None, **overrides: Any) -> Settings:
    """Load and validate every setting; bad ones are listed at once (exit 2), never a traceback."""
    try:
        return Settings.load(overrides, config_file=config)
    except OrchlogError as exc:
        click.echo(f"orchlog: {exc.message}", err=True)
        sys.exit(2)


def fail(exc: OrchlogError) -> NoReturn:
    click.echo(f"orchlog: {exc.message}", err=True)
    sys.exit(1)


@click.command()
@click.option("--db", default=None, help=DB_HELP)
def migrate(db: str | None) -> None:
    """Create or upgrade the database schema (safe to run again: a no-op when up to date)."""
    from . import admin

    settings = load_settings(db=db)
    try:
        applied = admin.migrate(settings)
        where = admin.describe_db(settings.db)
    except OrchlogError as exc:
        fail(exc)
    if applied:
        click.echo(f"{where}: applied {', '.join(applied)}")
    else:
        click.echo(f"{where}: schema is up to date")


@click.group(help=TOKEN_GROUP_HELP)
def token() -> None:
    pass


@token.command("create")
@click.option("--name", required=True, help="A unique name (shown in logs and `token list`).")
@click.option("--scope", "scopes", multiple=True, required=True, type=click.Choice(SCOPES))
@click.option("--agent", "agents", multiple=True, help="Bind the token to this agent id (repeatable).")
@click.option("--db", default=None, help=DB_HELP)
def token_create(name: str, scopes: tuple[str, ...], agents: tuple[str, ...], db: str | None) -> None:
    """Create a token and print it ONCE (only its hash is stored). Turns auth on."""
    from . import admin

    settings = load_settings(db=db)
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

    settings = load_settings(db=db)
    try:
        records, state = admin.list_tokens(settings)
    except OrchlogError as exc:
        fail(exc)
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

    settings = load_settings(db=db)
    try:
        record, state = admin.revoke_token(settings, ref, purge=purge)
    except OrchlogError as exc:
        fail(exc)
    click.echo(f"{'deleted' if purge else 'revoked'} {record.name!r} ({record.id})")
    click.echo(state.describe(), err=True)


@click.command("config")
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


@click.command()
@click.argument("dest", type=click.Path(dir_okay=False))
@click.option("--db", default=None, help=DB_HELP)
@click.option("--force", is_flag=True, help="Overwrite DEST if it exists.")
def backup(dest: str, db: str | None, force: bool) -> None:
    """Copy the SQLite database to DEST with SQLite's online backup API (a consistent snapshot,
    safe while the server runs), then verify the copy with integrity_check.

    Progress goes to stderr on large databases. For PostgreSQL it prints the pg_dump command to
    run instead."""
    from . import admin

    settings = load_settings(db=db)
    shown = [-1]

    def progress(copied: int, total: int) -> None:
        percent = copied * 100 // max(total, 1)
        if total > BACKUP_PROGRESS_PAGES and percent // 10 != shown[0] // 10:
            shown[0] = percent
            click.echo(f"backup: {percent}% ({copied} of {total} pages)", err=True)

    try:
        pages = admin.backup(settings, dest, force=force, progress=progress)
    except OrchlogError as exc:
        fail(exc)
    click.echo(f"backed up {pages} pages to {dest}; integrity_check ok")


@click.command()
@click.option("--db", default=None, help=DB_HELP)
@click.option("--age", default=None, help="Delete events older than this (30d, 12h, ...); default from settings.")
@click.option("--rows", type=click.IntRange(1), default=None, help="Keep only the newest N rows per table.")
def retention(db: str | None, age: str | None, rows: int | None) -> None:
    """Apply retention now (in small chunks; safe while the server runs), then checkpoint."""
    import asyncio

    from .admin import check_database
    from .runtime import Runtime

    settings = load_settings(db=db, retention_age=age, retention_rows=rows)

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
        fail(exc)
    if not deleted:
        click.echo("no retention configured: pass --age and/or --rows, or set ORCHLOG_RETENTION_AGE / _ROWS")
    for table, n in deleted.items():
        click.echo(f"{table}: deleted {n} rows")


COMMANDS = (migrate, token, show_config, backup, retention)
