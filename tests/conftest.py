"""Fixtures for every layer; the helpers they use live in tests/helpers (import them from there).

At this level the fixtures start real `orchlog serve` processes (what tests/e2e needs); tests/api
overrides `server`, `client`, `module_server`, `mclient` and `server_factory` with the same app
in-process, so the same test bodies run without a subprocess.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

# Re-exported for tests written before tests/helpers existed (`from conftest import Server, ...`);
# new tests import from helpers. Every layer's conftest.py re-exports the same names.
from helpers import *  # noqa: F403
from helpers import Server, start_server
from helpers.pg import throwaway_database


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "orchlog.db"


@pytest.fixture
def server(db_path: Path) -> Iterator[Server]:
    srv = Server(db_path).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server shared by the tests of a module that do not disturb each other."""
    srv = start_server(tmp_path_factory.mktemp("module-server"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def mclient(module_server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """An async client of the module's shared server."""
    async with httpx.AsyncClient(base_url=module_server.url, timeout=30) as c:
        yield c


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers with their own settings: ``server_factory(env={...}, db=path)``; all stopped after."""
    started: list[Server] = []

    def make(*args: str, env: dict[str, str] | None = None, db: Path | None = None) -> Server:
        srv = Server(db or tmp_path / "orchlog.db", *args, env=env)
        started.append(srv)
        return srv.start()

    yield make
    for srv in reversed(started):
        srv.stop()


@pytest.fixture
def pg_db() -> Iterator[str]:
    """A throwaway database on the test PostgreSQL server (mark the test ``helpers.pg.needs_pg``)."""
    with throwaway_database() as url:
        yield url


def _file_rank(items: list[pytest.Item]) -> int:
    """0: a file that drives Chromium (the slowest per test); 1: other e2e; 2: api; 3: unit and the rest."""
    if any("dashboard" in getattr(item, "fixturenames", ()) for item in items):
        return 0
    parts = items[0].path.parts
    return 1 if "e2e" in parts else 2 if "api" in parts else 3


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``make test``), hand out the slowest files first so that no long file starts
    last and runs alone while the other workers idle; the many short unit and api files fill in at the end.
    Files stay whole and keep their own order (``--dist loadfile --no-loadscope-reorder``)."""
    if not hasattr(config, "workerinput"):
        return
    by_file: dict[Path, list[pytest.Item]] = {}
    for item in items:
        by_file.setdefault(item.path, []).append(item)
    files = sorted(by_file.values(), key=_file_rank)  # stable: same-rank files keep collection order
    items[:] = [item for group in files for item in group]


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """A token secret (``olg_<role>_<random>``) as a parameter is named by its role, not its random part:
    test ids must be the same in every pytest-xdist worker (each imports the module and draws its own
    secrets), and a secret has no business in a test's name."""
    if isinstance(val, str) and val.startswith("olg_"):
        return f"{argname}-{val.split('_')[1]}" if val.count("_") >= 2 else argname
    return None
