"""A power cut during a dispense, then a second one at every step of the boot recovery that follows.

The first cut falls at the last pin write of the third note's pick (two notes booked in the stacker,
the third at the escrow gate, not journalled yet); the second at every flash operation (before it,
or torn; on the emulated chip torn) or every pin write from the power coming back until the machine
is idle again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from atm_host.link import CommandFailed, DeviceReset, LinkError
from atm_sim.board import SimBoard
from atm_sim.rp2040.board import RP2040Board
from atm_wire import messages as m

from hil_tests.rig import CUT_MODES, Board, Rig, make_rig, recover_after_cut

NOTES = (2, 1, 0, 0)
# Pin writes of one single-note pick (thickness hold 2, transport, pick on and off, transport off, then
# pick and transport off again on the way out) and of its delivery (gate, transport, both off again):
# the first cut is the last pin write of the third pick, its note resting at the gate. The emulated
# chip counts pin changes, not writes: the two writes on the pick's way out change nothing there.
PICK_PINS = 8
PICK_PIN_CHANGES = 6
DELIVER_PINS = 4


def _first_cut(board: Board) -> int:
    pick = PICK_PIN_CHANGES if isinstance(board, RP2040Board) else PICK_PINS
    return 2 * (pick + DELIVER_PINS) + pick


LOAD = [2000, 2000, 2000, 2000]


def _dispense_cut(rig: Rig, hook: Callable[[], None]) -> bytes:
    """A dispense the first cut stops; `hook` runs while the power is off."""
    board = rig.board
    assert board is not None
    txid, token = rig.token(NOTES)
    board.cut_at("pin", _first_cut(board), hook=hook)
    try:
        rig.client.dispense(token)
    except (LinkError, DeviceReset, CommandFailed):
        pass
    if board.armed:
        board.disarm()
    recover_after_cut(rig)
    return txid


@pytest.mark.sim_only
@pytest.mark.parametrize("mode", CUT_MODES)
def test_second_cut_at_every_step_of_the_recovery(tmp_path: Path, mode: str) -> None:
    kind = "pin" if mode == "pin" else "flash"
    tear = 30 if mode == "flash-torn" else None
    with make_rig(tmp_path / "calibrate", load=LOAD) as rig:
        board = rig.board
        assert board is not None
        at_boot: list[int] = []

        def mark() -> None:
            assert board is not None
            at_boot.append(board.flash_writes if kind == "flash" else board.pin_writes)

        before = list(board.mech.cassettes)
        _dispense_cut(rig, mark)
        assert board.power_cuts == 1 and at_boot
        steps = (board.flash_writes if kind == "flash" else board.pin_writes) - at_boot[0]
        picked = sum(before) - sum(board.mech.cassettes)
    assert picked == 3 and steps >= 2, (picked, steps)
    loaded = sum(LOAD)
    misses: list[str] = []
    with make_rig(tmp_path / "cuts", load=LOAD) as rig:
        board = rig.board
        assert board is not None
        mech = board.mech
        for k in range(1, steps + 1):
            cuts = board.power_cuts

            def second(k: int = k) -> None:
                assert board is not None
                if tear is None:
                    board.cut_at(kind, k)
                else:
                    assert isinstance(board, SimBoard), "a torn write needs the unix-port board's flash"
                    board.cut_at(kind, k, tear=tear)

            before = list(mech.cassettes)
            off0 = [a - b for a, b in zip(rig.client.cassette_info().counts, mech.cassettes, strict=True)]
            bin0 = rig.client.cassette_info().reject_bin - mech.reject_bin
            txid = _dispense_cut(rig, second)
            where = f"{mode} second cut {k}/{steps}"
            assert board.power_cuts == cuts + 2 or board.armed is False, where
            rep = rig.client.get_report(txid)
            info = rig.client.cassette_info()
            snap = mech.snapshot()
            picked = sum(before) - sum(snap["cassettes"])
            assert mech.total() == loaded, (where, snap)
            assert snap["in_path"] == 0 and snap["stacker"] == 0 and snap["taken"] == 0, (where, snap)
            assert rep.flags & m.REPORT_FLAG_FINAL and rep.flags & m.REPORT_FLAG_RECOVERED, (where, rep)
            got = (rep.present_status, rep.presented, rep.rejected)
            if (
                got != (m.PRESENT_NOT_PRESENTED, 0, picked)
                or [a - b for a, b in zip(info.counts, snap["cassettes"], strict=True)] != off0
                or info.reject_bin - snap["reject_bin"] != bin0
            ):
                misses.append(
                    f"{where}: report {got} for {picked} picked; firmware {list(info.counts)} reject "
                    f"{info.reject_bin}; notes {snap['cassettes']} reject {snap['reject_bin']}"
                )
        assert tear is None or (isinstance(board, SimBoard) and board.torn > 0)
    print(f"\n{mode}: {steps} second-cut points of a recovery, {len(misses)} not reconciled")
    assert not misses, "\n".join(misses)
