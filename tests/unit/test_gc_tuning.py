"""The server takes its startup objects out of the cyclic collector and collects in larger passes."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from orchlog.server import GC_THRESHOLDS, tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_tune_gc_freezes_what_is_loaded_and_raises_the_thresholds() -> None:
    gc.unfreeze()
    tune_gc()
    assert gc.get_freeze_count() > 1000  # the modules and schemas loaded so far
    assert gc.get_threshold() == GC_THRESHOLDS
