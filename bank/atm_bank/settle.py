"""Settlement: the MCU's signed present report debits, reverses or parks a reservation; reconciliation."""

import hmac
import json
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from atm_msg.reasons import Reason
from atm_msg.schemas import TxnAbandon, TxnReport, TxnResult
from atm_wire.auth import REPORT_SIZE, verify_report
from atm_wire.messages import (
    PRESENT_NOT_PRESENTED,
    PRESENT_PRESENTED,
    REPORT_FLAG_FINAL,
    REPORT_FMT,
    UNKNOWN_COUNT,
)

from . import ledger
from .core import Clock, decline, store_answer
from .db import Cursor, Database
from .errors import StoreError
from .registry import load_atm


@dataclass(frozen=True)
class Report:
    """A decoded MCU present-status report."""

    device_id: bytes
    txid: bytes
    nonce: bytes
    stacked: list[int]
    presented: int
    retracted: int
    rejected: int
    status: int
    flags: int


def decode_report(raw: bytes) -> Report:
    """Unpack REPORT_FMT (the caller checks the MAC)."""
    f = struct.unpack(REPORT_FMT, raw)
    return Report(f[0], f[1], f[2], [f[3], f[4], f[5], f[6]], f[7], f[8], f[9], f[10], f[11])


def outcome_of(rep: Report, denominations: list[int], notes: list[int], amount: int) -> tuple[str, int]:
    """('debited', paid) / ('reversed', 0) / ('suspect', 0) from the report's counts and status."""
    counts = [*rep.stacked, rep.presented, rep.retracted]
    if rep.status == PRESENT_NOT_PRESENTED:
        return "reversed", 0
    if rep.status != PRESENT_PRESENTED or UNKNOWN_COUNT in counts:
        return "suspect", 0
    if any(s > n for s, n in zip(rep.stacked, notes, strict=True)):
        return "suspect", 0  # more notes than the bank signed for: never debit blindly
    stacked_total = sum(rep.stacked)
    paid = sum(s * d for s, d in zip(rep.stacked, denominations, strict=True))
    if rep.retracted == 0 and rep.presented == stacked_total and paid <= amount:
        return ("debited", paid) if paid > 0 else ("reversed", 0)
    if rep.retracted >= rep.presented:
        return "reversed", 0
    return "suspect", 0  # partial retract: which notes stayed is unknown


class Settler:
    """Applies reports, abandons and operator reconciliations to the ledger, once per transaction."""

    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self.db = db
        self.clock = clock

    def settle(self, msg: TxnReport, topic_atm: str) -> TxnResult:
        """Apply one report in its own transaction."""
        return self.db.run(self.settler(msg, topic_atm), self.locks_for(msg, topic_atm))

    @staticmethod
    def locks_for(msg: TxnReport, topic_atm: str) -> list[str]:
        """The subjects a settlement changes: the transaction (its row and its ledger entries)."""
        return [f"txn:{msg.txid}"]

    def settler(self, msg: TxnReport, topic_atm: str) -> Callable[[Cursor], TxnResult]:
        """The body of one settlement, to run inside a transaction (alone or in a worker's batch)."""
        now_ms = int(self.clock() * 1000)

        def fn(cur: Cursor) -> TxnResult:
            return self._settle(cur, msg, topic_atm, now_ms)

        return fn

    def _settle(self, cur: Cursor, msg: TxnReport, topic_atm: str, now_ms: int) -> TxnResult:
        def rejected(why: str) -> TxnResult:
            return TxnResult(txid=msg.txid, outcome="rejected", detail=why)

        row = cur.one(
            "SELECT atm_id, account_id, amount, notes, command_nonce, state, debited FROM txns WHERE txid=?"
            + cur.for_update,
            (msg.txid,),
        )
        if row is None:
            return rejected("unknown transaction")
        atm_id, account_id, amount = str(row[0]), int(row[1]), int(row[2])
        notes: list[int] = [int(n) for n in json.loads(str(row[3]))]
        state, debited = str(row[5]), int(row[6])
        if atm_id != topic_atm or msg.atm_id != topic_atm:
            return rejected("report from another ATM")
        if state in ("debited", "reversed"):
            return TxnResult(txid=msg.txid, outcome=state, debited_yuan=debited)  # type: ignore[arg-type]
        atm = load_atm(cur, atm_id)
        raw = bytes.fromhex(msg.report) if len(msg.report) % 2 == 0 else b""
        if atm is None or len(raw) != REPORT_SIZE or not verify_report(atm.key, raw):
            return rejected("report MAC does not verify")
        rep = decode_report(raw)
        if (
            rep.txid.hex() != msg.txid
            or not hmac.compare_digest(rep.device_id, atm.device_id)
            or rep.nonce.hex() != str(row[4])
        ):
            return rejected("report names another transaction, device or nonce")
        if not rep.flags & REPORT_FLAG_FINAL:
            return TxnResult(txid=msg.txid, outcome="pending", detail="report not final")
        outcome, paid = outcome_of(rep, atm.denominations, notes, amount)
        if state == "suspect":
            if outcome == "suspect":
                return TxnResult(txid=msg.txid, outcome="suspect")
            ledger.settle_suspense(
                cur, msg.txid, account_id=account_id, atm_id=atm_id, amount=amount, paid=paid, now_ms=now_ms
            )
        elif outcome == "debited":
            ledger.debit(cur, msg.txid, account_id=account_id, atm_id=atm_id, amount=paid, now_ms=now_ms)
            if amount - paid:
                ledger.reverse(cur, msg.txid, account_id, amount - paid, now_ms)
        elif outcome == "reversed":
            ledger.reverse(cur, msg.txid, account_id, amount, now_ms)
        else:
            ledger.to_suspense(
                cur, msg.txid, account_id=account_id, atm_id=atm_id, amount=amount, now_ms=now_ms
            )
        cur.x(
            "UPDATE txns SET state=?, debited=?, settled_ms=?, report=? WHERE txid=?",
            (outcome, paid, now_ms, msg.report, msg.txid),
        )
        return TxnResult(txid=msg.txid, outcome=outcome, debited_yuan=paid)  # type: ignore[arg-type]

    # ----- an ATM giving up ---------------------------------------------------------------------------
    def abandon(self, msg: TxnAbandon, topic_atm: str) -> TxnResult | None:
        """Apply one abandon message in its own transaction (see abandoner)."""
        return self.db.run(self.abandoner(msg, topic_atm), self.abandon_locks(msg, topic_atm))

    @staticmethod
    def abandon_locks(msg: TxnAbandon, topic_atm: str) -> list[str]:
        """The ATM (its decisions run under atm:<id>) and the transaction, when named."""
        return [f"atm:{topic_atm}", *([f"txn:{msg.txid}"] if msg.txid else [])]

    def abandoner(self, msg: TxnAbandon, topic_atm: str) -> Callable[[Cursor], TxnResult | None]:
        """The body of an abandon: close an undecided request, park an approved reservation as suspect.

        Undecided (the request is still queued somewhere): its answer is stored now as a STALE_REQUEST
        decline, so when the request arrives it gets that answer and reserves nothing. Approved and still
        reserved: hold -> suspense, state suspect (the host's word never reverses money; reconciliation
        or the MCU's signed report settles it). Anything else (declined, debited, reversed, suspect)
        is left alone. Idempotent: a repeated abandon changes nothing. None: no transaction to report.
        """
        now_ms = int(self.clock() * 1000)

        def fn(cur: Cursor) -> TxnResult | None:
            if msg.atm_id != topic_atm:
                return None
            by, key = ("txid", msg.txid) if msg.txid else ("request_id", msg.request_id or "")
            row = cur.one(
                f"SELECT txid, atm_id, account_id, amount, state, debited FROM txns WHERE {by}=?"
                + cur.for_update,
                (key,),
            )
            if row is None:
                rid = msg.request_id
                if rid is not None and cur.one("SELECT 1 FROM requests WHERE request_id=?", (rid,)) is None:
                    store_answer(
                        cur, rid, topic_atm, decline(rid, Reason.STALE_REQUEST).model_dump_json(), now_ms
                    )
                return None
            txid, atm_id, state = str(row[0]), str(row[1]), str(row[4])
            if atm_id != topic_atm:
                return None
            if state == "reserved":
                _to_suspect(cur, txid, atm_id, int(row[2]), int(row[3]), now_ms)
                state = "suspect"
            result = {"txid": txid, "outcome": state, "debited_yuan": int(row[5])}
            return TxnResult.model_validate({**result, "detail": f"abandoned: {msg.reason}"})

        return fn

    def expire_reservations(self, older_than_s: float) -> list[str]:
        """Reservations with no final report after older_than_s become suspect (cash may have left)."""
        now_ms = int(self.clock() * 1000)
        cutoff = now_ms - int(older_than_s * 1000)
        stale = "SELECT txid, atm_id, account_id, amount FROM txns WHERE state='reserved' AND created_ms < ?"
        candidates = self.db.run(lambda cur: [str(r[0]) for r in cur.q(stale, (cutoff,))])
        if not candidates:
            return []

        def fn(cur: Cursor) -> list[str]:
            # Under the candidates' locks; the state is read again: a report may have settled one meanwhile.
            marks = ",".join("?" * len(candidates))
            rows = cur.q(f"{stale} AND txid IN ({marks}){cur.for_update}", (cutoff, *candidates))
            for txid, atm_id, account_id, amount in rows:
                _to_suspect(cur, str(txid), str(atm_id), int(account_id), int(amount), now_ms)
            return [str(r[0]) for r in rows]

        return self.db.run(fn, [f"txn:{txid}" for txid in candidates])

    def reconcile(self, txid: str, paid_yuan: int) -> TxnResult:
        """Operator settlement of a suspect transaction from the cash count / device journal."""
        now_ms = int(self.clock() * 1000)

        def fn(cur: Cursor) -> TxnResult:
            row = cur.one(
                "SELECT atm_id, account_id, amount, state FROM txns WHERE txid=?" + cur.for_update, (txid,)
            )
            if row is None or str(row[3]) != "suspect":
                raise StoreError(f"transaction {txid} is not suspect")
            amount = int(row[2])
            if not 0 <= paid_yuan <= amount:
                raise StoreError(f"paid {paid_yuan} outside 0..{amount}")
            ledger.settle_suspense(
                cur,
                txid,
                account_id=int(row[1]),
                atm_id=str(row[0]),
                amount=amount,
                paid=paid_yuan,
                now_ms=now_ms,
            )
            outcome = "debited" if paid_yuan else "reversed"
            cur.x(
                "UPDATE txns SET state=?, debited=?, settled_ms=? WHERE txid=?",
                (outcome, paid_yuan, now_ms, txid),
            )
            return TxnResult(txid=txid, outcome=outcome, debited_yuan=paid_yuan)

        return self.db.run(fn, [f"txn:{txid}"])


def _to_suspect(cur: Cursor, txid: str, atm_id: str, account_id: int, amount: int, now_ms: int) -> None:
    """A reservation nobody can vouch for: hold -> suspense, state suspect (reconciliation settles it)."""
    ledger.to_suspense(cur, txid, account_id=account_id, atm_id=atm_id, amount=amount, now_ms=now_ms)
    cur.x("UPDATE txns SET state='suspect', settled_ms=? WHERE txid=?", (now_ms, txid))
