"""The whole system end to end: real broker, bank service, firmware on the simulated board, models, journey.

Every test asserts the three truths: notes on the board (the simulated mechanics), entries in the bank's
ledger, and what the console sees on the fleet topics. Tests share one system (start-up is the cost) and
use their own customer each, so the bank's per-customer limits do not leak between them.
"""

import time

from atm_host.journey.states import State
from atm_tools.demo import LocalStack

from .conftest import FleetListener


def _wait(cond: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(cond) and cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def _board(stack: LocalStack) -> dict[str, object]:
    assert stack.board is not None
    return stack.board.mech.snapshot()


def test_happy_path_pays_exact_notes_debits_and_tells_the_console(
    stack: LocalStack, fleet: FleetListener
) -> None:
    before = _board(stack)
    rec = stack.withdraw(stack.customers[0], 500)
    assert rec.outcome == "paid", rec
    assert rec.amount == 500 and rec.notes == (5, 0, 0, 0) and (rec.presented, rec.retracted) == (5, 0)
    after = _board(stack)
    assert after["cassettes"] == [before["cassettes"][0] - 5, *before["cassettes"][1:]]  # type: ignore[index]
    assert after["taken"] == before["taken"] + 5  # type: ignore[operator]
    assert after["presenter"] == 0 and after["retract_bin"] == before["retract_bin"]
    assert stack.wait_txn_state(rec.txid, {"debited"}) == "debited"
    assert stack.ledger(rec.txid) == [
        ("reserve", "customer:5000", -500),
        ("reserve", "hold:5000", 500),
        ("debit", "hold:5000", -500),
        ("debit", "cash_paid:ATM0001", 500),
    ]
    assert rec.bank_result == "debited"
    _wait(lambda: any(e["detail"].get("txid") == rec.txid for e in fleet.events("journey")))  # type: ignore[union-attr]
    ev = next(e for e in fleet.events("journey") if e["detail"].get("txid") == rec.txid)  # type: ignore[union-attr]
    assert ev["detail"]["outcome"] == "paid" and ev["detail"]["amount"] == 500  # type: ignore[index]
    t = rec.timings
    assert t["machine_qr_to_approval_ms"] > 0 and "person_ms" in t  # measured; the bench judges the numbers


def test_notes_not_taken_are_retracted_and_reversed(stack: LocalStack, fleet: FleetListener) -> None:
    before = _board(stack)
    rec = stack.withdraw(stack.customers[1], 300, take=False)
    assert rec.outcome == "retracted", rec
    assert (rec.presented, rec.retracted) == (3, 3)
    after = _board(stack)
    assert after["retract_bin"] == before["retract_bin"] + 3  # type: ignore[operator]
    assert after["taken"] == before["taken"]
    assert stack.wait_txn_state(rec.txid, {"reversed"}) == "reversed"
    kinds = [k for k, _, _ in stack.ledger(rec.txid)]
    assert kinds == ["reserve", "reserve", "reverse", "reverse"]
    assert ("reverse", "customer:5001", 300) in stack.ledger(rec.txid)


def test_presentation_attack_is_refused_before_the_bank(stack: LocalStack, fleet: FleetListener) -> None:
    before = _board(stack)
    c = stack.customers[2]
    rec = stack.withdraw(c, 500, face=stack.attack_face)
    assert rec.outcome == "attack" and rec.txid == "", rec
    assert _board(stack) == before
    attacks = lambda: fleet.events("presentation_attack")  # noqa: E731
    _wait(lambda: any(e["detail"].get("customer") == c.customer_id for e in attacks()))  # type: ignore[union-attr]
    ev = fleet.events("presentation_attack")[-1]
    assert ev["severity"] == "alarm"


def test_limit_breach_locally_then_at_the_bank(stack: LocalStack) -> None:
    j = stack.journey
    assert j is not None
    c = stack.customers[3]
    # Above the per-withdrawal limit: the ATM refuses the amount itself and asks again.
    j.wait_state({State.IDLE}, 10)
    stack.camera.show_phone(stack.token(c))
    j.wait_state({State.FACE}, 10)
    assert c.face is not None
    stack.camera.show_frame(c.face)
    j.wait_state({State.SECOND_CHECK}, 10)
    stack.camera.show_nothing()
    j.type(c.account_digits)
    j.type(c.mobile_digits)
    j.wait_state({State.AMOUNT}, 10)
    assert 1500 not in j.snapshot.presets and j.snapshot.max_amount == 1000
    n = len(j.records)
    j.type("1500")
    _wait(lambda: j.snapshot.guidance is not None)
    snap = j.snapshot
    assert snap.state is State.AMOUNT and snap.guidance is not None and "limit" in snap.guidance["en"]
    j.cancel()
    assert j.wait_records(n + 1, 10)[n].outcome == "cancelled"
    # The daily limit is the bank's: 1000 + 1000 are paid, the next 100 is declined.
    before = _board(stack)
    assert stack.withdraw(c, 1000).outcome == "paid"
    assert stack.withdraw(c, 1000).outcome == "paid"
    rec = stack.withdraw(c, 100)
    assert rec.outcome == "limit" and rec.reason == "LIMIT_DAILY" and rec.txid == "", rec
    after = _board(stack)
    assert after["taken"] == before["taken"] + 20  # type: ignore[operator]


def test_wrong_second_check_digits_are_declined_with_nothing_paid(stack: LocalStack) -> None:
    before = _board(stack)
    c = stack.customers[4]
    wrong = "9999" if c.account_digits != "9999" else "1111"
    rec = stack.withdraw(c, 200, account_digits=wrong)
    assert rec.outcome == "identity_failed" and rec.reason == "SECOND_CHECK_FAILED", rec
    assert rec.txid == "" and _board(stack) == before


def test_dispenser_jam_reverses_goes_out_of_service_and_recovers(
    stack: LocalStack, fleet: FleetListener
) -> None:
    assert stack.board is not None and stack.journey is not None
    j = stack.journey
    before = _board(stack)
    stack.board.mech.faults.jam_on_sensor = 1
    rec = stack.withdraw(stack.customers[5], 300)
    assert rec.outcome in ("dispenser_fault", "suspect"), rec
    assert _board(stack)["taken"] == before["taken"]  # nothing reached the customer
    snap = j.wait_state({State.OUT_OF_SERVICE}, 10)
    assert "dispenser_fault" in snap.causes
    _wait(lambda: any("dispenser_fault" in str(e["detail"]) for e in fleet.events("out_of_service")))
    stack.board.mech.clear_jam()  # the technician frees the note; the ATM resets and comes back by itself
    j.wait_state({State.IDLE}, 20)
    assert stack.wait_txn_state(rec.txid, {"reversed"}, 15) == "reversed"
    assert ("reverse", "customer:5005", 300) in stack.ledger(rec.txid)
    after = _board(stack)
    assert after["taken"] == before["taken"] and after["in_path"] == 0 and after["stacker"] == 0
    assert stack.board.mech.total() == sum(stack.opt.load)


def test_bank_unreachable_pays_nothing_and_service_comes_back(stack: LocalStack) -> None:
    assert stack.broker is not None and stack.journey is not None
    j = stack.journey
    c = stack.customers[6]
    before = _board(stack)

    def cut(state: State) -> None:
        if state is State.AMOUNT:
            assert stack.broker is not None
            stack.broker.stop()  # the bank goes away after the customer identified themselves

    rec = stack.withdraw(c, 200, on_state=cut)
    assert rec.outcome == "bank_unreachable" and rec.txid == "", rec
    assert _board(stack) == before
    snap = j.wait_state({State.OUT_OF_SERVICE}, 10)
    assert "bank_unreachable" in snap.causes
    stack.broker.start()
    j.wait_state({State.IDLE}, 30)
    rec = stack.withdraw(c, 200)
    assert rec.outcome == "paid", rec
