"""Ids the server and the client library make: UUIDv7 (RFC 9562), time-ordered.

Time-ordered ids keep inserts into the unique ``id`` index at its right edge: random UUIDv4 ids
land all over the B-tree, so a table of millions of rows writes ~10x more pages per insert.
Client-supplied ids of any version are still accepted as they are.
"""

from __future__ import annotations

import uuid_utils


def new_id() -> str:
    """A fresh UUIDv7 in canonical lower-case text."""
    return str(uuid_utils.uuid7())
