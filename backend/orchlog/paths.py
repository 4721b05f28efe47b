"""Where the packaged resources live: inside the wheel, or in the checkout when run from source."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent.parent


def _first(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[-1]


def schema_dir(dialect: str) -> Path:
    """``schema/<dialect>`` with the numbered migrations (``NNNN_name.sql``)."""
    return _first(_PACKAGE / "_schema" / dialect, _CHECKOUT / "schema" / dialect)


def frontend_dir() -> Path:
    return _first(_PACKAGE / "_frontend", _CHECKOUT / "frontend_stub")
