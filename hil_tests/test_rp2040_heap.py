"""The firmware's live heap on the RP2040 stays within its 64 KiB budget in service (issue 11).

The heap the firmware reports (COUNTERS heap_peak: the live heap after a collection, sampled after
every motion command) is read once the list of finished transactions the journal keeps is full, the
steady state of a machine in service. The MicroPython port's qstr pool grows by doubling: a few dozen
more names in the firmware allocate a pool of ~4 KB at once, and this test is what notices.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hil_tests.rig import Rig

HEAP_BUDGET = 64 * 1024


def _recent_max() -> int:
    """The journal's list length (firmware/journal.py `_RECENT_MAX`)."""
    text = (Path(__file__).resolve().parents[1] / "firmware" / "journal.py").read_text()
    found = re.search(r"^_RECENT_MAX = const\((\d+)\)", text, re.M)
    assert found, "firmware/journal.py declares no _RECENT_MAX"
    return int(found.group(1))


@pytest.mark.rp2040
def test_live_heap_stays_within_64_kib_with_the_transaction_list_full(rig: Rig) -> None:
    for _ in range(_recent_max() + 1):
        rig.dispense((1, 0, 0, 0))
        rig.client.reject(token=rig.client.maint_token(rig.key, "reject"))
    peak = rig.client.counters()["heap_peak"]
    assert 0 < peak <= HEAP_BUDGET, f"live heap peak {peak} bytes > {HEAP_BUDGET}"
