"""DISPENSE and PRESENT: pay an approved transaction once and judge it by the MCU's report."""

from atm_msg.schemas import AuthResponse
from atm_wire import messages as m

from atm_host.link.errors import LinkError
from atm_host.link.results import Report

from .core import log
from .records import Ctx, NotStarted
from .report import ReportMixin
from .states import State


class PayMixin(ReportMixin):
    """Dispenses once, presents, waits for the customer, reports."""

    def _pay(self, ctx: Ctx, resp: AuthResponse) -> tuple[str, str]:
        assert resp.txid is not None and resp.dispense_token is not None
        t = self.cfg.timeouts
        ctx.txid = resp.txid
        ctx.notes = tuple(resp.notes or ())
        txid = bytes.fromhex(resp.txid)
        self.pending.add(resp.txid)
        self._notes_in_flight = sum(ctx.notes)
        failure = ""
        self._enter(State.DISPENSE, amount=resp.amount_yuan, notes=sum(ctx.notes), txid=resp.txid)
        with self.dispenser.event_queue() as events:
            try:
                self.dispenser.dispense(bytes.fromhex(resp.dispense_token))  # deadline grows with the notes
                ctx.timings.mark("stacked", self.clock())
                self._enter(State.PRESENT)
                ctx.presented = self.dispenser.present(txid)
                ctx.timings.mark("presented", self.clock())
                wait = self.cfg.retract_timeout_ms / 1000.0 + t.take_margin_s
                events.wait_for(["items_taken", "items_retracted"], txid=txid, timeout=wait)
            except LinkError as exc:  # never re-send the dispense: the report says what happened
                failure = str(exc)
                log.error("dispenser failed in %s: %s", self._state, exc)
                self.counters["faults"] += 1
                self.bank.send_event("dispenser_fault", "alarm", {"txid": resp.txid, "error": failure[:100]})
        self._enter(State.REPORT)
        report = self._final_report(txid, in_journey=True)
        if report is None:
            return "suspect", failure or "no final report from the dispenser"
        if isinstance(report, NotStarted):
            self._not_started(resp.txid, failure)
            return "dispenser_fault", failure or "the dispenser did not start the transaction"
        self.bank.send_report(resp.txid, report.raw)
        self.pending.remove(resp.txid)
        ctx.presented, ctx.retracted = report.presented, report.retracted
        self._wait_result(ctx)
        outcome, reason = judge(report, failure)
        if outcome in ("paid", "retracted"):
            self.counters[outcome] += 1
        return outcome, reason


def judge(report: Report, failure: str) -> tuple[str, str]:
    """The customer's outcome from the MCU's final report (and the dispenser error text, if any)."""
    # Unknown first: the bank marks such a report suspect, so the customer must not read "not charged".
    unknown = m.UNKNOWN_COUNT in (report.presented, report.retracted)
    if unknown or report.present_status == m.PRESENT_UNKNOWN:
        return "suspect", failure or "present status unknown"
    if report.presented == 0 or report.present_status == m.PRESENT_NOT_PRESENTED:
        return "dispenser_fault", failure or "not presented"
    if report.retracted >= report.presented:
        return "retracted", "not taken"
    if report.retracted:
        return "partial", f"{report.retracted} notes retracted"
    return "paid", ""
