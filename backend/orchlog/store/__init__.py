"""Storage drivers behind one interface; ``open_store(url)`` picks one by URL, imported lazily."""

from __future__ import annotations

from ..config import Settings, check_db_url
from .base import Store


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
    check_db_url(url)
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :] or "orchlog.db"
    if url.startswith("sqlite://"):
        return url[len("sqlite://") :]
    return url


__all__ = ["Store", "is_postgres", "open_store", "sqlite_path"]
