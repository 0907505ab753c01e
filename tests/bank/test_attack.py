"""The 1-won lesson: a scripted 100,000-attempt attack gets at most the configured attempts and no money."""

import os
import time
from pathlib import Path

from atm_bank import ledger
from atm_bank.config import BankConfig
from atm_bank.db import Cursor, SqliteDatabase
from atm_msg.reasons import Reason

from .helpers import MODEL, make_world

ATTEMPTS = 100_000


def test_scripted_100k_attack(tmp_path: Path) -> None:
    sqlite_db = SqliteDatabase(tmp_path / "bank.db", "NORMAL")  # the bulk: no fsync per attempt
    cfg = BankConfig.model_validate(
        {"face": {"thresholds": {MODEL: 0.6}}, "abuse": {"max_attempts_atm_day": 10**9}}
    )
    w = make_world(sqlite_db, cfg, n_atms=3, n_customers=2)
    victim = next(iter(w.customers.values()))
    atms = list(w.atms)
    # The attacker holds the victim's phone app (fresh tokens at will) and a replay of the victim's face,
    # and guesses the second-check digits; the right guess sits beyond what the limits can ever let through.
    right = victim.account_number[-4:]
    reached: list[int] = []
    reasons: dict[str, int] = {}
    base = w.request(atms[0], victim, 100)
    tokens: list[str] = []
    start = time.perf_counter()
    step = 6.0  # 100,000 attempts over about a week, like the Korean script
    for i in range(ATTEMPTS):
        w.clock.advance(step)
        if i % 10 == 0:  # the app hands out a new token whenever asked; each lives 90 s
            tokens = [w.token(victim)]
        guess = f"{i % 10000:04d}"
        if guess == right:
            guess = f"{(int(right) + 1) % 10000:04d}"
        atm = atms[i % len(atms)]
        req = base.model_copy(
            update={
                "request_id": os.urandom(16).hex(),
                "atm_id": atm,
                "device_id": w.atms[atm][0].hex(),
                "qr_token": tokens[i % len(tokens)],
                "account_digits": guess,
                "ts_ms": int(w.clock() * 1000),
            }
        )
        r = w.bank.authorize(req, atm).response
        reasons[str(r.reason)] = reasons.get(str(r.reason), 0) + 1
        if r.reason in (Reason.SECOND_CHECK_FAILED, Reason.FACE_MISMATCH, None):
            reached.append(i)
        assert r.decision == "decline"
    elapsed = time.perf_counter() - start
    days = int(ATTEMPTS * step / 86400) + 2
    bound = cfg.abuse.max_attempts_customer_day * days
    print(
        f"\n{ATTEMPTS} attempts in {elapsed:.1f} s; reached verification {len(reached)} "
        f"(bound {bound}); {reasons}"
    )
    assert 0 < len(reached) <= bound
    assert reasons.get(Reason.LOCKED_OUT.value, 0) > 0 and reasons.get(Reason.TOO_FREQUENT.value, 0) > 0

    def fn(cur: Cursor) -> tuple[int, int, int]:
        txns = cur.one("SELECT COUNT(*) FROM txns")
        journal = cur.one("SELECT COUNT(*) FROM journal")
        alarms = cur.one("SELECT COUNT(*) FROM alarms WHERE subject = ?", (str(victim.customer_id),))
        assert txns and journal and alarms
        return int(txns[0]), int(journal[0]), int(alarms[0])

    txns, journal, alarms = w.db.run(fn)
    assert (txns, journal) == (0, 0)  # nothing paid, nothing reserved
    assert alarms >= 1  # the console heard about it

    def bal(cur: Cursor) -> dict[str, int]:
        return ledger.balances(cur)

    assert w.db.run(bal) == {}
