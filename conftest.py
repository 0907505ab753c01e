"""Suite-wide rule: a skipped test is a failed test (a real part the suite needs is missing).

`./atm test` must not pass on a machine without mosquitto, PostgreSQL, Chromium or Playwright: every
`pytest.skip`, `importorskip` or skip marker is reported as a failure carrying the skip's reason. The
only skip allowed is the documented one: sim-only HIL tests when HIL_PORT names a real board.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

pytest_plugins = ("pytester",)  # tests/test_no_skips.py runs a throw-away suite through this rule


def _allowed(item: pytest.Item | None) -> bool:
    return bool(item is not None and os.environ.get("HIL_PORT") and item.get_closest_marker("sim_only"))


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
