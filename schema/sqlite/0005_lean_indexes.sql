-- 0005: indexes only where a history or stream query needs one (measured: each secondary index
-- costs ~0.6-0.9 µs of CPU per inserted row here). idx_agent_logs_category_type served no query
-- that idx_agent_logs_type does not: `event_type=` uses idx_agent_logs_type, and
-- `event_category=` alone matches one of three values, so the seq-ordered scan finds a page at
-- once. Which query uses each remaining index is pinned by EXPLAIN QUERY PLAN in
-- tests/test_schema.py.

DROP INDEX IF EXISTS idx_agent_logs_category_type;
