"""A power cut at every flash operation (before it, or torn) and every pin write of a 3-note COUNT."""

from __future__ import annotations

from pathlib import Path

import pytest
from atm_host.link import CommandFailed, DeviceReset, LinkError
from atm_sim.board import SimBoard

from hil_tests.rig import CUT_MODES, TEST_KEY, Rig, make_rig, provision_and_load, recover_after_cut

CASSETTE = 3
NOTES = 3  # in the counted cassette; the others hold 200 each
LOAD = [200, 200, 200, NOTES]


def _count(rig: Rig) -> int:
    c = rig.client
    return c.count(CASSETTE, token=c.maint_token(rig.key, "count", CASSETTE))


def _refill(rig: Rig) -> int:
    """The engineer tops the counted cassette up to NOTES notes and replenishes (bank token); returns
    the notes added to the machine."""
    assert rig.board is not None
    mech = rig.board.mech
    with mech.lock:
        added = NOTES - mech.cassettes[CASSETTE]
        mech.cassettes[CASSETTE] = NOTES
    provision_and_load(rig.client, TEST_KEY, list(mech.cassettes))
    return added


@pytest.mark.sim_only
@pytest.mark.parametrize("mode", CUT_MODES)
def test_power_cut_at_every_step_of_a_count(tmp_path: Path, mode: str) -> None:
    kind = "pin" if mode == "pin" else "flash"
    tear = 30 if mode == "flash-torn" else None
    with make_rig(tmp_path / "calibrate", load=LOAD) as rig:
        assert rig.board is not None
        before = rig.board.flash_writes if kind == "flash" else rig.board.pin_writes
        assert _count(rig) == NOTES
        steps = (rig.board.flash_writes if kind == "flash" else rig.board.pin_writes) - before
    assert steps >= 1
    loaded = sum(LOAD)
    misses: list[str] = []
    with make_rig(tmp_path / "cuts", load=LOAD) as rig:
        board = rig.board
        assert board is not None
        mech = board.mech
        for k in range(1, steps + 1):
            bin0 = rig.client.cassette_info().reject_bin - mech.reject_bin  # earlier misses carry over
            if tear is None:
                board.cut_at(kind, k)
            else:
                assert isinstance(board, SimBoard), "a torn write needs the unix-port board's flash"
                board.cut_at(kind, k, tear=tear)
            try:
                _count(rig)
            except (LinkError, DeviceReset, CommandFailed):
                pass
            if board.armed:
                board.disarm()  # this run took fewer steps than the calibration run
            recover_after_cut(rig)
            info = rig.client.cassette_info()
            bin_off = info.reject_bin - mech.reject_bin - bin0
            snap = mech.snapshot()
            where = f"{mode} cut {k}/{steps}"
            assert mech.total() == loaded, (where, snap)
            assert snap["in_path"] == 0 and snap["stacker"] == 0 and snap["taken"] == 0, (where, snap)
            if list(info.counts) != snap["cassettes"] or bin_off:
                misses.append(f"{where}: firmware {list(info.counts)} reject {info.reject_bin}, notes {snap}")
            loaded += _refill(rig)
        if tear is not None:
            assert isinstance(board, SimBoard) and board.torn > 0
    print(f"\n{mode}: {steps} cut points of a {NOTES}-note count, {len(misses)} not reconciled")
    assert not misses, "\n".join(misses)
