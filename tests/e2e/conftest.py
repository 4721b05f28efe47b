"""Fixtures of the e2e layer (the shared ones are in tests/conftest.py; helpers in tests/helpers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest


@pytest.fixture
async def dashboard() -> AsyncIterator[Any]:
    """A headless Chromium page kit (helpers.dashboard.Dashboard) for the dashboard tests."""
    from helpers.dashboard import launch  # Playwright is imported only by the tests that use it

    async for d in launch():
        yield d
