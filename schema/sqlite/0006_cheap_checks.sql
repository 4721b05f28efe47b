-- 0006: the log tables' enum CHECKs as comparisons. SQLite evaluates `x IN ('a', 'b', ...)` in a
-- CHECK by building a small temporary b-tree of the list for every statement it runs, and the
-- writer's multi-row INSERTs are many statements: the two on agent_logs cost about 2.5 us of CPU
-- per inserted row, a quarter of the whole insert (measured: 9.6 -> 7.1 us per row at 1,000 rows
-- per transaction). `x = 'a' OR x = 'b' ...` accepts and rejects exactly the same values (same
-- column, same BINARY collation; NULL is refused by NOT NULL either way) and costs ~0.3 us.
--
-- SQLite cannot alter a CHECK in place, so each table is rebuilt (the documented 12-step way:
-- create, copy, drop, rename, then recreate its indexes and triggers). seq is copied, so every
-- seq, the full-text index (keyed by seq) and the stream position stay as they were. It rewrites
-- the tables once: seconds per million rows, at the next start after the upgrade, and needs
-- free disk for a second copy of them until it commits. The runner applies migrations with
-- foreign keys off and no disk quota (sqlite_conn._for_migrations), as that procedure asks;
-- legacy_alter_table keeps the rename from parsing views a user made on these tables (they
-- keep working: they name the table, which exists again under its name). Indexes and triggers
-- of a user's own on them are not carried over, and the runner says which.

PRAGMA legacy_alter_table = ON;

CREATE TABLE agent_logs_new (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE CHECK (id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
    agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    session_id TEXT,
    task_slug TEXT,
    adw_id TEXT,
    adw_step TEXT,
    entry_index INTEGER,
    event_category TEXT NOT NULL CHECK (event_category = 'hook' OR event_category = 'response' OR event_category = 'adw_step'),
    event_type TEXT NOT NULL,
    level TEXT NOT NULL DEFAULT 'INFO' CHECK (level = 'DEBUG' OR level = 'INFO' OR level = 'WARNING' OR level = 'ERROR' OR level = 'CRITICAL'),
    content TEXT,
    payload TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(payload) AND json_type(payload) = 'object'),
    summary TEXT,
    timestamp TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || '.' || substr(strftime('%f', 'now'), 4) || '000Z') CHECK (timestamp GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

INSERT INTO agent_logs_new (seq, id, agent_id, session_id, task_slug, adw_id, adw_step, entry_index, event_category, event_type, level, content, payload, summary, timestamp)
SELECT seq, id, agent_id, session_id, task_slug, adw_id, adw_step, entry_index, event_category, event_type, level, content, payload, summary, timestamp FROM agent_logs;

DROP TABLE agent_logs;

ALTER TABLE agent_logs_new RENAME TO agent_logs;

CREATE INDEX idx_agent_logs_adw ON agent_logs (adw_id) WHERE adw_id IS NOT NULL;

CREATE INDEX idx_agent_logs_agent ON agent_logs (agent_id);

CREATE INDEX idx_agent_logs_level ON agent_logs (level);

CREATE INDEX idx_agent_logs_session ON agent_logs (session_id) WHERE session_id IS NOT NULL;

CREATE INDEX idx_agent_logs_task_slug ON agent_logs (task_slug) WHERE task_slug IS NOT NULL;

CREATE INDEX idx_agent_logs_timestamp ON agent_logs (timestamp);

CREATE INDEX idx_agent_logs_type ON agent_logs (event_type);

CREATE TRIGGER agent_logs_fts_delete AFTER DELETE ON agent_logs
WHEN old.seq <= (SELECT upto FROM fts_state WHERE id = 1)
BEGIN
    INSERT INTO agent_logs_fts (agent_logs_fts, rowid, content, summary, event_type)
    VALUES ('delete', old.seq, old.content, old.summary, old.event_type);
END;

CREATE TRIGGER agent_logs_fts_update AFTER UPDATE OF content, summary, event_type ON agent_logs
WHEN old.seq <= (SELECT upto FROM fts_state WHERE id = 1)
BEGIN
    INSERT INTO agent_logs_fts (agent_logs_fts, rowid, content, summary, event_type)
    VALUES ('delete', old.seq, old.content, old.summary, old.event_type);
    INSERT INTO agent_logs_fts (rowid, content, summary, event_type)
    VALUES (new.seq, new.content, new.summary, new.event_type);
END;

CREATE TABLE system_logs_new (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE CHECK (id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
    level TEXT NOT NULL CHECK (level = 'DEBUG' OR level = 'INFO' OR level = 'WARNING' OR level = 'ERROR' OR level = 'CRITICAL'),
    message TEXT NOT NULL,
    file_path TEXT,
    adw_id TEXT,
    adw_step TEXT,
    summary TEXT,
    metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    timestamp TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || '.' || substr(strftime('%f', 'now'), 4) || '000Z') CHECK (timestamp GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

INSERT INTO system_logs_new (seq, id, level, message, file_path, adw_id, adw_step, summary, metadata, timestamp)
SELECT seq, id, level, message, file_path, adw_id, adw_step, summary, metadata, timestamp FROM system_logs;

DROP TABLE system_logs;

ALTER TABLE system_logs_new RENAME TO system_logs;

CREATE INDEX idx_system_logs_adw ON system_logs (adw_id) WHERE adw_id IS NOT NULL;

CREATE INDEX idx_system_logs_level ON system_logs (level);

CREATE INDEX idx_system_logs_timestamp ON system_logs (timestamp);

CREATE TRIGGER system_logs_fts_delete AFTER DELETE ON system_logs
WHEN old.seq <= (SELECT upto FROM fts_state WHERE id = 1)
BEGIN
    INSERT INTO system_logs_fts (system_logs_fts, rowid, message, summary)
    VALUES ('delete', old.seq, old.message, old.summary);
END;

CREATE TRIGGER system_logs_fts_update AFTER UPDATE OF message, summary ON system_logs
WHEN old.seq <= (SELECT upto FROM fts_state WHERE id = 1)
BEGIN
    INSERT INTO system_logs_fts (system_logs_fts, rowid, message, summary)
    VALUES ('delete', old.seq, old.message, old.summary);
    INSERT INTO system_logs_fts (rowid, message, summary) VALUES (new.seq, new.message, new.summary);
END;

PRAGMA legacy_alter_table = OFF;
