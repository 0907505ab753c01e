"""The journey state machine: one customer at a time from the phone's QR to the MCU's signed report.

Runs in one thread. The screen and tests talk to it only through `key()`, `cancel()` and snapshots;
devices are behind the small interfaces in `ports.py`. Money rules kept here:
- no dispense without the bank's approval, and the token is the bank's (the MCU checks it);
- a dispense is sent once: after any dispenser error the journey reads the MCU's report, never resends;
- every approved transaction ends with the MCU's signed report in the outbox (debit, reversal or
  suspect at the bank), or, if the report cannot be read, stays pending and the ATM goes out of service.

One class assembled from one module per state section (each small, with its own purpose):
core, idle, face, keypad, authorize, pay, report, health, link_health; records keeps what a journey leaves.
"""

import threading
import time
from collections.abc import Callable
from pathlib import Path

from atm_host.banklink.errors import OfflineCheckError
from atm_host.banklink.offline import check_token
from atm_host.link.errors import LinkError

from . import messages as msg
from .authorize import AuthorizeMixin
from .config import JourneyConfig
from .core import QR_PREFIX, TEMPLATE_VERSION, log
from .errors import Cancelled, Refused, StepTimeout
from .face import FaceMixin
from .health import HealthMixin
from .idle import IdleMixin
from .keypad import KeypadMixin
from .pay import PayMixin
from .ports import Bank, Camera, Dispenser, FacePipe
from .records import NOT_STARTED, Ctx, JourneyRecord, PendingReports
from .states import State, Timings

__all__ = ["NOT_STARTED", "QR_PREFIX", "TEMPLATE_VERSION", "Journey", "JourneyRecord", "PendingReports"]


class Journey(HealthMixin, IdleMixin, FaceMixin, KeypadMixin, AuthorizeMixin, PayMixin):
    """The ATM's customer journey. `start()` runs it in a thread; `stop()` ends it."""

    def __init__(
        self,
        config: JourneyConfig,
        camera: Camera,
        dispenser: Dispenser,
        bank: Bank,
        pipeline: FacePipe,
        *,
        pending_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            config, camera, dispenser, bank, pipeline, pending_path=pending_path, clock=clock, wall=wall
        )
        bank.on_command = self._on_command
        bank.on_txn_result = self._on_txn_result

    def start(self) -> None:
        """Run the journey loop in a daemon thread (a dispenser not answering yet is configured later)."""
        try:
            self._sync_dispenser()
        except LinkError as exc:
            log.warning("dispenser not ready at start (%s): configured when it answers", exc)
        self._thread = threading.Thread(target=self.run, name="journey", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._cancel.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def run(self) -> None:
        """Health check, idle scan for a QR, one journey; repeat until stopped."""
        self._recover_pending()
        while not self._stop.is_set():
            try:
                causes = self.health()
                self._telemetry(causes)
                if causes:
                    self._out_of_service(causes)
                    continue
                if self._causes:
                    self.bank.send_event("in_service", "info", {"after": ",".join(self._causes)})
                    self._causes = ()
                found = self._idle_scan()
                if found is not None:
                    self._journey(*found)
            except Exception:  # the loop must survive anything; the next health check decides
                log.exception("journey loop error")
                self._unwedge()
                self._sleep(self.cfg.timeouts.idle_check_s)

    def _unwedge(self) -> None:
        """After an unexpected error, leave a journey state by allowed transitions (else nothing moves)."""
        try:
            if self._state in (State.DISPENSE, State.PRESENT):
                self._enter(State.REPORT)
            if self._state not in (State.IDLE, State.OUT_OF_SERVICE, State.END):
                self._enter(
                    State.END, outcome="out_of_service", outcome_text=msg.outcome("out_of_service").as_dict()
                )
        except Exception:
            log.exception("could not leave %s", self._state)

    def _journey(self, qr_text: str, seen: float, decoded: float) -> None:
        ctx = Ctx(qr_text, Timings())
        ctx.timings.mark("qr_seen", seen)
        ctx.timings.mark("qr_decoded", decoded)
        self._cancel.clear()
        self.counters["journeys"] += 1
        try:
            outcome, reason = self._steps(ctx)
        except Cancelled:
            outcome, reason = "cancelled", "cancelled"
            self.counters["cancelled"] += 1
        except StepTimeout as exc:
            outcome, reason = "timeout", exc.state
            self.counters["timeouts"] += 1
        except Refused as exc:
            outcome, reason = exc.code, exc.detail or exc.code
            self.counters["refused"] += 1
        except Exception as exc:  # a bug or a device surprise (camera gone): end the journey cleanly
            log.exception("journey failed in %s", self._state)
            self.counters["faults"] += 1
            if self._state in (State.DISPENSE, State.PRESENT):
                self._enter(State.REPORT)  # money may have moved: the pending report settles it
            outcome = "suspect" if ctx.txid else "out_of_service"
            reason = f"internal error: {type(exc).__name__}: {exc}"
        self._end(ctx, outcome, reason)

    def _steps(self, ctx: Ctx) -> tuple[str, str]:
        self._enter(State.CHECK_TOKEN)  # first: END is reachable from here, not from IDLE
        fleet = self.bank.fleet
        if fleet is None:
            return "bank_unreachable", "no fleet config"
        try:
            ctx.token = check_token(ctx.qr_text, fleet, self.wall())
        except OfflineCheckError as exc:
            code = "token_expired" if exc.reason == "TOKEN_EXPIRED" else "token_invalid"
            raise Refused(code, exc.reason) from exc
        ctx.timings.mark("token_ok", self.clock())
        self._check_deadline()
        ctx.probe = self._face(ctx)
        self._second_check(ctx, fleet)
        self._amount(ctx, fleet)
        ctx.timings.mark("inputs_done", self.clock())
        self._enter(State.NONCE)
        try:
            nonce = self.dispenser.get_nonce().nonce
        except LinkError as exc:
            self.counters["faults"] += 1
            return "dispenser_fault", f"nonce: {exc}"
        ctx.timings.mark("nonce_ok", self.clock())
        resp = self._authorize(ctx, nonce)
        if resp is None:
            return "bank_unreachable", "no answer from the bank"
        if resp.decision != "approve" or not resp.txid or not resp.dispense_token:
            self.counters["declined"] += 1
            reason = resp.reason.value if resp.reason else "DECLINED"
            return msg.DECLINE_OUTCOME.get(reason, "declined"), reason
        ctx.timings.mark("approved", self.clock())
        return self._pay(ctx, resp)

    def _end(self, ctx: Ctx, outcome: str, reason: str) -> None:
        tok = ctx.token
        record = JourneyRecord(
            outcome=outcome,
            state_at_end=self._state,
            reason=reason,
            customer_id=tok.customer_id if tok else 0,
            account_id=tok.account_id if tok else 0,
            amount=ctx.amount,
            txid=ctx.txid,
            notes=ctx.notes,
            presented=ctx.presented,
            retracted=ctx.retracted,
            bank_result=ctx.bank_result,
            timings=ctx.timings.summary(),
        )
        log.info("journey ended: %s (%s) %s", outcome, reason, record.timings)
        detail: dict[str, str | int] = {"outcome": outcome, "reason": reason[:80], "amount": ctx.amount}
        if ctx.txid:
            detail["txid"] = ctx.txid
        try:  # the outcome is shown and recorded whatever happens to the event
            self.bank.send_event("journey", "warning" if outcome in ("attack", "suspect") else "info", detail)
        except Exception:
            log.exception("journey event not sent")
        self._enter(
            State.END,
            outcome=outcome,
            outcome_text=msg.outcome(outcome).as_dict(),
            timings=record.timings,
            guidance=None,
        )
        with self._cond:
            self.records.append(record)
            self._cond.notify_all()
        self._cancel.clear()
        self._sleep(self.cfg.timeouts.outcome_s)
