-- 0001: the orchestrator_3_stream tables on SQLite, plus the global event sequence.
--
-- Conventions (docs/architecture.md): UUIDs are canonical lower-case TEXT; every time is TEXT
-- 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (UTC, so text order is time order); JSON is TEXT checked by
-- json_valid; booleans are INTEGER 0/1; money is an exact decimal string (no float rounding).
-- agent_logs and system_logs share one global `seq` (INTEGER PRIMARY KEY = rowid), assigned by
-- the writer inside its transaction from stream_meta.last_seq, so it never goes backwards and is
-- never reused, even after retention deletes every row.

CREATE TABLE stream_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    epoch TEXT NOT NULL CHECK (epoch GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
    last_seq INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    floor_seq INTEGER NOT NULL DEFAULT 0 CHECK (floor_seq >= 0),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || '.' || substr(strftime('%f', 'now'), 4) || '000Z')
) STRICT;

INSERT INTO stream_meta (id, epoch, last_seq) VALUES (
    1,
    lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-'
          || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-'
          || hex(randomblob(6))),
    0
);

CREATE TABLE orchestrator_agents (
    id TEXT PRIMARY KEY CHECK (id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
    session_id TEXT UNIQUE,
    system_prompt TEXT,
    status TEXT CHECK (status IN ('idle', 'executing', 'waiting', 'blocked', 'complete')),
    working_dir TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens INTEGER NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    total_cost TEXT NOT NULL DEFAULT '0' CHECK (total_cost GLOB '[0-9]*' AND total_cost NOT GLOB '*[^0-9.]*' AND total_cost NOT GLOB '*.*.*'),
    archived INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || '.' || substr(strftime('%f', 'now'), 4) || '000Z') CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || '.' || substr(strftime('%f', 'now'), 4) || '000Z') CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

CREATE TABLE agents (
    id TEXT PRIMARY KEY CHECK (id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
    orchestrator_agent_id TEXT NOT NULL REFERENCES orchestrator_agents (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    system_prompt TEXT,
    working_dir TEXT,
    git_worktree TEXT,
    status TEXT CHECK (status IN ('idle', 'executing', 'waiting', 'blocked', 'complete')),
    session_id TEXT,
    adw_id TEXT,
    adw_step TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens INTEGER NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    total_cost TEXT NOT NULL DEFAULT '0' CHECK (total_cost GLOB '[0-9]*' AND total_cost NOT GLOB '*[^0-9.]*' AND total_cost NOT GLOB '*.*.*'),
    archived INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || '.' || substr(strftime('%f', 'now'), 4) || '000Z') CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || '.' || substr(strftime('%f', 'now'), 4) || '000Z') CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    CONSTRAINT unique_agent_name_per_orchestrator UNIQUE (orchestrator_agent_id, name)
) STRICT;

CREATE TABLE prompts (
    id TEXT PRIMARY KEY CHECK (id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
    agent_id TEXT REFERENCES agents (id) ON DELETE CASCADE,
    task_slug TEXT,
    author TEXT NOT NULL CHECK (author IN ('engineer', 'orchestrator_agent')),
    prompt_text TEXT NOT NULL,
    summary TEXT,
    timestamp TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || '.' || substr(strftime('%f', 'now'), 4) || '000Z') CHECK (timestamp GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    session_id TEXT
) STRICT;

CREATE TABLE agent_logs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE CHECK (id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
    agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    session_id TEXT,
    task_slug TEXT,
    adw_id TEXT,
    adw_step TEXT,
    entry_index INTEGER,
    event_category TEXT NOT NULL CHECK (event_category IN ('hook', 'response', 'adw_step')),
    event_type TEXT NOT NULL,
    level TEXT NOT NULL DEFAULT 'INFO' CHECK (level IN ('DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')),
    content TEXT,
    payload TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(payload) AND json_type(payload) = 'object'),
    summary TEXT,
    timestamp TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || '.' || substr(strftime('%f', 'now'), 4) || '000Z') CHECK (timestamp GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

CREATE TABLE system_logs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE CHECK (id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
    level TEXT NOT NULL CHECK (level IN ('DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')),
    message TEXT NOT NULL,
    file_path TEXT,
    adw_id TEXT,
    adw_step TEXT,
    summary TEXT,
    metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    timestamp TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || '.' || substr(strftime('%f', 'now'), 4) || '000Z') CHECK (timestamp GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

-- updated_at is maintained for writers that do not set it themselves (the orchlog writer does).
CREATE TRIGGER orchestrator_agents_touch AFTER UPDATE ON orchestrator_agents
WHEN NEW.updated_at = OLD.updated_at
BEGIN
    UPDATE orchestrator_agents SET updated_at = (strftime('%Y-%m-%dT%H:%M:%S', 'now') || '.' || substr(strftime('%f', 'now'), 4) || '000Z') WHERE id = NEW.id;
END;

CREATE TRIGGER agents_touch AFTER UPDATE ON agents
WHEN NEW.updated_at = OLD.updated_at
BEGIN
    UPDATE agents SET updated_at = (strftime('%Y-%m-%dT%H:%M:%S', 'now') || '.' || substr(strftime('%f', 'now'), 4) || '000Z') WHERE id = NEW.id;
END;

-- Indexes: one per filter of the history and stream APIs. `seq` is the rowid, so an index on (col)
-- is already ordered by (col, seq): keyset pages per filter are index range scans.
CREATE INDEX idx_orchestrator_agents_status ON orchestrator_agents (status);
CREATE INDEX idx_agents_orchestrator ON agents (orchestrator_agent_id);
CREATE INDEX idx_agents_status ON agents (status);
CREATE INDEX idx_agents_name ON agents (name);
CREATE INDEX idx_prompts_agent ON prompts (agent_id);
CREATE INDEX idx_prompts_task_slug ON prompts (task_slug) WHERE task_slug IS NOT NULL;
CREATE INDEX idx_agent_logs_agent ON agent_logs (agent_id);
CREATE INDEX idx_agent_logs_category_type ON agent_logs (event_category, event_type);
CREATE INDEX idx_agent_logs_type ON agent_logs (event_type);
CREATE INDEX idx_agent_logs_level ON agent_logs (level);
CREATE INDEX idx_agent_logs_task_slug ON agent_logs (task_slug) WHERE task_slug IS NOT NULL;
CREATE INDEX idx_agent_logs_session ON agent_logs (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX idx_agent_logs_adw ON agent_logs (adw_id) WHERE adw_id IS NOT NULL;
CREATE INDEX idx_agent_logs_timestamp ON agent_logs (timestamp);
CREATE INDEX idx_system_logs_level ON system_logs (level);
CREATE INDEX idx_system_logs_adw ON system_logs (adw_id) WHERE adw_id IS NOT NULL;
CREATE INDEX idx_system_logs_timestamp ON system_logs (timestamp);
