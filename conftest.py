"""Suite-wide rule: a skipped test is a failed test (a real part the suite needs is missing).

`./atm test` must not pass on a machine without mosquitto, PostgreSQL, Chromium or Playwright: every
`pytest.skip`, `importorskip` or skip marker is reported as a failure carrying the skip's reason. The
only skips allowed are hil_tests/conftest.py's, when HIL_PORT names a real board: the sim-only tests and
the emulated RP2040's own tests cannot run against it.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

pytest_plugins = ("pytester",)  # tests/test_no_skips.py runs a throw-away suite through this rule


REAL_BOARD_SKIPS = ("sim_only", "rp2040")  # markers hil_tests/conftest.py skips when HIL_PORT is set


def _allowed(item: pytest.Item | None) -> bool:
    if item is None or not os.environ.get("HIL_PORT"):
        return False
    return any(item.get_closest_marker(name) is not None for name in REAL_BOARD_SKIPS)


def _reason(longrepr: object) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: ...")
        return str(longrepr[2])  # pyright: ignore[reportUnknownArgumentType]
    return str(longrepr)


def _fail(report: pytest.TestReport | pytest.CollectReport) -> None:
    report.outcome = "failed"
    report.longrepr = (
        f"SKIPPED TESTS FAIL THE SUITE: {_reason(report.longrepr)}\n"
        "A real part this test needs is missing; install it (README, ./atm setup) instead of skipping."
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]
    if report.skipped and not hasattr(report, "wasxfail") and not _allowed(item):
        _fail(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, None, None]:
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]
    if report.skipped:  # a module-level importorskip / skip(allow_module_level=True)
        _fail(report)
