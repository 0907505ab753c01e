"""The dispenser's USB cable pulled and plugged back, with the whole system running (real firmware).

The stack's board is pluggable (LocalStack builds it so) and the journey drives a ReconnectingDispenser
opening the board's stable port name. Asserted, as in test_withdrawal: notes on the board, the bank's
ledger, what the console sees on the fleet topics; and that the ATM comes back into service by itself.
"""

import time
from collections.abc import Callable

from atm_host.journey.states import Snapshot, State
from atm_tools.demo import LocalStack

from .conftest import FleetListener

BACK_S = 40.0  # reopen backoff (<= 5 s) + handshake + health checks, on a shared machine


def _wait(cond: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def _board(stack: LocalStack) -> dict[str, int | list[int]]:
    assert stack.board is not None
    return stack.board.mech.snapshot()


def _link_events(fleet: FleetListener, state: str) -> list[dict[str, object]]:
    return [e for e in fleet.events("dispenser_link") if e["detail"].get("state") == state]  # type: ignore[union-attr]


def _listening(fleet: FleetListener) -> bool:
    """The console's subscription is live: the ATM's retained birth message has been delivered."""
    with fleet.lock:
        return any(t.endswith("/birth") for t, _ in fleet.messages)


def _unplug_when_dispensing(stack: LocalStack, power_off: bool) -> Callable[[], None]:
    """Pull the cable at the 6th pin write after the journey enters DISPENSE: the MCU is picking."""
    assert stack.journey is not None and stack.board is not None
    board = stack.board

    def on_snapshot(snap: Snapshot) -> None:
        if snap.state is State.DISPENSE and not board.armed:
            board.unplug_at("pin", 6, power_off=power_off)

    return stack.journey.subscribe(on_snapshot)


def test_unplug_in_idle_goes_out_of_service_and_comes_back_by_itself(
    stack: LocalStack, fleet: FleetListener
) -> None:
    assert stack.board is not None and stack.journey is not None
    j, board = stack.journey, stack.board
    j.wait_state({State.IDLE}, 20)
    _wait(lambda: _listening(fleet))  # else the events of the unplug could go out before it subscribed
    lost_before = len(_link_events(fleet, "lost"))
    board.unplug()
    snap = j.wait_state({State.OUT_OF_SERVICE}, 15)
    _wait(lambda: "dispenser_link_lost" in j.snapshot.causes)
    assert "dispenser_link_lost" in j.snapshot.causes and snap.causes_text
    _wait(lambda: len(_link_events(fleet, "lost")) > lost_before)
    _wait(lambda: any("dispenser_link_lost" in str(e["detail"]) for e in fleet.events("out_of_service")))
    assert stack.dispenser is not None
    tried = stack.dispenser.link_counters()["open_failures"]
    # The port stays gone through two more reopen attempts; the ATM must stay out of service meanwhile.
    _wait(
        lambda: stack.dispenser is not None and stack.dispenser.link_counters()["open_failures"] >= tried + 2
    )
    assert j.state is State.OUT_OF_SERVICE
    board.replug()
    j.wait_state({State.IDLE}, BACK_S)
    _wait(lambda: len(_link_events(fleet, "restored")) >= 1)
    _wait(lambda: len(fleet.events("in_service")) >= 1)
    assert stack.dispenser is not None and stack.dispenser.link_counters()["reopens"] >= 1
    before = _board(stack)
    c = stack.customers[7]
    rec = stack.withdraw(c, 200)
    assert rec.outcome == "paid", rec
    after = _board(stack)
    assert after["taken"] == before["taken"] + 2  # type: ignore[operator]
    assert stack.wait_txn_state(rec.txid, {"debited"}) == "debited"


def test_unplug_during_a_dispense_is_settled_once_and_never_paid_twice(
    stack: LocalStack, fleet: FleetListener
) -> None:
    assert stack.board is not None and stack.journey is not None
    j, board = stack.journey, stack.board
    before = _board(stack)
    unsubscribe = _unplug_when_dispensing(stack, power_off=False)
    try:
        rec = stack.withdraw(stack.customers[7], 300)
    finally:
        unsubscribe()
    # The customer was told the bank will check; nothing reached the presenter; the txid is pending.
    assert rec.outcome == "suspect" and rec.txid, rec
    assert not board.plugged and rec.txid in j.pending.all()
    snap = j.wait_state({State.OUT_OF_SERVICE}, 15)
    assert {"dispenser_link_lost", "dispenser_fault"} & set(snap.causes)
    _wait(lambda: any(e["detail"].get("txid") == rec.txid for e in fleet.events("dispenser_fault")))  # type: ignore[union-attr]
    assert stack.txn_state(rec.txid) not in ("debited", "reversed")  # not settled without the MCU's word
    board.replug()
    j.wait_state({State.IDLE}, BACK_S)
    # The MCU finished the dispense into the stacker while unplugged; after the reopen the host reset it:
    # the 3 notes went to the reject bin, the signed report said "not presented", the bank reversed.
    assert stack.wait_txn_state(rec.txid, {"reversed"}, 15) == "reversed"
    assert [k for k, _, _ in stack.ledger(rec.txid)] == ["reserve", "reserve", "reverse", "reverse"]
    after = _board(stack)
    assert after["taken"] == before["taken"]
    assert after["reject_bin"] == before["reject_bin"] + 3  # type: ignore[operator]
    assert after["cassettes"][0] == before["cassettes"][0] - 3  # type: ignore[index]
    assert after["stacker"] == 0 and after["presenter"] == 0 and after["in_path"] == 0
    assert board.mech.total() == sum(stack.opt.load)
    assert not j.pending.all()
    _wait(lambda: any(e["detail"].get("txid") == rec.txid for e in fleet.events("pending_report_sent")))  # type: ignore[union-attr]
    rec2 = stack.withdraw(stack.customers[7], 100)
    assert rec2.outcome == "paid", rec2


def test_a_bus_powered_board_losing_power_with_the_cable_mid_dispense_reconciles_at_boot(
    stack: LocalStack,
) -> None:
    assert stack.board is not None and stack.journey is not None
    j, board = stack.journey, stack.board
    before = _board(stack)
    unsubscribe = _unplug_when_dispensing(stack, power_off=True)
    try:
        rec = stack.withdraw(stack.customers[7], 200)
    finally:
        unsubscribe()
    assert rec.outcome == "suspect" and rec.txid, rec
    j.wait_state({State.OUT_OF_SERVICE}, 15)
    board.replug()  # power back: the firmware boots and reconciles the open transaction from its journal
    j.wait_state({State.IDLE}, BACK_S)
    assert stack.wait_txn_state(rec.txid, {"reversed"}, 15) == "reversed"
    after = _board(stack)
    assert after["taken"] == before["taken"] and board.mech.total() == sum(stack.opt.load)
    assert not j.pending.all()
