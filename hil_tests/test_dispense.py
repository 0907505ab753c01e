"""Dispense, present, take or retract; double pick, jam, empty cassette: exact note counts."""

from __future__ import annotations

import pytest
from atm_host.link import CommandFailed
from atm_host.link.signing import verify_report
from atm_wire import messages as m

from hil_tests.rig import Rig


def test_dispense_present_take(rig: Rig) -> None:
    with rig.client.event_queue() as events:
        txid, _, res = rig.dispense((3, 2, 0, 1))
        assert res.stacked == (3, 2, 0, 1) and res.rejected == (0, 0, 0, 0) and not res.duplicate
        assert rig.client.present(txid) == 6
        events.wait_for(["items_presented"], txid=txid, timeout=5)
        if rig.board is not None:
            assert rig.board.mech.take() == 6
        events.wait_for(["items_taken"], txid=txid, timeout=10)
    rep = rig.client.get_report(txid)
    assert verify_report(rig.key, rep.raw)
    assert (rep.presented, rep.retracted, rep.present_status) == (6, 0, m.PRESENT_PRESENTED)
    assert rep.flags & m.REPORT_FLAG_FINAL and rep.flags & m.REPORT_FLAG_TAKEN
    info = rig.client.cassette_info()
    assert info.counts == (197, 198, 200, 199)
    if rig.board is not None:
        snap = rig.board.mech.snapshot()
        assert snap["taken"] == 6 and snap["cassettes"] == [197, 198, 200, 199]
        assert rig.board.mech.total() == 800


def test_not_taken_is_retracted_after_timeout(rig: Rig) -> None:
    rig.client.set_config(1000)
    with rig.client.event_queue() as events:
        txid, _, _ = rig.dispense((0, 4, 0, 0))
        assert rig.client.present(txid) == 4
        ev = events.wait_for(["items_retracted"], txid=txid, timeout=10)
    assert ev.fields[1] == 4
    rep = rig.client.get_report(txid)
    assert (rep.presented, rep.retracted) == (4, 4)
    info = rig.client.cassette_info()
    assert info.retract_bin == 4 and info.counts[1] == 196
    if rig.board is not None:
        assert rig.board.mech.snapshot()["retract_bin"] == 4
        assert rig.board.mech.snapshot()["taken"] == 0


@pytest.mark.sim_only
def test_partial_take_then_retract(rig: Rig) -> None:
    assert rig.board is not None
    rig.client.set_config(1500)
    txid, _, _ = rig.dispense((5, 0, 0, 0))
    rig.client.present(txid)
    assert rig.board.mech.take(2) == 2
    with rig.client.event_queue() as events:
        events.wait_for(["items_retracted"], txid=txid, timeout=10)
    rep = rig.client.get_report(txid)
    assert (rep.presented, rep.retracted) == (5, 3)  # the bank debits 5 - 3 = 2 notes
    assert rig.board.mech.snapshot()["taken"] == 2


@pytest.mark.sim_only
def test_double_pick_goes_to_reject_bin(rig: Rig) -> None:
    assert rig.board is not None
    rig.board.mech.faults.double_picks[0] = 2
    with rig.client.event_queue() as events:
        txid, _, res = rig.dispense((4, 0, 0, 0))
        events.wait_for(["double_pick"], timeout=5)
    assert res.stacked == (4, 0, 0, 0)
    snap = rig.board.mech.snapshot()
    assert snap["stacker"] == 4 and snap["reject_bin"] == 4  # two doubles = four notes rejected
    assert snap["cassettes"][0] == 200 - 8
    info = rig.client.cassette_info()
    assert info.counts[0] == 192 and info.reject_bin == 4
    assert rig.client.get_report(txid).rejected == 4
    assert rig.client.counters()["double_picks"] == 2


@pytest.mark.sim_only
def test_jam_stops_safely_and_reset_recovers(rig: Rig) -> None:
    assert rig.board is not None
    rig.board.mech.faults.jam_on_sensor = 1
    txid, token = rig.token((3, 0, 0, 0))
    with pytest.raises(CommandFailed) as exc:
        rig.client.dispense(token)
    assert exc.value.code == m.JAMMED
    assert rig.client.status().state == m.STATE_FAULT
    assert not any(v for k, v in rig.board.mech.outputs.items() if k != 25)  # every motor off
    rig.board.mech.clear_jam()
    rig.client.reset()
    assert rig.client.status().state == m.STATE_IDLE
    rep = rig.client.get_report(txid)
    assert rep.presented == 0 and rep.present_status == m.PRESENT_NOT_PRESENTED
    snap = rig.board.mech.snapshot()
    assert snap["taken"] == 0 and snap["in_path"] == 0 and snap["stacker"] == 0
    assert snap["reject_bin"] == 200 - snap["cassettes"][0]
    assert rig.client.cassette_info().counts[0] == snap["cassettes"][0]


@pytest.mark.sim_only
def test_empty_cassette_mid_dispense(tmp_path: object) -> None:
    from pathlib import Path

    from hil_tests.rig import make_rig

    with make_rig(Path(str(tmp_path)), load=[3, 200, 200, 200]) as rig:
        assert rig.board is not None
        rig.board.mech.load([3, 200, 200, 200])
        # The counters say 10 notes; the cassette physically holds 3 (a miscount at replenishment).
        from atm_host.link.signing import sign_replenish

        nonce = rig.client.get_nonce().nonce
        rig.client.replenish(
            sign_replenish(rig.key, rig.device_id, nonce, (100, 50, 20, 10), [10, 200, 200, 200])
        )
        with rig.client.event_queue() as events:
            txid, token = rig.token((5, 0, 0, 0))
            with pytest.raises(CommandFailed) as exc:
                rig.client.dispense(token)
            assert exc.value.code == m.CASH_UNIT_ERROR
            events.wait_for(["incomplete_dispense"], timeout=5)
        info = rig.client.cassette_info()
        assert info.counts[0] == 0 and info.unit_status[0] == m.UNIT_EMPTY
        assert rig.client.status().notes_stacked == 3
        # The engineer (or the bank) chose not to pay a partial amount: a maintenance reject.
        assert rig.client.reject(token=rig.client.maint_token(rig.key, "reject")) == 3
        rep = rig.client.get_report(txid)
        assert rep.presented == 0 and rep.rejected == 3
        assert rig.board.mech.snapshot()["reject_bin"] == 3


@pytest.mark.sim_only
def test_journal_costs_one_flash_program_per_note(rig: Rig) -> None:
    """A 40-note dispense: one page program per note plus a few per transaction, erases amortised."""
    board = rig.board
    assert board is not None
    p0, e0 = board.flash_programs, board.flash_erases
    _, _, res = rig.dispense((40, 0, 0, 0))
    assert res.total_stacked == 40
    programs, erases = board.flash_programs - p0, board.flash_erases - e0
    # BEGIN + 40 PICKED, and at most one block header (and, once in 8 blocks, a snapshot) on the way.
    assert 41 <= programs <= 41 + 2 + 8, programs
    assert erases <= 3, erases
    print(f"\n40-note dispense: {programs} page programs, {erases} erases ({programs / 40:.2f} per note)")
