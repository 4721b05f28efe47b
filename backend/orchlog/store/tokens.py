"""API tokens in the database: create (returns the secret once), list, revoke, delete, load.

The SQL for both dialects lives here; the drivers' ``create_token`` / ``revoke_token`` /
``delete_token`` / ``load_tokens`` only hand over a connection (a ``sqlite3.Connection`` on the
writer thread, an asyncpg connection). Only the SHA-256 of a token is ever written.

Lifecycle (see ``auth.AuthState``): a revoked token keeps its row, so the server stays closed
(fail closed: revoking the last token never reopens the API); deleting the rows is the one way
back to the open dev mode.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from ..auth import SCOPES, TokenRecord, new_token, token_hash
from ..errors import NotFound, OrchlogError
from ..models import canonical_uuid, format_ts, now_ts

_COLS = "id, name, token_hash, scopes, agent_ids, created_at, revoked_at"


def new_record(name: str, scopes: Sequence[str], agent_ids: Sequence[str] = ()) -> tuple[TokenRecord, str]:
    """A checked token record and its secret (not stored yet)."""
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise OrchlogError(f"scopes must be some of {', '.join(SCOPES)} (got {', '.join(scopes) or 'none'})")
    if not name.strip():
        raise OrchlogError("--name must not be empty")
    try:
        agents = sorted({str(canonical_uuid(a)) for a in agent_ids})
    except ValueError:
        raise OrchlogError("--agent takes agent ids (UUIDs)") from None
    token = new_token()
    record = TokenRecord(
        str(uuid.uuid4()), name, token_hash(token), tuple(sorted(set(scopes))), tuple(agents), now_ts()
    )
    return record, token


def _taken(name: str) -> OrchlogError:
    return OrchlogError(f"a token named {name!r} exists already; pick another --name")


def _unknown(ref: str) -> NotFound:
    return NotFound(f"no token with id or name {ref!r} (see `orchlog token list`)")


# ---------------------------------------------------------------- SQLite (synchronous)


def _record(row: tuple[str, str, str, str, str, str, str | None]) -> TokenRecord:
    ident, name, digest, scopes, agents, created, revoked = row
    return TokenRecord(ident, name, digest, tuple(orjson.loads(scopes)), tuple(orjson.loads(agents)), created, revoked)


def load_tokens(conn: sqlite3.Connection) -> list[TokenRecord]:
    rows = conn.execute(f"SELECT {_COLS} FROM api_tokens ORDER BY created_at").fetchall()
    return [_record(r) for r in rows]


def insert_token(conn: sqlite3.Connection, record: TokenRecord) -> None:
    try:
        conn.execute(
            "INSERT INTO api_tokens (id, name, token_hash, scopes, agent_ids, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.name,
                record.token_hash,
                orjson.dumps(record.scopes).decode(),
                orjson.dumps(record.agent_ids).decode(),
                record.created_at,
            ),
        )
    except sqlite3.IntegrityError:
        raise _taken(record.name) from None


def create_token(
    conn: sqlite3.Connection, name: str, scopes: Sequence[str], agent_ids: Sequence[str] = ()
) -> tuple[TokenRecord, str]:
    record, token = new_record(name, scopes, agent_ids)
    insert_token(conn, record)
    return record, token


def _find(conn: sqlite3.Connection, ref: str) -> TokenRecord:
    row = conn.execute(f"SELECT {_COLS} FROM api_tokens WHERE id = ? OR name = ?", (ref, ref)).fetchone()
    if row is None:
        raise _unknown(ref)
    return _record(row)


def revoke_token(conn: sqlite3.Connection, ref: str) -> TokenRecord:
    record = _find(conn, ref)
    conn.execute("UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", (now_ts(), record.id))
    return _find(conn, record.id)


def delete_token(conn: sqlite3.Connection, ref: str) -> TokenRecord:
    record = _find(conn, ref)
    conn.execute("DELETE FROM api_tokens WHERE id = ?", (record.id,))
    return record


# ---------------------------------------------------------------- PostgreSQL (asyncpg connection)


def _pg_record(r: Any) -> TokenRecord:
    revoked: datetime | None = r["revoked_at"]
    return TokenRecord(
        str(r["id"]),
        r["name"],
        r["token_hash"],
        tuple(orjson.loads(r["scopes"])),
        tuple(orjson.loads(r["agent_ids"])),
        format_ts(r["created_at"]),
        format_ts(revoked) if revoked else None,
    )


async def pg_load_tokens(conn: Any) -> list[TokenRecord]:
    return [_pg_record(r) for r in await conn.fetch(f"SELECT {_COLS} FROM api_tokens ORDER BY created_at")]


async def pg_insert_token(conn: Any, record: TokenRecord) -> None:
    row = await conn.fetchrow(
        "INSERT INTO api_tokens (id, name, token_hash, scopes, agent_ids, created_at) "
        "VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6) ON CONFLICT DO NOTHING RETURNING id",
        uuid.UUID(record.id),
        record.name,
        record.token_hash,
        orjson.dumps(record.scopes).decode(),
        orjson.dumps(record.agent_ids).decode(),
        datetime.fromisoformat(record.created_at.replace("Z", "+00:00")),
    )
    if row is None:
        raise _taken(record.name)


async def _pg_find(conn: Any, ref: str) -> TokenRecord:
    rows = await conn.fetch(f"SELECT {_COLS} FROM api_tokens WHERE id::text = $1 OR name = $1", ref)
    if not rows:
        raise _unknown(ref)
    return _pg_record(rows[0])


async def pg_revoke_token(conn: Any, ref: str) -> TokenRecord:
    record = await _pg_find(conn, ref)
    await conn.execute(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1", uuid.UUID(record.id)
    )
    return await _pg_find(conn, record.id)


async def pg_delete_token(conn: Any, ref: str) -> TokenRecord:
    record = await _pg_find(conn, ref)
    await conn.execute("DELETE FROM api_tokens WHERE id = $1", uuid.UUID(record.id))
    return record
