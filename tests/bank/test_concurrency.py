"""Races on both backends: concurrent connections never pay past a limit, settle twice or lose a report."""

import threading
from collections.abc import Callable
from typing import TypeVar

from atm_bank import ledger
from atm_bank.config import BankConfig
from atm_bank.core import Bank, Decision
from atm_bank.db import Cursor, Database, PostgresDatabase, SqliteDatabase, open_database
from atm_bank.settle import Settler
from atm_msg.reasons import Reason
from atm_msg.schemas import TxnReport, TxnResult

from .helpers import MODEL, World, make_world
from .scenarios import A1

T = TypeVar("T")
THREADS = 8


def _reopen(db: Database) -> Database:
    """Another connection to the same database (as another worker process would hold)."""
    if isinstance(db, SqliteDatabase):
        return SqliteDatabase(db.path)
    assert isinstance(db, PostgresDatabase)
    return open_database(db.dsn)


def _race(db: Database, n: int, body: Callable[[Database, int], T]) -> list[T]:
    """Run body(connection, i) on n threads with their own connections, released at the same instant."""
    conns = [_reopen(db) for _ in range(n)]
    start = threading.Barrier(n)
    out: list[T | None] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            start.wait(10)
            out[i] = body(conns[i], i)
        except BaseException as exc:  # surfaced below, with the thread's own traceback
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for c in conns:
        c.close()
    if errors:
        raise errors[0]
    assert all(r is not None for r in out)
    return [r for r in out if r is not None]


def _config(per_day: int, per_account: int) -> BankConfig:
    return BankConfig.model_validate(
        {
            "face": {"thresholds": {MODEL: 0.6}},
            "abuse": {
                "min_interval_s": 0,
                "max_attempts_customer_day": 1000,
                "max_attempts_account_day": 1000,
                "max_attempts_atm_day": 1000,
            },
            "limits": {"per_customer_day_yuan": per_day, "per_account_total_yuan": per_account},
        }
    )


def _bank_on(w: World, conn: Database) -> Bank:
    return Bank(conn, w.cfg, w.bank.token_keys, w.clock)


def _limit_race(any_db: Database, per_day: int, per_account: int) -> None:
    w = make_world(any_db, _config(per_day, per_account), n_atms=THREADS)
    c, other = list(w.customers.values())[:2]
    atms = sorted(w.atms)
    # Each connection sends a batch as a worker would, from its own ATM: one 500-yuan request of the same
    # customer (a fresh token each: several phones, or a scripted attacker), then another customer's.
    batches = [[(w.request(atm, c, 500), atm), (w.request(atm, other, 100), atm)] for atm in atms[:THREADS]]

    def body(conn: Database, i: int) -> list[Decision | Exception]:
        return _bank_on(w, conn).authorize_many(batches[i])

    results = _race(any_db, THREADS, body)
    mine = [r[0] for r in results]
    assert all(isinstance(d, Decision) for d in mine)
    approved = [d for d in mine if isinstance(d, Decision) and d.response.decision == "approve"]
    assert len(approved) == min(per_day, per_account) // 500
    declined = {d.response.reason for d in mine if isinstance(d, Decision) and d not in approved}
    assert declined == {Reason.LIMIT_DAILY if per_day <= per_account else Reason.LIMIT_ACCOUNT_TOTAL}

    def check(cur: Cursor) -> tuple[int, list[str]]:
        row = cur.one("SELECT COALESCE(SUM(amount), 0) FROM txns WHERE customer_id=?", (c.customer_id,))
        return int(row[0]) if row else 0, ledger.check_balanced(cur)

    reserved, problems = any_db.run(check)
    assert reserved == len(approved) * 500 <= min(per_day, per_account)
    assert problems == []


def test_concurrent_withdrawals_never_pass_the_daily_limit(any_db: Database) -> None:
    _limit_race(any_db, per_day=2000, per_account=50_000)


def test_concurrent_withdrawals_never_pass_the_account_total(any_db: Database) -> None:
    _limit_race(any_db, per_day=50_000, per_account=1500)


def _approved(w: World, n: int) -> list[tuple[str, str]]:
    """n approved 100-yuan withdrawals at A1: (txid, command nonce)."""
    out: list[tuple[str, str]] = []
    for i in range(n):
        c = list(w.customers.values())[i % len(w.customers)]
        req = w.request(A1, c, 100)
        d = w.bank.authorize(req, A1)
        assert d.response.decision == "approve" and d.response.txid
        out.append((d.response.txid, req.command_nonce))
    return out


def test_one_report_delivered_to_every_worker_debits_once(any_db: Database) -> None:
    cfg = _config(50_000, 50_000)
    w = make_world(any_db, cfg)
    ((txid, nonce),) = _approved(w, 1)
    raw = w.report(A1, txid, nonce, [1, 0, 0, 0]).hex()

    def body(conn: Database, i: int) -> TxnResult:
        return Settler(conn, w.clock).settle(
            TxnReport(atm_id=A1, txid=txid, report=raw, ts_ms=int(w.clock() * 1000)), A1
        )

    results = _race(any_db, THREADS, body)
    assert {r.outcome for r in results} == {"debited"}

    def check(cur: Cursor) -> tuple[int, list[str]]:
        row = cur.one("SELECT COUNT(*) FROM journal WHERE txid=? AND kind='debit'", (txid,))
        return int(row[0]) if row else 0, ledger.check_balanced(cur)

    assert any_db.run(check) == (2, [])  # one entry of two legs


def test_expiry_racing_the_reports_moves_each_reservation_once(any_db: Database) -> None:
    w = make_world(any_db, _config(50_000, 50_000), n_customers=3)
    txns = _approved(w, 6)
    reports = [
        TxnReport(atm_id=A1, txid=t, report=w.report(A1, t, n, [1, 0, 0, 0]).hex(), ts_ms=0) for t, n in txns
    ]

    def body(conn: Database, i: int) -> list[str]:
        settler = Settler(conn, w.clock)
        if i == 0:  # the janitor: every reservation is "too old"
            return settler.expire_reservations(older_than_s=-1)
        return [settler.settle(r, A1).outcome for r in reports[i - 1 :: 3]]

    _race(any_db, 4, body)

    def check(cur: Cursor) -> tuple[set[str], dict[str, int], list[str]]:
        states = {str(r[0]) for r in cur.q("SELECT state FROM txns")}
        return states, ledger.balances(cur), ledger.check_balanced(cur)

    states, balances, problems = any_db.run(check)
    assert problems == []
    assert states == {"debited"}  # reported directly, or parked as suspect and then settled by its report
    assert balances.get(f"cash_paid:{A1}") == 600
    assert all(v == 0 for k, v in balances.items() if k.startswith(("hold:", "suspense:")))


def test_one_token_raced_from_every_atm_pays_once(any_db: Database) -> None:
    """The phone's token copied to 8 ATMs at the same instant: one approval, the rest TOKEN_REPLAYED.

    The nonce check reads the snapshot (atm_bank.snapshot) under the customer's lock: the second
    transaction's read waits for the first to commit and sees its nonce.
    """
    w = make_world(any_db, _config(50_000, 50_000), n_atms=THREADS)
    c = next(iter(w.customers.values()))
    token = w.token(c)
    atms = sorted(w.atms)
    reqs = [(w.request(atm, c, 100, token=token), atm) for atm in atms]

    def body(conn: Database, i: int) -> list[Decision | Exception]:
        return _bank_on(w, conn).authorize_many([reqs[i]])

    results = [r[0] for r in _race(any_db, THREADS, body)]
    decisions = [d for d in results if isinstance(d, Decision)]
    assert len(decisions) == THREADS
    assert sorted(d.response.reason.value if d.response.reason else "approve" for d in decisions) == [
        "TOKEN_REPLAYED"
    ] * (THREADS - 1) + ["approve"]

    def check(cur: Cursor) -> tuple[int, int, list[str]]:
        nonces = cur.one("SELECT COUNT(*) FROM used_nonces")
        txns = cur.one("SELECT COUNT(*) FROM txns")
        return int(nonces[0]) if nonces else -1, int(txns[0]) if txns else -1, ledger.check_balanced(cur)

    assert any_db.run(check) == (1, 1, [])
