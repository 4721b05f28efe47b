-- 0001: the orchestrator_3_stream tables on PostgreSQL (same tables and columns as SQLite's
-- 0001-0002, native types: UUID, TIMESTAMPTZ, JSONB, exact NUMERIC money) plus full-text search.
-- seq is one global sequence for agent_logs and system_logs, assigned by the writer inside its
-- transaction under a transaction-level advisory lock, so commit order is seq order across
-- replicas (a tailer never sees N+1 before N).

CREATE TABLE stream_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    epoch UUID NOT NULL DEFAULT gen_random_uuid(),
    last_seq BIGINT NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    floor_seq BIGINT NOT NULL DEFAULT 0 CHECK (floor_seq >= 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO stream_meta (id) VALUES (1);

CREATE TABLE orchestrator_agents (
    id UUID PRIMARY KEY,
    session_id TEXT UNIQUE,
    system_prompt TEXT,
    status TEXT CHECK (status IN ('idle', 'executing', 'waiting', 'blocked', 'complete')),
    working_dir TEXT,
    input_tokens BIGINT NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens BIGINT NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    total_cost NUMERIC NOT NULL DEFAULT 0 CHECK (total_cost >= 0),
    archived BOOLEAN NOT NULL DEFAULT false,
    metadata JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE agents (
    id UUID PRIMARY KEY,
    orchestrator_agent_id UUID NOT NULL REFERENCES orchestrator_agents (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    system_prompt TEXT,
    working_dir TEXT,
    git_worktree TEXT,
    status TEXT CHECK (status IN ('idle', 'executing', 'waiting', 'blocked', 'complete')),
    session_id TEXT,
    adw_id TEXT,
    adw_step TEXT,
    input_tokens BIGINT NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens BIGINT NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    total_cost NUMERIC NOT NULL DEFAULT 0 CHECK (total_cost >= 0),
    archived BOOLEAN NOT NULL DEFAULT false,
    metadata JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT unique_agent_name_per_orchestrator UNIQUE (orchestrator_agent_id, name)
);

CREATE TABLE prompts (
    id UUID PRIMARY KEY,
    agent_id UUID REFERENCES agents (id) ON DELETE CASCADE,
    task_slug TEXT,
    author TEXT NOT NULL CHECK (author IN ('engineer', 'orchestrator_agent')),
    prompt_text TEXT NOT NULL,
    summary TEXT,
    timestamp TIMESTAMPTZ NOT NULL DEFAULT now(),
    session_id TEXT
);

CREATE TABLE agent_logs (
    seq BIGINT PRIMARY KEY,
    id UUID NOT NULL UNIQUE,
    agent_id UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    session_id TEXT,
    task_slug TEXT,
    adw_id TEXT,
    adw_step TEXT,
    entry_index INTEGER,
    event_category TEXT NOT NULL CHECK (event_category IN ('hook', 'response', 'adw_step')),
    event_type TEXT NOT NULL,
    level TEXT NOT NULL DEFAULT 'INFO' CHECK (level IN ('DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')),
    content TEXT,
    payload JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object'),
    summary TEXT,
    timestamp TIMESTAMPTZ NOT NULL DEFAULT now(),
    fts TSVECTOR GENERATED ALWAYS AS (
        to_tsvector('simple', coalesce(content, '') || ' ' || coalesce(summary, '') || ' ' || event_type)
    ) STORED
);

CREATE TABLE system_logs (
    seq BIGINT PRIMARY KEY,
    id UUID NOT NULL UNIQUE,
    level TEXT NOT NULL CHECK (level IN ('DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')),
    message TEXT NOT NULL,
    file_path TEXT,
    adw_id TEXT,
    adw_step TEXT,
    summary TEXT,
    metadata JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    timestamp TIMESTAMPTZ NOT NULL DEFAULT now(),
    fts TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', message || ' ' || coalesce(summary, ''))) STORED
);

CREATE TABLE api_tokens (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    scopes JSONB NOT NULL CHECK (jsonb_typeof(scopes) = 'array'),
    agent_ids JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(agent_ids) = 'array'),
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);

CREATE FUNCTION orchlog_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at = OLD.updated_at THEN
        NEW.updated_at = now();
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER orchestrator_agents_touch BEFORE UPDATE ON orchestrator_agents
    FOR EACH ROW EXECUTE FUNCTION orchlog_touch();
CREATE TRIGGER agents_touch BEFORE UPDATE ON agents FOR EACH ROW EXECUTE FUNCTION orchlog_touch();

CREATE INDEX idx_orchestrator_agents_status ON orchestrator_agents (status);
CREATE INDEX idx_agents_orchestrator ON agents (orchestrator_agent_id);
CREATE INDEX idx_agents_status ON agents (status);
CREATE INDEX idx_agents_name ON agents (name);
CREATE INDEX idx_prompts_agent ON prompts (agent_id);
CREATE INDEX idx_prompts_task_slug ON prompts (task_slug) WHERE task_slug IS NOT NULL;
CREATE INDEX idx_agent_logs_agent ON agent_logs (agent_id, seq);
CREATE INDEX idx_agent_logs_category_type ON agent_logs (event_category, event_type, seq);
CREATE INDEX idx_agent_logs_type ON agent_logs (event_type, seq);
CREATE INDEX idx_agent_logs_level ON agent_logs (level, seq);
CREATE INDEX idx_agent_logs_task_slug ON agent_logs (task_slug, seq) WHERE task_slug IS NOT NULL;
CREATE INDEX idx_agent_logs_session ON agent_logs (session_id, seq) WHERE session_id IS NOT NULL;
CREATE INDEX idx_agent_logs_adw ON agent_logs (adw_id, seq) WHERE adw_id IS NOT NULL;
CREATE INDEX idx_agent_logs_timestamp ON agent_logs (timestamp);
CREATE INDEX idx_agent_logs_fts ON agent_logs USING GIN (fts);
CREATE INDEX idx_system_logs_level ON system_logs (level, seq);
CREATE INDEX idx_system_logs_adw ON system_logs (adw_id, seq) WHERE adw_id IS NOT NULL;
CREATE INDEX idx_system_logs_timestamp ON system_logs (timestamp);
CREATE INDEX idx_system_logs_fts ON system_logs USING GIN (fts);
