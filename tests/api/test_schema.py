"""Schema and migrations (issue 2, scope 2): what `orchlog migrate` leaves on disk, what every
connection of the store has in force, and the CHECK constraints that guard raw writers too."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest

from helpers import free_port
from orchlog.config import Settings
from orchlog.filters import EventFilter
from orchlog.model_fields import Category, Level
from orchlog.store.sqlite import SqliteStore, filter_sql, page_sql

TABLES = ("orchestrator_agents", "agents", "prompts", "agent_logs", "system_logs")
TS = "2024-01-01T00:00:00.000000Z"


def orchlog(*args: str, cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchlog", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database made by `orchlog migrate` (in a subprocess, as users run it)."""
    directory = tmp_path_factory.mktemp("schema")
    db = directory / "t.db"
    result = orchlog("migrate", "--db", str(db), cwd=directory)
    assert result.returncode == 0, result.stderr
    assert "applied 0001" in result.stdout, result.stdout
    return db


@pytest.fixture
def db(template: Path, tmp_path: Path) -> Path:
    """A private copy of the migrated template."""
    target = tmp_path / "copy.db"
    for suffix in ("", "-wal", "-shm"):
        source = Path(str(template) + suffix)
        if source.exists():
            shutil.copy(source, str(target) + suffix)
    return target


@pytest.fixture
def conn(db: Path) -> Iterator[sqlite3.Connection]:
    c = connect(db)
    try:
        yield c
    finally:
        c.close()


# ---------------------------------------------------------------- shape


def test_tables_exist_and_are_strict(conn: sqlite3.Connection) -> None:
    """The five tables (and the bookkeeping ones) exist and are STRICT (PRAGMA table_list)."""
    rows = {r[1]: r for r in conn.execute("PRAGMA table_list") if r[0] == "main"}
    for name in (*TABLES, "schema_migrations", "stream_meta"):
        assert name in rows, f"missing table {name}"
        assert rows[name][2] == "table"
        assert rows[name][5] == 1, f"{name} is not STRICT"


def test_journal_mode_is_wal_on_disk(db: Path) -> None:
    """The file is in WAL mode (a new plain connection reports wal without setting it)."""
    c = sqlite3.connect(db)
    try:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        c.close()


@pytest.mark.parametrize(
    ("table", "column", "parent"),
    [
        ("agents", "orchestrator_agent_id", "orchestrator_agents"),
        ("prompts", "agent_id", "agents"),
        ("agent_logs", "agent_id", "agents"),
    ],
)
def test_foreign_keys_cascade_on_delete(conn: sqlite3.Connection, table: str, column: str, parent: str) -> None:
    """Each foreign key of the original schema is declared with ON DELETE CASCADE."""
    fks = [(r[2], r[3], r[4], r[6]) for r in conn.execute(f"PRAGMA foreign_key_list({table})")]
    assert (parent, column, "id", "CASCADE") in fks, fks


def test_cascade_really_deletes_children(conn: sqlite3.Connection) -> None:
    """Deleting an orchestrator removes its agents, their prompts and their logs."""
    orch, agent = str(uuid.uuid4()), str(uuid.uuid4())
    conn.execute("INSERT INTO orchestrator_agents (id) VALUES (?)", (orch,))
    conn.execute("INSERT INTO agents (id, orchestrator_agent_id, name, model) VALUES (?, ?, 'a', 'm')", (agent, orch))
    conn.execute(
        "INSERT INTO prompts (id, agent_id, author, prompt_text) VALUES (?, ?, 'engineer', 'p')",
        (str(uuid.uuid4()), agent),
    )
    conn.execute(
        "INSERT INTO agent_logs (seq, id, agent_id, event_category, event_type) VALUES (1, ?, ?, 'hook', 'x')",
        (str(uuid.uuid4()), agent),
    )
    conn.execute("DELETE FROM orchestrator_agents WHERE id = ?", (orch,))
    for table in ("agents", "prompts", "agent_logs"):
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table


@pytest.mark.parametrize("table", ["agent_logs", "system_logs"])
def test_log_tables_have_seq_rowid_and_unique_id(conn: sqlite3.Connection, table: str) -> None:
    """`seq INTEGER PRIMARY KEY` (the rowid itself) and a UNIQUE index on exactly (id)."""
    info = {r[1]: r for r in conn.execute(f"PRAGMA table_info({table})")}
    assert info["seq"][2] == "INTEGER" and info["seq"][5] == 1
    assert [name for name, r in info.items() if r[5]] == ["seq"], "seq must be the only primary-key column"
    assert info["id"][3] == 1, "id must be NOT NULL"
    unique = []
    for _seq, name, is_unique, origin, _partial in conn.execute(f"PRAGMA index_list({table})"):
        cols = [r[2] for r in conn.execute(f"PRAGMA index_info({name})")]
        if is_unique:
            unique.append((cols, origin))
    assert (["id"], "u") in unique, unique
    assert not any(cols == ["seq"] for cols, _ in unique), "seq is not a rowid alias (it has its own index)"


# Each index of the log tables and the query that needs it (issue 20: an index costs every insert,
# so one is kept only where a history or stream query uses it). A new index needs a line here.
_PAGE = (100, 0, None)  # head, after, before: a forward history page
INDEX_QUERIES: dict[str, tuple[str, str, EventFilter | str]] = {
    "idx_agent_logs_agent": ("GET /api/v1/events?agent_id=A", "agent_log", EventFilter(agent_ids=("a",))),
    "idx_agent_logs_type": ("GET /api/v1/events?event_type=Stop", "agent_log", EventFilter(event_types=("Stop",))),
    "idx_agent_logs_level": ("GET /api/v1/events?min_level=error", "agent_log", EventFilter(min_level="ERROR")),
    "idx_agent_logs_task_slug": ("GET /api/v1/events?task_slug=T", "agent_log", EventFilter(task_slug="t")),
    "idx_agent_logs_session": ("GET /api/v1/events?session_id=S", "agent_log", EventFilter(session_id="s")),
    "idx_agent_logs_adw": ("GET /api/v1/events?adw_id=W", "agent_log", EventFilter(adw_id="w")),
    "idx_system_logs_level": ("GET /api/v1/events?level=error", "system_log", EventFilter(levels=("ERROR",))),
    "idx_system_logs_adw": ("GET /api/v1/events?adw_id=W", "system_log", EventFilter(adw_id="w")),
    "idx_agent_logs_timestamp": ("retention by age", "agent_logs", "seqs_older_than"),
    "idx_system_logs_timestamp": ("retention by age", "system_logs", "seqs_older_than"),
}


def _plan(conn: sqlite3.Connection, sql: str, params: list[Any]) -> str:
    return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))


@pytest.mark.parametrize("index", sorted(INDEX_QUERIES))
def test_each_log_index_serves_a_named_query(conn: sqlite3.Connection, index: str) -> None:
    """EXPLAIN QUERY PLAN of the store's own statement for the query names the index."""
    what, kind, flt = INDEX_QUERIES[index]
    if isinstance(flt, EventFilter):
        sql, params = page_sql(kind, filter_sql(kind, flt), _PAGE, False, 101)
    else:  # the retention statement (store/sqlite.py _Txn.seqs_older_than)
        sql, params = f"SELECT seq FROM {kind} WHERE timestamp < ? AND seq > ? LIMIT ?", ["2000", 0, 10]
    assert f"INDEX {index} " in _plan(conn, sql, params) + " ", (what, _plan(conn, sql, params))


def test_log_tables_carry_only_indexes_a_query_needs(conn: sqlite3.Connection) -> None:
    """Beyond the unique id index, every index of agent_logs/system_logs is in INDEX_QUERIES."""
    found = {
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('agent_logs', 'system_logs') "
            "AND name NOT LIKE 'sqlite_autoindex_%'"
        )
    }
    assert found == set(INDEX_QUERIES)


def test_event_category_filter_pages_by_seq_without_an_index(conn: sqlite3.Connection) -> None:
    """event_category has three values: its page is a seq-ordered scan (no sort, no index)."""
    sql, params = page_sql(
        "agent_log", filter_sql("agent_log", EventFilter(event_categories=("hook",))), _PAGE, False, 101
    )
    plan = _plan(conn, sql, params)
    assert "INTEGER PRIMARY KEY" in plan and "TEMP B-TREE" not in plan, plan


# ---------------------------------------------------------------- migrations


def test_migrate_twice_is_a_no_op(db: Path) -> None:
    """A second `orchlog migrate` exits 0, says the schema is up to date, and changes nothing:
    schema_migrations rows, the schema text and the database epoch stay as they were."""

    def snapshot() -> tuple[Any, ...]:
        c = sqlite3.connect(db)
        try:
            return (
                c.execute("SELECT * FROM schema_migrations ORDER BY version").fetchall(),
                c.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall(),
                c.execute("SELECT epoch FROM stream_meta").fetchall(),
            )
        finally:
            c.close()

    before = snapshot()
    assert before[0] and before[0][0][0] == 1
    result = orchlog("migrate", "--db", str(db), cwd=db.parent)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout, result.stdout
    assert snapshot() == before


def test_migrate_accepts_sqlite_url(tmp_path: Path) -> None:
    """--db also takes sqlite:///path and ORCHLOG_DB is read when --db is absent."""
    target = tmp_path / "via-url.db"
    result = orchlog("migrate", "--db", f"sqlite:///{target}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert target.exists()
    env_target = tmp_path / "via-env.db"
    result = subprocess.run(
        [sys.executable, "-m", "orchlog", "migrate"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        env={**_clean_env(), "ORCHLOG_DB": str(env_target)},
    )
    assert result.returncode == 0, result.stderr
    assert env_target.exists()


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("ORCHLOG_")}


def _make_newer(db: Path) -> None:
    c = sqlite3.connect(db, isolation_level=None)
    try:
        c.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'from_the_future', ?)",
            (TS,),
        )
    finally:
        c.close()


def test_newer_database_is_refused_by_migrate(db: Path) -> None:
    """`orchlog migrate` on a database whose schema is newer than the code: exit != 0, a clear
    message (mentions 'newer' and the version), no traceback, and nothing is changed."""
    _make_newer(db)
    c = sqlite3.connect(db)
    try:
        before = [r[0] for r in c.execute("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        c.close()
    assert before[-1] == 9999
    result = orchlog("migrate", "--db", str(db), cwd=db.parent)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "newer" in output and "9999" in output, output
    assert "Traceback" not in output, output
    c = sqlite3.connect(db)
    try:
        assert [r[0] for r in c.execute("SELECT version FROM schema_migrations ORDER BY version")] == before
    finally:
        c.close()


def test_newer_database_is_refused_by_serve(db: Path) -> None:
    """`orchlog serve` on a newer database exits != 0 with the same clear message and no traceback."""
    _make_newer(db)
    result = subprocess.run(
        [sys.executable, "-m", "orchlog", "serve", "--db", str(db), "--port", str(free_port())],
        cwd=db.parent,
        capture_output=True,
        text=True,
        timeout=30,
        env=_clean_env(),
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "newer" in output and "9999" in output, output
    assert "Traceback" not in output, output


# ---------------------------------------------------------------- pragmas on every connection


def store_connections(obj: Any, seen: set[int] | None = None) -> list[sqlite3.Connection]:
    """Every sqlite3 connection the store holds (writer, reader pool, tail), found by walking its
    objects, so the check keeps covering every connection however the store arranges them."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, sqlite3.Connection):
        return [obj]
    if isinstance(obj, dict):
        children: list[Any] = list(obj.values())
    elif isinstance(obj, list | tuple | set | frozenset):
        children = list(obj)
    elif type(obj).__module__.startswith(("orchlog", "aiosqlite")) and hasattr(obj, "__dict__"):
        children = list(vars(obj).values())
    else:
        return []
    return [conn for child in children for conn in store_connections(child, seen)]


@pytest.mark.parametrize(("synchronous", "expected"), [("NORMAL", 1), ("FULL", 2)])
async def test_pragmas_in_force_on_every_store_connection(tmp_path: Path, synchronous: str, expected: int) -> None:
    """The store's write connection and every reader connection (pool and tail) run with
    foreign_keys=1, journal_mode=wal, the configured busy_timeout, synchronous NORMAL=1 / FULL=2."""
    path = str(tmp_path / "p.db")
    settings = Settings(db=path, synchronous=synchronous, busy_timeout_ms=4321, read_connections=3)  # type: ignore[arg-type]
    store = SqliteStore(path, settings)
    await store.open()
    try:
        want = {"foreign_keys": 1, "journal_mode": "wal", "busy_timeout": 4321, "synchronous": expected}
        conns = store_connections(store)
        # the writer, 3 pooled readers and the hub's tail reader
        assert len(conns) >= settings.read_connections + 2, conns
        # the store is idle: querying its connections from this thread does not race its threads
        for conn in conns:
            got = {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in want}
            assert got == want
        assert await store.head_seq() == 0, "the store still works after the check"
    finally:
        await store.close()


# ---------------------------------------------------------------- CHECK constraints for raw writers

BASE: dict[str, dict[str, Any]] = {
    "orchestrator_agents": {"id": "00000000-0000-4000-8000-0000000000aa"},
    "agents": {
        "id": "00000000-0000-4000-8000-0000000000bb",
        "orchestrator_agent_id": "00000000-0000-4000-8000-000000000001",
        "name": "n",
        "model": "m",
    },
    "prompts": {"id": "00000000-0000-4000-8000-0000000000cc", "author": "engineer", "prompt_text": "p"},
    "agent_logs": {
        "seq": 10,
        "id": "00000000-0000-4000-8000-0000000000dd",
        "agent_id": "00000000-0000-4000-8000-000000000002",
        "event_category": "hook",
        "event_type": "PreToolUse",
        "level": "INFO",
        "payload": "{}",
        "timestamp": TS,
    },
    "system_logs": {
        "seq": 11,
        "id": "00000000-0000-4000-8000-0000000000ee",
        "level": "INFO",
        "message": "m",
        "metadata": "{}",
        "timestamp": TS,
    },
}

BAD_ROWS = [
    ("system_logs", {"level": "LOUD"}),
    ("system_logs", {"level": "info"}),
    ("system_logs", {"metadata": "not json"}),
    ("system_logs", {"timestamp": "2024-01-01T00:00:00Z"}),
    ("agent_logs", {"level": "TRACE"}),
    ("agent_logs", {"event_category": "chatter"}),
    ("agent_logs", {"payload": "{broken"}),
    ("agent_logs", {"payload": "[1, 2]"}),
    ("agent_logs", {"id": "00000000-0000-4000-8000-0000000000DD"}),
    ("agent_logs", {"id": "not-a-uuid"}),
    ("agent_logs", {"timestamp": "2024-01-01 00:00:00"}),
    ("agent_logs", {"timestamp": "2024-01-01T00:00:00.000000+00:00"}),
    ("agent_logs", {"agent_id": "00000000-0000-4000-8000-00000000ffff"}),
    ("agent_logs", {"seq": "ten"}),
    ("agents", {"status": "running"}),
    ("agents", {"input_tokens": -1}),
    ("agents", {"archived": 2}),
    ("agents", {"total_cost": "-1"}),
    ("agents", {"total_cost": "1e5"}),
    ("agents", {"metadata": "[]"}),
    ("agents", {"orchestrator_agent_id": "00000000-0000-4000-8000-00000000ffff"}),
    ("agents", {"name": "taken"}),
    ("orchestrator_agents", {"id": "00000000-0000-4000-8000-0000000000AA"}),
    ("orchestrator_agents", {"created_at": "2024-01-01"}),
    ("orchestrator_agents", {"status": "sleeping"}),
    ("prompts", {"author": "robot"}),
]


@pytest.fixture
def parents(conn: sqlite3.Connection) -> sqlite3.Connection:
    """An orchestrator, an agent named 'taken', and a valid row of each table (the controls)."""
    conn.execute("INSERT INTO orchestrator_agents (id) VALUES ('00000000-0000-4000-8000-000000000001')")
    conn.execute(
        "INSERT INTO agents (id, orchestrator_agent_id, name, model) VALUES "
        "('00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000001', 'taken', 'm')"
    )
    for table, row in BASE.items():
        _insert(conn, table, row)
        conn.execute(f"DELETE FROM {table} WHERE id = ?", (row["id"],))
    return conn


def _insert(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    cols = list(row)
    conn.execute(
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
        [row[c] for c in cols],
    )


@pytest.mark.parametrize(
    ("table", "change"), BAD_ROWS, ids=[f"{t}-{next(iter(c))}={next(iter(c.values()))}" for t, c in BAD_ROWS]
)
def test_constraints_reject_bad_rows(parents: sqlite3.Connection, table: str, change: dict[str, Any]) -> None:
    """A raw INSERT that breaks a CHECK, type, FK or UNIQUE rule of the schema is refused."""
    with pytest.raises(sqlite3.IntegrityError):
        _insert(parents, table, {**BASE[table], **change})


# ---------------------------------------------------------------- 0006: enum CHECKs as comparisons

ENUMS = [
    ("agent_logs", "event_category", get_args(Category)),
    ("agent_logs", "level", get_args(get_args(Level)[0])),
    ("system_logs", "level", get_args(get_args(Level)[0])),
]


@pytest.mark.parametrize(("table", "column", "values"), ENUMS, ids=[f"{t}.{c}" for t, c, _ in ENUMS])
def test_enum_checks_accept_exactly_the_models_values(
    parents: sqlite3.Connection, table: str, column: str, values: tuple[str, ...]
) -> None:
    """The comparisons that replaced `IN (...)` (0006) take every value the API takes, and no
    near miss: another case, padding, the empty string, a prefix."""
    for n, value in enumerate(values):
        _insert(parents, table, {**BASE[table], "seq": 100 + n, "id": str(uuid.UUID(int=n + 1)), column: value})
    for near in {v.swapcase() for v in values} | {f" {values[0]}", f"{values[0]} ", "", values[0][:-1]}:
        with pytest.raises(sqlite3.IntegrityError):
            _insert(parents, table, {**BASE[table], "seq": 200, "id": str(uuid.UUID(int=999)), column: near})


def _schema_of(conn: sqlite3.Connection, table: str) -> set[tuple[str, str]]:
    """(type, name) of the table's indexes and triggers; the autoindex name included."""
    return set(conn.execute("SELECT type, name FROM sqlite_master WHERE tbl_name = ? AND type != 'table'", (table,)))


def _database_at_0005(db: Path) -> sqlite3.Connection:
    """A database as orchlog left it at migration 0005, with an agent and 44 log rows (seqs
    1..44, both tables), full-text indexed up to seq 40; foreign keys on, as orchlog connects."""
    from orchlog.store.migrate import available
    from orchlog.store.sqlite_conn import _statements

    conn = connect(db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        " STRICT"
    )
    for migration in available("sqlite"):
        if migration.version > 5:
            break
        conn.execute("BEGIN")
        for statement in _statements(migration.path.read_text()):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (migration.version, migration.name, TS))
        conn.execute("COMMIT")
    conn.execute("INSERT INTO orchestrator_agents (id) VALUES ('00000000-0000-4000-8000-000000000001')")
    conn.execute(
        "INSERT INTO agents (id, orchestrator_agent_id, name, model) VALUES "
        "('00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000001', 'a', 'm')"
    )
    for n in range(1, 45):  # 41..44 committed but not yet full-text indexed (upto = 40)
        table = "agent_logs" if n % 4 else "system_logs"
        text = {"content" if table == "agent_logs" else "message": f"needle{n % 3} row {n}"}
        _insert(conn, table, {**BASE[table], "seq": n, "id": str(uuid.UUID(int=n)), **text})
    conn.execute("UPDATE stream_meta SET last_seq = 44")
    conn.execute("INSERT INTO agent_logs_fts (rowid, content) SELECT seq, content FROM agent_logs WHERE seq <= 40")
    conn.execute("INSERT INTO system_logs_fts (rowid, message) SELECT seq, message FROM system_logs WHERE seq <= 40")
    conn.execute("UPDATE fts_state SET upto = 40")
    return conn


def _newer_than_0005() -> list[str]:
    from orchlog.store.migrate import available

    return [m.label for m in available("sqlite") if m.version > 5]


def test_upgrade_from_0005_keeps_every_row_seq_index_trigger_and_search(tmp_path: Path) -> None:
    """A database at 0005 with events in it, most of them full-text indexed, goes through 0006
    (tables rebuilt) and 0007 (full-text tables made again) without a change a reader could see:
    the same rows and seqs, the same indexes and triggers, search finds what it found, the rows
    not yet indexed are indexed once by the writer, and retention's delete still takes an
    indexed row out of the search."""
    from orchlog.store.base import IndexFulltext
    from orchlog.store.sqlite_conn import migrate as run_migrations
    from orchlog.store.sqlite_write import Writer

    db = tmp_path / "old.db"
    conn = _database_at_0005(db)
    before = {t: conn.execute(f"SELECT * FROM {t} ORDER BY seq").fetchall() for t in ("agent_logs", "system_logs")}
    shape = {t: _schema_of(conn, t) for t in before}

    assert run_migrations(conn) == _newer_than_0005()

    for table, rows in before.items():
        assert conn.execute(f"SELECT * FROM {table} ORDER BY seq").fetchall() == rows
        assert _schema_of(conn, table) == shape[table]
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    for fts in ("agent_logs_fts", "system_logs_fts"):
        assert "columnsize=0" in conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (fts,)).fetchone()[0]
    match = "SELECT rowid FROM agent_logs_fts WHERE agent_logs_fts MATCH 'needle1' ORDER BY rowid"
    found = [r[0] for r in conn.execute(match)]
    assert found == [n for n in range(1, 41) if n % 4 and n % 3 == 1]
    assert Writer(conn, str(db)).batch([IndexFulltext()]).results == [4]
    found = [r[0] for r in conn.execute(match)]
    assert found == [n for n in range(1, 45) if n % 4 and n % 3 == 1]
    conn.execute("DELETE FROM agent_logs WHERE seq = ?", (found[0],))
    assert [r[0] for r in conn.execute(match)] == found[1:]
    for fts in ("agent_logs_fts", "system_logs_fts"):  # the index matches its table: nothing twice, none missing
        conn.execute(f"INSERT INTO {fts} ({fts}, rank) VALUES ('integrity-check', 1)")
    assert [r[0] for r in conn.execute("SELECT rowid FROM system_logs_fts WHERE system_logs_fts MATCH 'needle0'")] == [
        n for n in range(1, 45) if n % 4 == 0 and n % 3 == 0
    ]
    conn.close()


@pytest.mark.parametrize("table", ["agent_logs", "system_logs"])
def test_log_table_checks_use_no_in_lists(conn: sqlite3.Connection, table: str) -> None:
    """SQLite builds a temporary b-tree for a CHECK's `IN (...)` list on every INSERT statement
    (2.5 us per row on agent_logs: 0006). The hot tables spell enums as comparisons."""
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    assert " IN (" not in sql.upper(), sql


def test_upgrade_of_a_database_at_its_disk_quota(tmp_path: Path) -> None:
    """A rebuild holds two copies of a table until it commits: a database near its
    ``max_db_pages`` is still upgraded (the quota is lifted for the migrations only, then back)."""
    from orchlog.store.sqlite_conn import connect as store_connect
    from orchlog.store.sqlite_conn import migrate as run_migrations

    db = tmp_path / "full.db"
    _database_at_0005(db).close()
    pages = sqlite3.connect(db).execute("PRAGMA page_count").fetchone()[0]
    conn = store_connect(str(db), Settings(max_db_pages=pages + 2))
    try:
        assert run_migrations(conn) == _newer_than_0005()
        assert conn.execute("PRAGMA max_page_count").fetchone()[0] == max(pages + 2, _page_count(conn))
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        conn.close()


def _page_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA page_count").fetchone()[0])


def test_upgrade_keeps_rows_that_name_a_missing_agent_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A raw writer with SQLite's default (foreign keys off) can leave a log row whose agent is
    gone; the rebuild keeps it as it was (never refuses to start over it) and logs it."""
    from orchlog.store.sqlite_conn import migrate as run_migrations

    conn = _database_at_0005(tmp_path / "orphan.db")
    conn.execute("PRAGMA foreign_keys = OFF")
    orphan = {**BASE["agent_logs"], "seq": 45, "id": str(uuid.UUID(int=45))}
    _insert(conn, "agent_logs", {**orphan, "agent_id": "00000000-0000-4000-8000-00000000dead"})
    conn.execute("PRAGMA foreign_keys = ON")
    with caplog.at_level("WARNING", logger="orchlog.migrate"):
        assert run_migrations(conn) == _newer_than_0005()
    assert conn.execute("SELECT agent_id FROM agent_logs WHERE seq = 45").fetchone() == (
        "00000000-0000-4000-8000-00000000dead",
    )
    assert "1 rows name a parent row that does not exist" in caplog.text and "agent_logs rowid 45" in caplog.text
    conn.close()


def test_upgrade_keeps_a_users_view_and_names_the_index_and_trigger_it_drops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A view of a user's own on a rebuilt table keeps working; a user's index and trigger on it
    cannot be carried over by a SQL migration, so the runner names them instead of losing them
    silently."""
    from orchlog.store.sqlite_conn import migrate as run_migrations

    conn = _database_at_0005(tmp_path / "mine.db")
    conn.execute("CREATE VIEW my_errors AS SELECT seq FROM agent_logs WHERE level = 'ERROR'")
    conn.execute("CREATE INDEX my_idx ON agent_logs (content)")
    conn.execute("CREATE TRIGGER my_trigger AFTER INSERT ON system_logs BEGIN SELECT 1; END")
    with caplog.at_level("WARNING", logger="orchlog.migrate"):
        assert run_migrations(conn) == _newer_than_0005()
    assert conn.execute("SELECT count(*) FROM my_errors").fetchone() == (0,)
    assert "rebuilds agent_logs: index my_idx" in caplog.text
    assert "rebuilds system_logs: trigger my_trigger" in caplog.text
    assert "agent_logs_fts_delete" not in caplog.text  # orchlog's own are made again, not reported
    conn.close()


def test_migration_waits_for_another_process_holding_the_lock(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Another process's long migration holds the write lock past the busy timeout: this one
    says so and waits for it, instead of failing the start with 'database is locked'."""
    import logging
    import threading

    from orchlog.store.sqlite_conn import connect as store_connect
    from orchlog.store.sqlite_conn import migrate as run_migrations

    db = tmp_path / "locked.db"
    _database_at_0005(db).close()
    holder = connect(db)
    holder.execute("BEGIN IMMEDIATE")
    waiting = threading.Event()

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "locked by another process" in record.getMessage():
                waiting.set()

    handler = Seen()
    logging.getLogger("orchlog.migrate").addHandler(handler)
    caplog.set_level("INFO", logger="orchlog.migrate")
    result: list[Any] = []
    conn = store_connect(str(db), Settings(busy_timeout_ms=50))
    worker = threading.Thread(target=lambda: result.append(run_migrations(conn)))
    try:
        worker.start()
        assert waiting.wait(30), "the runner never said it was waiting"
        holder.execute("COMMIT")
        worker.join(30)
        assert result == [_newer_than_0005()]
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 50
    finally:
        logging.getLogger("orchlog.migrate").removeHandler(handler)
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        worker.join(30)
        holder.close()
        conn.close()
