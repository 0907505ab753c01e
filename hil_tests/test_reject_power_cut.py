"""A power cut at every flash write and every pin write of a one-note REJECT: the note is booked."""

from __future__ import annotations

from pathlib import Path

import pytest
from atm_host.link import CommandFailed, DeviceReset, LinkError
from atm_wire import messages as m

from hil_tests.rig import Rig, make_rig, recover_after_cut


def _reject(rig: Rig) -> int:
    return rig.client.reject(token=rig.client.maint_token(rig.key, "reject"))


@pytest.mark.sim_only
@pytest.mark.parametrize("kind", ["flash", "pin"])
def test_power_cut_at_every_step_of_a_one_note_reject(tmp_path: Path, kind: str) -> None:
    with make_rig(tmp_path / "calibrate") as rig:
        assert rig.board is not None
        txid, _, res = rig.dispense((1, 0, 0, 0))
        assert res.total_stacked == 1
        before = rig.board.flash_writes if kind == "flash" else rig.board.pin_writes
        assert _reject(rig) == 1
        steps = (rig.board.flash_writes if kind == "flash" else rig.board.pin_writes) - before
    assert steps >= 2
    with make_rig(tmp_path / "cuts") as rig:
        assert rig.board is not None
        mech = rig.board.mech
        for k in range(1, steps + 1):
            txid, _, res = rig.dispense((1, 0, 0, 0))
            assert res.total_stacked == 1
            rig.board.cut_at(kind, k)
            try:
                _reject(rig)
            except (LinkError, DeviceReset, CommandFailed):
                pass
            if rig.board.armed:
                rig.board.disarm()
            recover_after_cut(rig)
            where = f"{kind} cut {k}/{steps}"
            rep = rig.client.get_report(txid)
            assert rep.flags & m.REPORT_FLAG_FINAL, where
            assert (rep.rejected, rep.presented, rep.present_status) == (1, 0, m.PRESENT_NOT_PRESENTED), (
                where,
                rep,
            )
            info = rig.client.cassette_info()
            snap = mech.snapshot()
            assert snap["stacker"] == 0 and snap["taken"] == 0, (where, snap)
            assert info.reject_bin == mech.reject_bin == k, (where, info, snap)
            assert list(info.counts) == mech.cassettes, (where, info, snap)
    print(f"\n{kind}: {steps} cut points of a one-note reject, every note booked")
