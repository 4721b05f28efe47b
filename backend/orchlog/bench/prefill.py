"""Fill a fresh database with N events fast (raw executemany, UUIDv7 ids), for the benchmarks."""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from ..ids import new_id
from ..models import AgentLogIn
from ..store.rules import AGENT_COLS, agent_row
from ..store.sqlite import connect, insert_sql, migrate


def prefill(db: Path, n: int, batch: int = 10_000) -> str:
    """Returns the agent id; stream_meta.last_seq is set to n."""
    conn = connect(str(db), Settings())
    migrate(conn)
    orch, agent = new_id(), new_id()
    conn.execute("INSERT INTO orchestrator_agents (id) VALUES (?)", (orch,))
    conn.execute(
        "INSERT INTO agents (id, orchestrator_agent_id, name, model) VALUES (?, ?, 'bench', 'm')",
        (agent, orch),
    )
    item = AgentLogIn(
        agent_id=agent,
        event_category="hook",
        event_type="PreToolUse",
        content="x" * 120,
        payload={"tool": "Bash", "args": ["ls", "-la"], "n": 1},
    )
    sql = insert_sql("agent_logs", AGENT_COLS)
    for start in range(0, n, batch):
        rows = []
        for seq in range(start + 1, min(n, start + batch) + 1):
            item.id = new_id()
            rows.append(agent_row(item, seq))
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
    conn.execute("UPDATE stream_meta SET last_seq = ? WHERE id = 1", (n,))
    # the full-text index caught up, as a server that ingested these rows would have it
    conn.execute(
        "INSERT INTO agent_logs_fts (rowid, content, summary, event_type) "
        "SELECT seq, content, summary, event_type FROM agent_logs"
    )
    conn.execute("UPDATE fts_state SET upto = ? WHERE id = 1", (n,))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return agent
