"""Storage drivers behind one interface; ``open_store(url)`` picks one by URL, imported lazily."""

from __future__ import annotations

from ..config import Settings
from .base import Store


def open_store(settings: Settings) -> Store:
    """``sqlite:///path``, a plain path, or (later) ``postgresql://``."""
    url = settings.db
    if url.startswith(("postgresql://", "postgres://")):
        raise NotImplementedError("PostgreSQL support is not built yet; use a SQLite path")
    from .sqlite import SqliteStore

    return SqliteStore(sqlite_path(url), settings)


def sqlite_path(url: str) -> str:
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :] or "orchlog.db"
    if url.startswith("sqlite://"):
        return url[len("sqlite://") :]
    return url


__all__ = ["Store", "open_store", "sqlite_path"]
