"""Settlement on SQLite and PostgreSQL: debit at the signed report, reversal, suspect and reconciliation."""

from typing import Any

import pytest
from atm_bank import ledger
from atm_bank.db import Cursor, Database
from atm_bank.errors import StoreError
from atm_msg.schemas import AuthResponse, TxnReport
from atm_wire.messages import PRESENT_NOT_PRESENTED, PRESENT_UNKNOWN, REPORT_FLAG_FINAL, UNKNOWN_COUNT

from .helpers import World, make_world
from .scenarios import A1, A2


def _approve(w: World, amount: int = 380) -> tuple[AuthResponse, str]:
    c = next(iter(w.customers.values()))
    req = w.request(A1, c, amount)
    r = w.bank.authorize(req, A1).response
    assert r.decision == "approve" and r.txid and r.notes
    return r, req.command_nonce


def _settle(w: World, r: AuthResponse, report: bytes, atm: str = A1) -> str:
    assert r.txid
    return w.settler.settle(TxnReport(atm_id=atm, txid=r.txid, report=report.hex(), ts_ms=0), atm).outcome


def _balances(w: World) -> dict[str, int]:
    def fn(cur: Cursor) -> dict[str, int]:
        return {k: v for k, v in ledger.balances(cur).items() if v}

    return w.db.run(fn)


def _check(w: World) -> None:
    def fn(cur: Cursor) -> list[str]:
        return ledger.check_balanced(cur)

    assert w.db.run(fn) == []


def test_debit_once_at_the_signed_report(any_db: Database) -> None:
    w = make_world(any_db)
    r, nonce = _approve(w)
    assert r.txid and r.notes
    report = w.report(A1, r.txid, nonce, r.notes)
    assert _settle(w, r, report) == "debited"
    assert _settle(w, r, report) == "debited"  # duplicate delivery: nothing moves again
    acct = next(iter(w.customers.values())).account_id
    assert _balances(w) == {f"customer:{acct}": -380, f"cash_paid:{A1}": 380}
    _check(w)


@pytest.mark.parametrize(
    ("kw", "outcome"),
    [
        ({"presented": 0, "status": PRESENT_NOT_PRESENTED}, "reversed"),
        ({"retracted": 6}, "reversed"),
        ({"status": PRESENT_UNKNOWN}, "suspect"),
        ({"presented": UNKNOWN_COUNT}, "suspect"),
        ({"retracted": 2}, "suspect"),
        ({"flags": 0}, "pending"),
    ],
)
def test_report_outcomes(world: World, kw: dict[str, Any], outcome: str) -> None:
    r, nonce = _approve(world)
    assert r.txid and r.notes == [3, 1, 1, 1]
    assert _settle(world, r, world.report(A1, r.txid, nonce, r.notes or [], **kw)) == outcome
    _check(world)


def test_forged_or_misdirected_reports_change_nothing(world: World) -> None:
    r, nonce = _approve(world)
    assert r.txid and r.notes
    assert _settle(world, r, world.report(A1, r.txid, nonce, r.notes, key=b"\1" * 32)) == "rejected"
    assert _settle(world, r, world.report(A1, r.txid, "00" * 16, r.notes)) == "rejected"
    assert _settle(world, r, world.report(A1, r.txid, nonce, r.notes), atm=A2) == "rejected"
    assert _settle(world, r, world.report(A1, r.txid, nonce, [9, 9, 9, 9])) == "suspect"  # more than signed


def test_suspect_settled_by_report_or_reconciliation(any_db: Database) -> None:
    w = make_world(any_db)
    r, nonce = _approve(w)
    assert r.txid and r.notes
    assert _settle(w, r, w.report(A1, r.txid, nonce, r.notes, status=PRESENT_UNKNOWN)) == "suspect"
    assert _settle(w, r, w.report(A1, r.txid, nonce, r.notes, flags=REPORT_FLAG_FINAL)) == "debited"
    r2, _ = _approve_later(w)
    assert r2.txid
    w.clock.advance(7 * 3600)
    assert w.settler.expire_reservations(6 * 3600) == [r2.txid]
    with pytest.raises(StoreError):
        w.settler.reconcile(r2.txid, 10_000)
    assert w.settler.reconcile(r2.txid, 0).outcome == "reversed"
    with pytest.raises(StoreError):
        w.settler.reconcile(r2.txid, 0)
    _check(w)
    acct = next(iter(w.customers.values())).account_id
    assert _balances(w) == {f"customer:{acct}": -380, f"cash_paid:{A1}": 380}


def _approve_later(w: World) -> tuple[AuthResponse, str]:
    w.clock.advance(20)
    return _approve(w, 200)
