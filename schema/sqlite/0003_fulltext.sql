-- 0003: full-text search (FTS5) over agent log content/summary/event_type and system log
-- message/summary. External-content tables (the text is not stored twice), kept in step by
-- triggers, so every writer (orchlog or raw SQL) keeps the index right.

CREATE VIRTUAL TABLE agent_logs_fts USING fts5(
    content, summary, event_type, content='agent_logs', content_rowid='seq', tokenize='unicode61'
);

CREATE VIRTUAL TABLE system_logs_fts USING fts5(
    message, summary, content='system_logs', content_rowid='seq', tokenize='unicode61'
);

CREATE TRIGGER agent_logs_fts_insert AFTER INSERT ON agent_logs BEGIN
    INSERT INTO agent_logs_fts (rowid, content, summary, event_type)
    VALUES (new.seq, new.content, new.summary, new.event_type);
END;

CREATE TRIGGER agent_logs_fts_delete AFTER DELETE ON agent_logs BEGIN
    INSERT INTO agent_logs_fts (agent_logs_fts, rowid, content, summary, event_type)
    VALUES ('delete', old.seq, old.content, old.summary, old.event_type);
END;

CREATE TRIGGER agent_logs_fts_update AFTER UPDATE OF content, summary, event_type ON agent_logs BEGIN
    INSERT INTO agent_logs_fts (agent_logs_fts, rowid, content, summary, event_type)
    VALUES ('delete', old.seq, old.content, old.summary, old.event_type);
    INSERT INTO agent_logs_fts (rowid, content, summary, event_type)
    VALUES (new.seq, new.content, new.summary, new.event_type);
END;

CREATE TRIGGER system_logs_fts_insert AFTER INSERT ON system_logs BEGIN
    INSERT INTO system_logs_fts (rowid, message, summary) VALUES (new.seq, new.message, new.summary);
END;

CREATE TRIGGER system_logs_fts_delete AFTER DELETE ON system_logs BEGIN
    INSERT INTO system_logs_fts (system_logs_fts, rowid, message, summary)
    VALUES ('delete', old.seq, old.message, old.summary);
END;

CREATE TRIGGER system_logs_fts_update AFTER UPDATE OF message, summary ON system_logs BEGIN
    INSERT INTO system_logs_fts (system_logs_fts, rowid, message, summary)
    VALUES ('delete', old.seq, old.message, old.summary);
    INSERT INTO system_logs_fts (rowid, message, summary) VALUES (new.seq, new.message, new.summary);
END;

INSERT INTO agent_logs_fts (agent_logs_fts) VALUES ('rebuild');
INSERT INTO system_logs_fts (system_logs_fts) VALUES ('rebuild');
