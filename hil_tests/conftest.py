"""Fixtures: a provisioned, loaded dispenser (simulated by default, real when HIL_PORT is set)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hil_tests.rig import HIL_PORT, Rig, make_rig


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not HIL_PORT:
        return
    skip = pytest.mark.skip(reason="needs the simulated board's control channel (HIL_PORT is a real board)")
    for item in items:
        if "sim_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with make_rig(tmp_path) as r:
        yield r
