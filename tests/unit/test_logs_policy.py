"""The access-log policy (logs.should_log_access), applied by the gate before a record is made."""

from __future__ import annotations

import pytest

from orchlog.logs import should_log_access


@pytest.mark.parametrize(
    ("status", "took", "log_all", "logged"),
    [
        (201, 0.01, False, False),  # a quiet log: a fast success leaves no line
        (404, 0.01, False, True),  # errors always
        (500, 0.01, False, True),
        (200, 1.5, False, True),  # slower than slow_s
        (200, 0.01, True, True),  # --access-log: everything
    ],
)
def test_errors_and_slow_requests_are_logged_by_default_everything_with_access_log(
    status: int, took: float, log_all: bool, logged: bool
) -> None:
    assert should_log_access(status, took, log_all=log_all, slow_s=1.0) is logged
