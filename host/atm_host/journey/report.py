"""REPORT and recovery: the MCU's signed final report, pending transactions, the bank's result."""

import time

from atm_wire import messages as m

from atm_host.link.errors import CommandFailed, CommandRejected, LinkError
from atm_host.link.results import Report

from .core import LINK_LOST, JourneyCore, log
from .records import NOT_STARTED, Ctx, NotStarted


class ReportMixin(JourneyCore):
    """Reads the MCU's final report (finishing an open transaction first) and settles pending ones."""

    def _final_report(self, txid: bytes, *, in_journey: bool) -> Report | NotStarted | None:
        """The MCU's signed final report, finishing a faulted or stacked transaction first (reset).

        In the journey, notes still presented after the take wait are retracted, and errors are retried
        three times. Between journeys (pending recovery, every health check) nothing waits: presented
        notes are left to the MCU's retract timer or the customer, a fault to the health check's reset,
        a moving transaction and any error to the next check.
        NOT_STARTED: the MCU's journal does not know the txid even after its nonce was burnt (GET_NONCE
        is refused BUSY while a DISPENSE is queued or running, and a token for a burnt nonce never
        verifies). None: not readable now (the txid stays pending).
        """
        burnt = False
        for attempt in range(3):
            try:
                rep = self.dispenser.get_report(txid)  # every deadline here is the link table's
                if rep.final:
                    return rep
                if not self._finish_open(txid, attempt, in_journey=in_journey):
                    return None
                continue
            except (CommandFailed, CommandRejected) as exc:
                if exc.code == m.UNKNOWN_TRANSACTION:
                    if burnt:
                        return NOT_STARTED
                    burnt = self._burn_nonce(txid)
                    if burnt:
                        continue
                else:
                    log.warning("report for %s not readable yet: %s", txid.hex(), exc)
            except LINK_LOST as exc:
                log.warning("report for %s: dispenser link lost: %s", txid.hex(), exc)
                return None  # no point asking a port that is gone; pending recovery asks again
            except LinkError as exc:
                log.warning("report for %s not readable yet: %s", txid.hex(), exc)
            if not in_journey:
                return None  # between journeys nothing waits: the next health check asks again
            self._sleep(0.5)
        return None

    def _finish_open(self, txid: bytes, attempt: int, *, in_journey: bool) -> bool:
        """Move an unfinished transaction towards its final report; False: leave it for later."""
        st = self.dispenser.status()
        if st.state == m.STATE_PRESENTED:
            if not in_journey:
                return False  # the MCU's retract timer or the customer finishes it
            self.dispenser.retract(txid)
        elif st.state == m.STATE_STACKED or (st.state == m.STATE_FAULT and in_journey):
            self.dispenser.reset()  # stacker and path go to the reject bin
        elif not in_journey:
            return False
        elif attempt:
            self.dispenser.reset()
        return True

    def _burn_nonce(self, txid: bytes) -> bool:
        """Burn the nonce the token was made for: a DISPENSE not begun by now never can be."""
        try:
            self.dispenser.get_nonce()
        except LinkError as burn:
            log.warning("report for %s unknown; nonce not burnt: %s", txid.hex(), burn)
            return False
        return True

    def _not_started(self, txid: str, error: str) -> None:
        """Nothing moved and nothing can: the bank is told (its hold becomes suspect), pending dropped."""
        log.warning("transaction %s was never started by the dispenser", txid)
        self.bank.send_abandon(request_id=None, txid=txid, reason="not_started", detail=error)
        self.pending.remove(txid)
        self.bank.send_event("dispense_not_started", "warning", {"txid": txid, "error": error[:100]})

    def _wait_result(self, ctx: Ctx) -> None:
        deadline = time.monotonic() + self.cfg.timeouts.result_s
        with self._cond:
            while ctx.txid not in self.bank_results:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)
            ctx.bank_result = self.bank_results[ctx.txid].outcome

    def _recover_pending(self) -> None:
        """Settle transactions a crash, fault or lost link left open (the MCU kept them on flash)."""
        for txid in self.pending.all():
            rep = self._final_report(bytes.fromhex(txid), in_journey=False)
            if rep is None:
                continue
            if isinstance(rep, NotStarted):
                self._not_started(txid, "found pending")
                continue
            self.bank.send_report(txid, rep.raw)
            self.pending.remove(txid)
            log.warning("pending report %s sent: %s", txid, rep.present_status_name)
            detail: dict[str, str | int] = {"txid": txid, "status": rep.present_status_name}
            detail.update(presented=rep.presented, retracted=rep.retracted, rejected=rep.rejected)
            self.bank.send_event("pending_report_sent", "info", detail)
