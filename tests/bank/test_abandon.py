"""An ATM gives up (authorization unanswered, dispense never begun): the bank is told, never reverses."""

import pytest
from atm_bank import ledger
from atm_bank.db import Cursor, Database
from atm_msg.reasons import Reason
from atm_msg.schemas import TxnAbandon, TxnReport
from atm_wire.messages import PRESENT_NOT_PRESENTED
from pydantic import ValidationError

from .helpers import make_world
from .scenarios import A1, A2


def _gave_up(atm: str, *, request_id: str | None = None, txid: str | None = None) -> TxnAbandon:
    reason = "not_started" if txid else "auth_timeout"
    return TxnAbandon(atm_id=atm, request_id=request_id, txid=txid, reason=reason, detail="test", ts_ms=0)


def _state(db: Database, txid: str) -> tuple[str, dict[str, int], list[str]]:
    def fn(cur: Cursor) -> tuple[str, dict[str, int], list[str]]:
        row = cur.one("SELECT state FROM txns WHERE txid=?", (txid,))
        return (str(row[0]) if row else "none"), ledger.balances(cur), ledger.check_balanced(cur)

    return db.run(fn)


def test_an_undecided_request_is_closed_before_it_arrives(any_db: Database) -> None:
    w = make_world(any_db)
    c = next(iter(w.customers.values()))
    req = w.request(A1, c, 100)
    assert w.settler.abandon(_gave_up(A1, request_id=req.request_id), A1) is None
    late = w.bank.authorize(req, A1)  # the request was still queued somewhere: it reserves nothing
    assert late.response.decision == "decline" and late.response.reason is Reason.STALE_REQUEST
    assert not late.fresh
    again = w.request(A1, c, 100, token=req.qr_token)  # the customer's token was never spent
    assert w.bank.authorize(again, A1).response.decision == "approve"


def test_an_approved_reservation_is_parked_as_suspect_and_settled_by_the_report(any_db: Database) -> None:
    w = make_world(any_db)
    c = next(iter(w.customers.values()))
    req = w.request(A1, c, 300)
    d = w.bank.authorize(req, A1)
    txid = d.response.txid
    assert d.response.decision == "approve" and txid
    res = w.settler.abandon(_gave_up(A1, request_id=req.request_id), A1)
    assert res is not None and res.outcome == "suspect" and res.txid == txid
    state, balances, problems = _state(any_db, txid)
    assert state == "suspect" and problems == []
    assert balances[f"suspense:{A1}"] == 300 and balances[f"hold:{c.account_id}"] == 0
    # Repeated (the outbox re-sent it): nothing moves twice.
    again = w.settler.abandon(_gave_up(A1, txid=txid), A1)
    assert again is not None and again.outcome == "suspect"
    assert _state(any_db, txid)[1] == balances
    # The MCU's signed report arrives after all ("not presented"): the suspense goes back to the customer.
    raw = w.report(A1, txid, req.command_nonce, [0, 0, 0, 0], presented=0, status=PRESENT_NOT_PRESENTED)
    settled = w.settler.settle(TxnReport(atm_id=A1, txid=txid, report=raw.hex(), ts_ms=0), A1)
    assert settled.outcome == "reversed"
    state, balances, problems = _state(any_db, txid)
    assert state == "reversed" and problems == [] and balances[f"suspense:{A1}"] == 0


def test_a_paid_transaction_or_another_atms_is_left_alone(any_db: Database) -> None:
    w = make_world(any_db)
    c = next(iter(w.customers.values()))
    req = w.request(A1, c, 100)
    txid = w.bank.authorize(req, A1).response.txid
    assert txid
    raw = w.report(A1, txid, req.command_nonce, [1, 0, 0, 0])
    assert (
        w.settler.settle(TxnReport(atm_id=A1, txid=txid, report=raw.hex(), ts_ms=0), A1).outcome == "debited"
    )
    res = w.settler.abandon(_gave_up(A1, txid=txid), A1)  # a host that lies about a paid withdrawal
    assert res is not None and res.outcome == "debited" and _state(any_db, txid)[0] == "debited"
    other = w.request(A1, list(w.customers.values())[1], 100)
    t2 = w.bank.authorize(other, A1).response.txid
    assert t2
    assert w.settler.abandon(_gave_up(A2, txid=t2), A2) is None  # ATM0002 cannot touch ATM0001's
    assert _state(any_db, t2)[0] == "reserved"


def test_an_abandon_must_name_something() -> None:
    with pytest.raises(ValidationError):
        TxnAbandon(atm_id=A1, reason="auth_timeout", ts_ms=0)
