"""Database chores behind the CLI (tokens, migrate, backup, retention), for both backends.

Everything goes through the ``Store`` picked by ``--db``, so ``orchlog token list --db
postgresql://...`` reads PostgreSQL, never a SQLite file named after the URL. A command that only
reads or changes an existing database never creates one: a missing SQLite file is an error naming
the path. Only ``migrate`` and ``token create`` (the first steps of a setup) may create it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from .auth import AuthState, TokenRecord, parse_seeded
from .config import Settings
from .errors import OrchlogError
from .store import is_postgres, open_store, sqlite_path
from .store.base import Store

T = TypeVar("T")


def describe_db(url: str) -> str:
    """The database for messages: the SQLite path, or the PostgreSQL URL without its password."""
    if not is_postgres(url):
        return sqlite_path(url)
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        netloc = f"{user.split(':', 1)[0]}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def check_database(settings: Settings, *, create: bool = False) -> None:
    """Refuse an unsupported ``--db`` and (unless ``create``) a SQLite file that does not exist."""
    if is_postgres(settings.db):
        return
    path = sqlite_path(settings.db)  # raises for a URL of an unknown scheme
    if create:
        return
    if not os.path.exists(path):
        raise OrchlogError(
            f"no database at {path!r} (from --db / ORCHLOG_DB); check the path, "
            "or create one with `orchlog migrate --db PATH`"
        )
    if os.path.isdir(path):
        raise OrchlogError(f"--db {path!r} is a directory, not a database file")


@asynccontextmanager
async def opened(settings: Settings, *, create: bool = False) -> AsyncIterator[Store]:
    check_database(settings, create=create)
    store = open_store(settings)
    await store.open()  # applies pending migrations, like the server does
    try:
        yield store
    finally:
        await store.close()


def run(settings: Settings, job: Callable[[Store], Awaitable[T]], *, create: bool = False) -> T:
    """Open the store, run ``job`` on it, close it: one call per CLI command."""

    async def main() -> T:
        async with opened(settings, create=create) as store:
            return await job(store)

    return asyncio.run(main())


# ---------------------------------------------------------------- tokens


def create_token(
    settings: Settings, name: str, scopes: Sequence[str], agents: Sequence[str]
) -> tuple[TokenRecord, str]:
    from .store.tokens import new_record

    record, secret = new_record(name, scopes, agents)

    async def job(store: Store) -> None:
        await store.create_token(record)

    run(settings, job, create=True)
    return record, secret


def list_tokens(settings: Settings) -> tuple[list[TokenRecord], AuthState]:
    """The token rows and the mode a server on this database (with these settings) is in."""

    async def job(store: Store) -> list[TokenRecord]:
        return await store.load_tokens()

    records = run(settings, job)
    return records, AuthState.of(records, len(parse_seeded(settings.tokens)))


def revoke_token(settings: Settings, ref: str, *, purge: bool = False) -> tuple[TokenRecord, AuthState]:
    async def job(store: Store) -> tuple[TokenRecord, list[TokenRecord]]:
        record = await (store.delete_token(ref) if purge else store.revoke_token(ref))
        return record, await store.load_tokens()

    record, rest = run(settings, job)
    return record, AuthState.of(rest, len(parse_seeded(settings.tokens)))


# ---------------------------------------------------------------- migrate and backup


def migrate(settings: Settings) -> list[str]:
    async def job(store: Store) -> list[str]:
        return list(store.migrations_applied)

    return run(settings, job, create=True)


def pg_dump_command(url: str, dest: str) -> str:
    return f"pg_dump --format=custom --file={dest} '{describe_db(url)}'"


def backup(settings: Settings, dest: str, *, force: bool, progress: Callable[[int, int], None] | None = None) -> int:
    """Copy the SQLite database to ``dest``; returns the pages copied. PostgreSQL is refused with
    the ``pg_dump`` command to run instead (a consistent dump is its job, not ours)."""
    from .store.backup import backup_database

    if is_postgres(settings.db):
        raise OrchlogError(
            "this is a PostgreSQL database: back it up with pg_dump (consistent while orchlog runs), e.g.\n"
            f"    {pg_dump_command(settings.db, dest)}\n"
            "(give the password with PGPASSWORD or ~/.pgpass; restore with pg_restore --dbname=URL FILE)"
        )
    check_database(settings)
    target = Path(dest)
    if target.is_dir():
        raise OrchlogError(f"{dest} is a directory; give a file name, e.g. {target / 'orchlog-backup.db'}")
    if not target.parent.is_dir():
        raise OrchlogError(f"the folder {str(target.parent)!r} does not exist; create it first (mkdir -p)")
    if target.exists() and not force:
        raise OrchlogError(f"{dest} exists already; pass --force to overwrite it")
    return backup_database(sqlite_path(settings.db), dest, progress=progress)
