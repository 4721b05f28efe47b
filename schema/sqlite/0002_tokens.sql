-- 0002: API tokens. Only a SHA-256 of each token is stored; the token itself is shown once.
-- scopes: JSON array of 'read', 'ingest', 'admin'. agent_ids: JSON array; empty = every agent.

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY CHECK (id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    scopes TEXT NOT NULL CHECK (json_valid(scopes) AND json_type(scopes) = 'array'),
    agent_ids TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(agent_ids) AND json_type(agent_ids) = 'array'),
    created_at TEXT NOT NULL,
    revoked_at TEXT
) STRICT;
