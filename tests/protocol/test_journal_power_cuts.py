"""The firmware's raw-flash journal, cut at every erase and page program (MicroPython, NOR model)."""

from __future__ import annotations

import re

from mp_runner import run_mp


def _summary(out: str) -> tuple[int, int, int, int, int]:
    m = re.search(r"journal: (\d+) calls, (\d+) flash ops \((\d+) erases\), (\d+) cuts, (\d+) misses", out)
    assert m is not None, out
    calls, ops, erases, cuts, misses = (int(g) for g in m.groups())
    return calls, ops, erases, cuts, misses


def test_every_cut_before_an_operation_replays_exactly() -> None:
    res = run_mp("journal_check.py", "150", "-1", heap="16M")
    assert res.returncode == 0, res.stdout + res.stderr
    _calls, ops, erases, cuts, misses = _summary(res.stdout)
    assert misses == 0 and cuts == ops and erases >= 9  # a snapshot was written (every 8 blocks)


def test_every_torn_operation_replays_exactly_across_a_ring_wrap() -> None:
    """30 bytes of each page (inside its record) or 480 bytes of each erase, then the power fails."""
    res = run_mp("journal_check.py", "480", "30", heap="16M")
    assert res.returncode == 0, res.stdout + res.stderr
    calls, ops, erases, cuts, misses = _summary(res.stdout)
    assert misses == 0 and cuts == ops
    assert erases > 32  # more blocks entered than the ring has: it wrapped, old blocks were reused
    assert ops < calls * 1.3  # one page program per record, an erase per 15 pages, a snapshot per 8 blocks
