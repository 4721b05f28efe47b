"""API tokens in a SQLite database: create (returns the secret once), list, revoke, load.

Synchronous on purpose: the CLI calls these directly, the server calls ``load_tokens`` on a
reader thread. Only the SHA-256 of a token is ever written.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence

import orjson

from ..auth import SCOPES, TokenRecord, new_token, token_hash
from ..errors import NotFound, OrchlogError
from ..models import canonical_uuid, now_ts


def _record(row: tuple[str, str, str, str, str, str, str | None]) -> TokenRecord:
    ident, name, digest, scopes, agents, created, revoked = row
    return TokenRecord(ident, name, digest, tuple(orjson.loads(scopes)), tuple(orjson.loads(agents)), created, revoked)


def load_tokens(conn: sqlite3.Connection) -> list[TokenRecord]:
    rows = conn.execute(
        "SELECT id, name, token_hash, scopes, agent_ids, created_at, revoked_at FROM api_tokens ORDER BY created_at"
    ).fetchall()
    return [_record(r) for r in rows]


def create_token(
    conn: sqlite3.Connection, name: str, scopes: Sequence[str], agent_ids: Sequence[str] = ()
) -> tuple[TokenRecord, str]:
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise OrchlogError(f"scopes must be some of {', '.join(SCOPES)} (got {', '.join(scopes) or 'none'})")
    try:
        agents = sorted({str(canonical_uuid(a)) for a in agent_ids})
    except ValueError:
        raise OrchlogError("--agent takes agent ids (UUIDs)") from None
    token = new_token()
    record = TokenRecord(
        str(uuid.uuid4()), name, token_hash(token), tuple(sorted(set(scopes))), tuple(agents), now_ts()
    )
    try:
        conn.execute(
            "INSERT INTO api_tokens (id, name, token_hash, scopes, agent_ids, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                record.id,
                name,
                record.token_hash,
                orjson.dumps(record.scopes).decode(),
                orjson.dumps(record.agent_ids).decode(),
                record.created_at,
            ),
        )
    except sqlite3.IntegrityError:
        raise OrchlogError(f"a token named {name!r} exists already; pick another --name") from None
    return record, token


def revoke_token(conn: sqlite3.Connection, ref: str) -> TokenRecord:
    row = conn.execute(
        "SELECT id, name, token_hash, scopes, agent_ids, created_at, revoked_at FROM api_tokens "
        "WHERE id = ? OR name = ?",
        (ref, ref),
    ).fetchone()
    if row is None:
        raise NotFound(f"no token with id or name {ref!r} (see `orchlog token list`)")
    conn.execute("UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", (now_ts(), row[0]))
    return _record(row)
