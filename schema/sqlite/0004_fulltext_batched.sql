-- 0004: index full text in batches instead of one trigger per inserted row. The per-row
-- trigger doubled the cost of every insert; now the writer indexes everything above
-- fts_state.upto in large chunks (every second, and before any full-text query), so ingest stays
-- fast and a search still sees every committed event. Deletes and updates of rows that are
-- already indexed keep their triggers (retention), guarded so never-indexed rows are skipped.

CREATE TABLE fts_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    upto INTEGER NOT NULL DEFAULT 0 CHECK (upto >= 0)
) STRICT;

INSERT INTO fts_state (id, upto) VALUES (1, (SELECT last_seq FROM stream_meta WHERE id = 1));

DROP TRIGGER agent_logs_fts_insert;
DROP TRIGGER system_logs_fts_insert;
DROP TRIGGER agent_logs_fts_delete;
DROP TRIGGER system_logs_fts_delete;
DROP TRIGGER agent_logs_fts_update;
DROP TRIGGER system_logs_fts_update;

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
