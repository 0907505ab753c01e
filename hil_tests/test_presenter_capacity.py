"""The presenter capacity is declared once, by the firmware, and stated in its hello."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from atm_host.link import CommandFailed
from atm_wire import messages as m

from hil_tests.rig import Rig

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware" / "dispenser.py"


def firmware_max_notes() -> int:
    found = re.search(r"^MAX_NOTES = (\d+)", FIRMWARE.read_text(), re.MULTILINE)
    assert found, "firmware/dispenser.py declares no MAX_NOTES"
    return int(found.group(1))


def test_hello_states_the_capacity_the_firmware_enforces(rig: Rig) -> None:
    cap = rig.client.info.max_notes
    assert cap == firmware_max_notes()
    assert rig.client.denominate((cap, 0, 0, 0)) == cap * rig.client.cassette_info().denominations[0]
    with pytest.raises(CommandFailed) as over:
        rig.client.denominate((cap, 1, 0, 0))  # one note more than the presenter holds
    assert over.value.code == m.INVALID_DATA
