-- 0002: the same index set as SQLite's 0005 (see there): idx_agent_logs_category_type served no
-- query that idx_agent_logs_type does not.

DROP INDEX IF EXISTS idx_agent_logs_category_type;
