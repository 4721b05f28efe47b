"""The api layer: the same fixture names as tests/conftest.py, served by the real app in-process
(``helpers.AppServer``: create_app over a real SQLite file in tmp, lifespan running) instead of a
subprocess. A test here never opens a socket; one that must belongs in tests/e2e.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from helpers import *  # noqa: F403  (re-exported for `from conftest import ...`, see tests/conftest.py)
from helpers import AppServer, start_app


@pytest.fixture
def server(db_path: Path) -> Iterator[AppServer]:
    with AppServer(db_path) as srv:
        yield srv


@pytest.fixture
async def client(server: AppServer) -> AsyncIterator[httpx.AsyncClient]:
    async with server.client() as c:
        yield c


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """One app shared by the tests of a module that do not disturb each other."""
    srv = start_app(tmp_path_factory.mktemp("module-server"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def mclient(module_server: AppServer) -> AsyncIterator[httpx.AsyncClient]:
    """An async client of the module's shared app."""
    async with module_server.client() as c:
        yield c


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., AppServer]]:
    """Apps with their own settings: ``server_factory(env={...}, db=path)``; all stopped after."""
    started: list[AppServer] = []

    def make(env: dict[str, str] | None = None, db: Path | None = None) -> AppServer:
        srv = AppServer(db or tmp_path / "orchlog.db", env=env)
        started.append(srv)
        return srv.start()

    yield make
    for srv in reversed(started):
        srv.stop()
