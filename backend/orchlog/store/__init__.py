"""Storage drivers behind one interface; ``open_store(url)`` picks one by URL, imported lazily."""

from __future__ import annotations

import re

from ..config import Settings
from ..errors import OrchlogError
from .base import Store

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # two letters at least: C:\\ is a Windows path


def open_store(settings: Settings) -> Store:
    """``sqlite:///path``, a plain path, or (later) ``postgresql://``."""
    url = settings.db
    if is_postgres(url):
        from .postgres import PostgresStore

        return PostgresStore(url, settings)
    from .sqlite import SqliteStore

    return SqliteStore(sqlite_path(url), settings)


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def sqlite_path(url: str) -> str:
    """The file behind ``url``; a URL of any other scheme is refused (never taken as a path)."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :] or "orchlog.db"
    if url.startswith("sqlite://"):
        return url[len("sqlite://") :]
    if _SCHEME.match(url):
        raise OrchlogError(
            f"--db {url!r} is neither a path nor a supported URL "
            "(use a file path, sqlite:///path or postgresql://user@host/db)"
        )
    return url


__all__ = ["Store", "is_postgres", "open_store", "sqlite_path"]
