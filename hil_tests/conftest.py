"""Fixtures: a provisioned, loaded dispenser on the chosen target, and the emulated-RP2040 CI subset.

`./atm test` runs every HIL test on the unix-port sim board and the tests of RP2040_CI also on the
emulated RP2040 (ids end in [rp2040]). `HIL_TARGET=rp2040 .venv/bin/pytest hil_tests` runs every HIL
test on the emulated chip (the rp2040_full run); `HIL_PORT=/dev/ttyACM0` runs them on a real board.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hil_tests import rig as rig_mod
from hil_tests.rig import HIL_PORT, HIL_TARGET, Rig, make_rig

# The emulated chip runs at about half to a fifth of real time: these run in ./atm test on it.
RP2040_CI = frozenset(
    {
        "test_dispense_present_take",
        "test_not_taken_is_retracted_after_timeout",
        "test_double_pick_goes_to_reject_bin",
        "test_jam_stops_safely_and_reset_recovers",
        "test_empty_cassette_mid_dispense",
        "test_commands_complete_through_one_percent_corruption",
        "test_forged_replayed_stale_and_wrong_device_tokens_move_nothing",
        "test_firmware_hang_mid_dispense_watchdog_resets_and_reconciles",
    }
)
# Tests that drive a SimBoard of their own or its control server: the unix-port board only.
SIM_BOARD_ONLY = frozenset(
    {"test_115200_baud_wire_paces_the_link", "test_control_channel_drives_the_mechanics"}
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rp2040: runs on the emulated RP2040 target")
    config.addinivalue_line(
        "markers", "rp2040_full: on the emulated RP2040 only in the full run (HIL_TARGET=rp2040)"
    )


def _targets(name: str, own: bool) -> list[str]:
    if own:  # the emulated chip's own tests (flash layout, sampled power cuts): always on the emulator
        return ["rp2040"]
    if HIL_TARGET != "sim":
        return [HIL_TARGET]
    return ["sim", "rp2040"] if name in RP2040_CI else ["sim"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "hil_target" not in metafunc.fixturenames:
        return
    name = metafunc.function.__name__
    own = metafunc.definition.get_closest_marker("rp2040") is not None
    if HIL_TARGET == "rp2040" and name in SIM_BOARD_ONLY:
        metafunc.parametrize("hil_target", ["sim"], indirect=True)
        return
    targets = _targets(name, own)
    ids = targets if targets != ["sim"] else None
    metafunc.parametrize("hil_target", targets, ids=ids, indirect=True)


@pytest.fixture(autouse=True)
def hil_target(request: pytest.FixtureRequest) -> Iterator[str]:
    target = str(getattr(request, "param", HIL_TARGET))
    rig_mod.current_target[0] = target
    yield target
    rig_mod.current_target[0] = HIL_TARGET


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HIL_TARGET != "rp2040":  # the long emulated-chip tests run in the full run only
        full = [i for i in items if "rp2040_full" in i.keywords]
        if full:
            config.hook.pytest_deselected(items=full)
            items[:] = [i for i in items if "rp2040_full" not in i.keywords]
    if not HIL_PORT:
        return
    skip = pytest.mark.skip(reason="needs the simulated board's control channel (HIL_PORT is a real board)")
    emulator = pytest.mark.skip(reason="a test of the emulated RP2040 itself (HIL_PORT is a real board)")
    for item in items:
        if "sim_only" in item.keywords:
            item.add_marker(skip)
        elif item.get_closest_marker("rp2040") is not None:
            item.add_marker(emulator)


@pytest.fixture
def rig(tmp_path: Path, hil_target: str) -> Iterator[Rig]:
    del hil_target  # make_rig reads the current target
    with make_rig(tmp_path) as r:
        yield r
