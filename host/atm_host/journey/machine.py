"""The journey state machine: one customer at a time from the phone's QR to the MCU's signed report.

Runs in one thread. The screen and tests talk to it only through `key()`, `cancel()` and snapshots;
devices are behind the small interfaces in `ports.py`. Money rules kept here:
- no dispense without the bank's approval, and the token is the bank's (the MCU checks it);
- a dispense is sent once: after any dispenser error the journey reads the MCU's report, never resends;
- every approved transaction ends with the MCU's signed report in the outbox (debit, reversal or
  suspect at the bank), or, if the report cannot be read, stays pending and the ATM goes out of service.
"""

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from atm_msg import qrtoken
from atm_msg.denominate import denominate
from atm_msg.errors import MsgError
from atm_msg.schemas import AuthRequest, AuthResponse, Cassette, Command, FaceProbe, FleetConfig, TxnResult
from atm_wire import messages as m

from atm_host.banklink.errors import BankLinkError, BankTimeoutError, OfflineCheckError
from atm_host.banklink.offline import check_amount, check_token
from atm_host.link.errors import CommandFailed, CommandRejected, LinkClosed, LinkError, PortError
from atm_host.link.results import CassetteInfo, Hello, Report
from atm_host.link.timeouts import command_timeout, dispense_timeout
from atm_host.vision.challenge import Challenge, ChallengeState, random_challenge
from atm_host.vision.errors import MultipleFacesError, NoFaceError, QualityError, VisionError
from atm_host.vision.frame import Frame
from atm_host.vision.liveness import Verdict
from atm_host.vision.qr import decode

from . import messages as msg
from .config import JourneyConfig
from .errors import Cancelled, JourneyError, Refused, StepTimeout
from .ports import Bank, Camera, Dispenser, FacePipe, LinkCounters
from .states import CANCELLABLE, STEP, TRANSITIONS, Snapshot, State, Timings

log = logging.getLogger("atm_host.journey")

TEMPLATE_VERSION = 1  # face template format the bank enrols and compares (atm_bank registry)
QR_PREFIX = "ATM1:"  # phone withdrawal tokens (docs/bank.md)
SAME_TOKEN_IGNORE_S = 60.0  # a token still in view after its journey is not read again for this long
KEYS = frozenset("0123456789") | {"back", "clear", "ok"}
# Errors that mean the dispenser's port itself is gone (unplugged, re-enumerated, reader thread dead).
LINK_LOST = (PortError, LinkClosed)


class _NotStarted:
    """The MCU never began a transaction (its journal does not know the txid and the nonce is burnt)."""


NOT_STARTED = _NotStarted()


@dataclass
class JourneyRecord:
    """How one journey ended: what the tests, the bench and the demo read."""

    outcome: str
    state_at_end: State
    reason: str = ""
    customer_id: int = 0
    account_id: int = 0
    amount: int = 0
    txid: str = ""
    notes: tuple[int, ...] = ()
    presented: int = 0
    retracted: int = 0
    bank_result: str = ""
    timings: dict[str, float] = field(default_factory=dict[str, float])


@dataclass
class _Ctx:
    """State of the journey in progress."""

    qr_text: str
    timings: Timings
    token: qrtoken.WithdrawalToken | None = None
    probe: FaceProbe | None = None
    account_digits: str = ""
    mobile_digits: str = ""
    amount: int = 0
    txid: str = ""
    notes: tuple[int, ...] = ()
    presented: int = 0
    retracted: int = 0
    bank_result: str = ""


class PendingReports:
    """Transactions approved but not yet reported, on disk (atomic rename) so a restart finishes them."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._txids: set[str] = set()
        if path is not None and path.exists():
            self._txids = set(json.loads(path.read_text() or "[]"))

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as f:
            json.dump(sorted(self._txids), f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)

    def add(self, txid: str) -> None:
        with self._lock:
            self._txids.add(txid)
            self._save()

    def remove(self, txid: str) -> None:
        with self._lock:
            self._txids.discard(txid)
            self._save()

    def all(self) -> list[str]:
        with self._lock:
            return sorted(self._txids)


class Journey:
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
        self.cfg = config
        self.camera = camera
        self.dispenser = dispenser
        self.bank = bank
        self.pipe = pipeline
        self.clock = clock
        self.wall = wall
        self.pending = PendingReports(pending_path)
        self.records: list[JourneyRecord] = []
        self.counters: dict[str, int] = {
            "journeys": 0,
            "paid": 0,
            "declined": 0,
            "refused": 0,
            "attacks": 0,
            "retracted": 0,
            "cancelled": 0,
            "timeouts": 0,
            "faults": 0,
            "link_lost": 0,
            "link_restored": 0,
        }
        self.bank_results: dict[str, TxnResult] = {}
        self._cond = threading.Condition()
        self._inputs: list[str] = []
        self._cancel = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[Snapshot], None]] = []
        self._state = State.OUT_OF_SERVICE
        self._snap = Snapshot(0, State.OUT_OF_SERVICE, msg.prompt("out_of_service").as_dict())
        self._frame: Frame | None = None
        self._frame_lock = threading.Lock()
        self._operator_oos = False
        self._causes: tuple[str, ...] = ("starting",)
        self._last_reset = -1e9
        self._last_telemetry = -1e9
        self._recent_tokens: dict[str, float] = {}
        self._cassettes: CassetteInfo | None = None
        self._entered_at = clock()
        self._deadline: float | None = None
        self._link_lost = False
        self._synced_hello: Hello | None = None  # the hello the MCU was last configured under
        self._versions_sent: tuple[str, int] | None = None
        self._notes_in_flight = 0  # notes of the dispense in progress (its deadline grows with them)
        bank.on_command = self._on_command
        bank.on_txn_result = self._on_txn_result
        missing = {s.value for s in State} - set(msg.PROMPTS)
        if missing:
            raise JourneyError(f"no customer prompt for states {sorted(missing)}")

    # ----- public API: lifecycle, inputs, observation -------------------------------------------
    def start(self) -> None:
        """Run the journey loop in a daemon thread (a dispenser not answering yet is configured later)."""
        try:
            self._sync_dispenser()
        except LinkError as exc:
            log.warning("dispenser not ready at start (%s): configured when it answers", exc)
        self._thread = threading.Thread(target=self.run, name="journey", daemon=True)
        self._thread.start()

    def _sync_dispenser(self) -> None:
        """After every (re)connect or MCU reboot (a new hello): set the retract timeout, report versions."""
        hello = self.dispenser.info
        if hello is self._synced_hello:
            return
        self.dispenser.set_config(self.cfg.retract_timeout_ms)  # the MCU forgets it when it restarts
        self._synced_hello = hello
        if self._versions_sent != (hello.firmware, hello.protocol_version):
            self._report_versions(hello)

    def _report_versions(self, hello: Hello) -> None:
        """Tell the fleet (the console's per-ATM detail) which firmware and models this ATM runs."""
        embedder = self.pipe.embedder_entry
        self.bank.send_event(
            "versions",
            "info",
            {
                "firmware": hello.firmware,
                "protocol": hello.protocol_version,
                "model": f"{self.pipe.config.embedder}:{embedder.sha256[:12]}",
            },
        )
        self._versions_sent = (hello.firmware, hello.protocol_version)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._cancel.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def key(self, key: str) -> None:
        """A key from the screen's keypad or a test: '0'-'9', 'back', 'clear', 'ok', 'cancel', 'preset:N'."""
        if key == "cancel":
            self.cancel()
            return
        if key not in KEYS and not key.startswith("preset:"):
            return
        with self._cond:
            self._inputs.append(key)
            self._cond.notify_all()

    def type(self, text: str) -> None:
        """Type digits then OK (tests and the demo play the customer this way)."""
        for ch in text:
            self.key(ch)
        self.key("ok")

    def cancel(self) -> None:
        """The customer pressed cancel (honoured only before the bank is asked)."""
        self._cancel.set()
        with self._cond:
            self._cond.notify_all()

    def subscribe(self, callback: Callable[[Snapshot], None]) -> Callable[[], None]:
        """Call `callback` with every new snapshot; returns the unsubscribe function."""
        with self._cond:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._cond:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return unsubscribe

    @property
    def snapshot(self) -> Snapshot:
        with self._cond:
            left = None if self._deadline is None else max(0.0, self._deadline - self.clock())
            return replace(self._snap, deadline_s=left)

    @property
    def alive(self) -> bool:
        """The journey thread is running (what the systemd watchdog kick depends on)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def state(self) -> State:
        return self._state

    def latest_frame(self) -> Frame | None:
        """The last camera frame (for the screen's camera guide)."""
        with self._frame_lock:
            return self._frame

    def wait_state(self, states: set[State], timeout_s: float) -> Snapshot:
        """Block until the machine is in one of `states` (tests, demo); JourneyError on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._snap.state not in states:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise JourneyError(f"still {self._snap.state} after {timeout_s} s, wanted {states}")
                self._cond.wait(left)
            return self._snap

    def wait_records(self, n: int, timeout_s: float) -> list[JourneyRecord]:
        """Block until `n` journeys have ended."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self.records) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise JourneyError(f"{len(self.records)} journeys ended, {n} expected in {timeout_s} s")
                self._cond.wait(left)
            return list(self.records)

    def operator(self, out_of_service: bool) -> None:
        """Console/bank command: take the ATM out of service (after the journey in progress) or back."""
        self._operator_oos = out_of_service
        self._last_telemetry = -1e9  # the console sees the new state at the next loop, not telemetry_s later

    # ----- the loop --------------------------------------------------------------------------------
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

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _enter(self, state: State, **fields: object) -> None:
        """Move to `state` (asserting the transition is allowed) and publish the snapshot."""
        prev = self._state
        if state is not prev and state not in TRANSITIONS[prev]:
            raise JourneyError(f"illegal transition {prev} -> {state}")
        self._state = state
        digits = self.bank.fleet.second_check_digits if self.bank.fleet else 4
        timeout = self._timeout_of(state)
        now = self.clock()
        with self._cond:
            if state is not prev:
                self._entered_at = now
                self._deadline = None if timeout is None else now + timeout
            base: dict[str, object] = {"prompt": msg.prompt(state.value, digits).as_dict(), "guidance": None}
            if state is prev:
                base = {}
            else:
                base.update(keypad="", entered=0, digits_needed=0, outcome="", outcome_text=None)
            base.update(fields)
            self._snap = replace(
                self._snap, seq=self._snap.seq + 1, state=state, step=STEP.get(state, 0), **base
            )  # pyright: ignore[reportArgumentType]
            snap = self._snap
            listeners = list(self._listeners)
            self._cond.notify_all()
        for cb in listeners:
            try:
                cb(snap)
            except Exception:
                log.exception("snapshot listener failed")

    def _update(self, **fields: object) -> None:
        self._enter(self._state, **fields)

    def _timeout_of(self, state: State) -> float | None:
        t = self.cfg.timeouts
        return {
            State.IDLE: None,
            State.OUT_OF_SERVICE: None,
            State.CHECK_TOKEN: t.token_check_s,
            State.FACE: t.face_s,
            State.CHALLENGE: t.challenge_s,
            State.SECOND_CHECK: t.second_check_s,
            State.AMOUNT: t.amount_s,
            State.NONCE: command_timeout("get_nonce"),  # command deadlines: the link's table owns them
            State.AUTHORIZE: t.authorize_s,
            State.DISPENSE: dispense_timeout(self._notes_in_flight),
            State.PRESENT: command_timeout("present")
            + self.cfg.retract_timeout_ms / 1000.0
            + t.take_margin_s,
            State.REPORT: command_timeout("get_report") + t.result_s,
            State.END: t.outcome_s,
        }[state]

    def _check_deadline(self) -> None:
        if self._stop.is_set():
            raise Cancelled("ATM stopping")
        if self._state in CANCELLABLE and self._cancel.is_set():
            raise Cancelled("customer cancelled")
        if self._deadline is not None and self.clock() > self._deadline:
            raise StepTimeout(self._state.value, self._timeout_of(self._state) or 0.0)

    def _read_frame(self) -> tuple[Frame, float]:
        """The next frame and its capture time (when the camera delivered it)."""
        frame = self.camera.read()
        t = self.clock()
        with self._frame_lock:
            self._frame = frame
        return frame, t

    # ----- health: out of service and back by itself ----------------------------------------------
    def health(self) -> list[str]:
        """Causes that keep the ATM out of service now (empty: in service)."""
        causes: list[str] = []
        if self._operator_oos:
            causes.append("operator")
        if not self.bank.connected:
            causes.append("bank_unreachable")
        elif self.bank.fleet is None:
            causes.append("not_configured")
        try:
            st = self.dispenser.status()
            self._link_up()
            if st.state == m.STATE_FAULT or st.locked:
                now = self.clock()
                if now - self._last_reset >= self.cfg.reset_retry_s:
                    self._last_reset = now
                    try:  # a cleared jam comes back by itself: reset purges the path to the reject bin
                        self.dispenser.reset()
                        st = self.dispenser.status()
                    except LinkError as exc:
                        log.info("dispenser reset did not recover: %s", exc)
                if st.state == m.STATE_FAULT or st.locked:
                    causes.append("dispenser_fault")
            if st.tamper:
                causes.append("tamper")
            if st.door_open:
                causes.append("door_open")
            info = self.dispenser.cassette_info()
            self._set_cassettes(info)
            if not self._payable(info):
                causes.append("cassettes_empty")
        except LINK_LOST as exc:  # the port is gone: a ReconnectingDispenser is reopening it meanwhile
            causes.append("dispenser_link_lost")
            self._link_down(exc)
        except LinkError as exc:
            log.warning("dispenser not answering: %s", exc)
            causes.append("dispenser_offline")
        if self.pending.all():
            self._recover_pending()
            if self.pending.all():
                causes.append("dispenser_fault")
        return list(dict.fromkeys(causes))

    def _link_down(self, exc: LinkError) -> None:
        if self._link_lost:
            return
        self._link_lost = True
        self.counters["link_lost"] += 1
        log.error("dispenser link lost: %s", exc)
        self.bank.send_event("dispenser_link", "alarm", {"state": "lost", "error": str(exc)[:100]})

    def _link_up(self) -> None:
        """The dispenser answered: after a loss tell the console; after any new hello reconfigure it."""
        if self._link_lost:
            self._link_lost = False
            self.counters["link_restored"] += 1
            hello = self.dispenser.info
            log.warning("dispenser link restored (firmware %s)", hello.firmware)
            detail: dict[str, str | int] = {"state": "restored", "firmware": hello.firmware}
            detail["boot_count"] = hello.boot_count
            self.bank.send_event("dispenser_link", "info", detail)
        self._sync_dispenser()

    def _max_notes(self) -> int:
        """The presenter capacity: what the MCU stated in its latest hello (the one declaration)."""
        return self.dispenser.info.max_notes

    def _payable(self, info: CassetteInfo) -> bool:
        """Can the cassettes pay at least the smallest preset (or the smallest note)?"""
        smallest = min(self.cfg.presets_yuan)
        try:
            denominate(smallest, list(info.denominations), list(info.counts), self._max_notes())
        except MsgError:
            return any(c > 0 for c in info.counts) and smallest < min(info.denominations)
        return True

    def _set_cassettes(self, info: CassetteInfo) -> None:
        self._cassettes = info
        low = self.cfg.min_notes_low
        self.bank.cassettes[:] = [
            Cassette(
                denomination=d,
                count=c,
                status="empty" if c == 0 else "low" if c <= low else "ok",
            )
            for d, c in zip(info.denominations, info.counts, strict=True)
        ]

    def _out_of_service(self, causes: list[str]) -> None:
        if tuple(causes) != self._causes:
            log.warning("out of service: %s", causes)
            self.bank.send_event("out_of_service", "alarm", {"causes": ",".join(causes)})
            self._causes = tuple(causes)
        self._enter(
            State.OUT_OF_SERVICE,
            causes=tuple(causes),
            causes_text=tuple(msg.CAUSES.get(c, msg.Text(c, c)).as_dict() for c in causes),
        )
        self._sleep(self.cfg.timeouts.idle_check_s)

    def _telemetry(self, causes: list[str]) -> None:
        now = self.clock()
        if now - self._last_telemetry < self.cfg.telemetry_s:
            return
        self._last_telemetry = now
        state = "in_service"
        if causes:
            faulty = {"dispenser_fault", "dispenser_offline", "dispenser_link_lost", "tamper"} & set(causes)
            state = "fault" if faulty else "maintenance" if causes == ["operator"] else "out_of_service"
        counters = dict(self.counters)
        try:
            counters.update({f"mcu_{k}": v for k, v in self.dispenser.counters().items()})
        except LinkError:
            pass
        if isinstance(self.dispenser, LinkCounters):
            counters.update({f"dispenser_{k}": v for k, v in self.dispenser.link_counters().items()})
        try:
            max_notes: int | None = self._max_notes()  # shown on the console beside the cassettes
        except LinkError:
            max_notes = None
        self.bank.send_telemetry(state, counters, max_notes=max_notes)

    def _on_command(self, cmd: Command) -> tuple[bool, str]:
        if cmd.name == "out_of_service":
            self.operator(True)
            return True, "out of service after the journey in progress"
        if cmd.name == "in_service":
            self.operator(False)
            return True, "in service"
        if cmd.name == "send_counters":
            self._last_telemetry = -1e9
            return True, "telemetry follows"
        return False, f"{cmd.name} not supported by the journey"

    def _on_txn_result(self, result: TxnResult) -> None:
        with self._cond:
            self.bank_results[result.txid] = result
            self._cond.notify_all()

    # ----- IDLE: wait for a phone QR ---------------------------------------------------------------
    def _idle_scan(self) -> tuple[str, float, float] | None:
        """Read frames for up to idle_check_s; a withdrawal QR -> (text, seen at, decoded at)."""
        self._cancel.clear()
        with self._cond:
            self._inputs.clear()
        self._enter(State.IDLE, causes=(), causes_text=())
        end = self.clock() + self.cfg.timeouts.idle_check_s
        while self.clock() < end and not self._stop.is_set():
            frame, seen = self._read_frame()
            result = decode(frame)
            now = self.clock()
            for code in result.codes:
                text = code.text.strip()
                if not text.startswith(QR_PREFIX):
                    continue
                if now - self._recent_tokens.get(text, -1e9) < SAME_TOKEN_IGNORE_S:
                    continue
                self._recent_tokens = {t: s for t, s in self._recent_tokens.items() if now - s < 600}
                self._recent_tokens[text] = now
                return text, seen, now
        return None

    # ----- one journey -----------------------------------------------------------------------------
    def _journey(self, qr_text: str, seen: float, decoded: float) -> None:
        ctx = _Ctx(qr_text, Timings())
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

    def _steps(self, ctx: _Ctx) -> tuple[str, str]:
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

    # ----- FACE -------------------------------------------------------------------------------------
    def _face(self, ctx: _Ctx) -> FaceProbe:
        """Good, live frames of one face -> the averaged probe; guidance on screen until then."""
        self._enter(State.FACE)
        good: list[tuple[np.ndarray, float, float]] = []  # embedding, p_real, quality
        unsure: list[tuple[np.ndarray, float, float]] = []
        attacks = 0
        first_seen = 0.0
        box: tuple[float, float, float, float] | None = None
        while True:
            self._check_deadline()
            frame, t = self._read_frame()
            try:
                sample = self.pipe.sample(frame)
                live = self.pipe.check_liveness(frame, sample.detection)
            except NoFaceError:
                self._guide(["no_face"])
                good.clear()
                unsure.clear()  # the probe frames must be one face in view without a break
                continue
            except MultipleFacesError:
                self._guide(["many_faces"])
                good.clear()
                unsure.clear()
                continue
            except QualityError as exc:
                self._guide(exc.reasons)
                good.clear()
                unsure.clear()
                continue
            except VisionError as exc:
                log.warning("face frame failed: %s", exc)
                continue
            if not good and not unsure:
                first_seen = t
            entry = (sample.embedding, live.p_real, sample.quality.score)
            if live.verdict is Verdict.ATTACK:
                attacks += 1
                good.clear()
                if attacks >= self.cfg.attack_frames:
                    self.counters["attacks"] += 1
                    self._attack_event(ctx, live.p_real)
                    raise Refused("attack", f"presentation attack suspected (p_real {live.p_real:.3f})")
                continue
            box = sample.detection.box
            if live.verdict is Verdict.UNCERTAIN or not self.pipe.config.liveness.passive_skips_challenge:
                unsure.append(entry)  # passive liveness alone cannot vouch (docs/vision.md, "PAD")
                if len(unsure) >= self.cfg.face_frames:
                    return self._challenge(ctx, unsure, first_seen, box)
                continue
            good.append(entry)
            if len(good) >= self.cfg.face_frames:
                ctx.timings.mark("face_seen", first_seen)
                ctx.timings.mark("face_ok", self.clock())
                return self._probe(good, None)

    def _probe(self, frames: list[tuple[np.ndarray, float, float]], liveness: float | None) -> FaceProbe:
        emb = np.mean(np.stack([e for e, _, _ in frames]), axis=0)
        emb = emb / max(float(np.linalg.norm(emb)), 1e-9)
        return FaceProbe(
            model_id=self.pipe.config.embedder,
            template_version=TEMPLATE_VERSION,
            embedding=[float(x) for x in emb],
            liveness=min(p for _, p, _ in frames) if liveness is None else liveness,
            quality=min(q for _, _, q in frames),
        )

    def _guide(self, reasons: list[str]) -> None:
        self._update(guidance=msg.guidance(reasons).as_dict())

    def _attack_event(self, ctx: _Ctx, p_real: float) -> None:
        tok = ctx.token
        detail: dict[str, str | int] = {"p_real_milli": int(p_real * 1000)}
        if tok is not None:
            detail.update(customer=tok.customer_id, account=tok.account_id)
        self.bank.send_event("presentation_attack", "alarm", detail)

    def _challenge(
        self,
        ctx: _Ctx,
        unsure: list[tuple[np.ndarray, float, float]],
        first: float,
        box: tuple[float, float, float, float] | None = None,
    ) -> FaceProbe:
        """Passive liveness is unsure: ask for a blink or a head turn (face mesh and eyes across frames)."""
        challenge = random_challenge()
        key = {Challenge.BLINK: "blink", Challenge.TURN_LEFT: "turn_left", Challenge.TURN_RIGHT: "turn_right"}
        text = msg.GUIDANCE[key.get(challenge, "blink")]
        self._enter(State.CHALLENGE, prompt=text.as_dict())

        def frames() -> Iterator[Frame]:
            while True:
                self._check_deadline()
                yield self._read_frame()[0]

        try:  # the same face must do the challenge: tracked and re-identified on every frame
            out = self.pipe.run_challenge(frames(), challenge, [e for e, _, _ in unsure], box)
            state, why = out.state, out.reason
        except StepTimeout:
            out, state, why = None, ChallengeState.FAILED, "not done in time"
        if state is not ChallengeState.PASSED or out is None:
            self.counters["attacks"] += 1
            self._attack_event(ctx, min(p for _, p, _ in unsure))
            raise Refused("attack", f"active liveness challenge not passed: {why}")
        ctx.timings.mark("face_seen", first)
        ctx.timings.mark("face_ok", self.clock())
        # A passed challenge vouches for liveness at the acceptance level (documented in docs/journey.md).
        accept = self.pipe.config.liveness.accept
        during = [(e, accept, q) for e, q in out.probe]  # the verified face is the one that did it
        return self._probe(unsure + during, max(accept, min(p for _, p, _ in unsure)))

    # ----- keypad: SECOND_CHECK and AMOUNT ---------------------------------------------------------
    def _next_key(self) -> str:
        with self._cond:
            while not self._inputs:
                self._check_deadline()
                self._cond.wait(0.1)
            return self._inputs.pop(0)

    def _digits(self, fld: str, n: int, prompt: msg.Text) -> str:
        buf = ""
        self._update(keypad=fld, digits_needed=n, entered=0, prompt=prompt.as_dict(), guidance=None)
        while True:
            k = self._next_key()
            if k.isdigit() and len(buf) < n:
                buf += k
            elif k == "back":
                buf = buf[:-1]
            elif k == "clear":
                buf = ""
            elif k == "ok" and len(buf) == n:
                return buf
            elif k == "ok":
                self._update(guidance=msg.Text(f"请输入{n}位数字", f"Please type {n} digits").as_dict())
                continue
            self._update(entered=len(buf))

    def _second_check(self, ctx: _Ctx, fleet: FleetConfig) -> None:
        n = fleet.second_check_digits
        self._enter(State.SECOND_CHECK)
        ctx.account_digits = self._digits("account", n, msg.prompt("second_check", n))
        ctx.mobile_digits = self._digits("mobile", n, msg.prompt("second_check_mobile", n))

    def _amount_ok(self, amount: int, ctx: _Ctx, fleet: FleetConfig) -> str:
        """'' when the amount can be asked for, else the outcome code that explains why not."""
        assert ctx.token is not None
        info = self._cassettes
        denoms = list(info.denominations) if info else fleet.denominations
        try:
            check_amount(amount, ctx.token, fleet, denoms)
        except OfflineCheckError as exc:
            return "limit" if exc.reason.startswith("LIMIT") else "amount_invalid"
        if info is not None:
            try:
                denominate(amount, denoms, list(info.counts), self._max_notes())
            except MsgError:
                return "amount_invalid"
        return ""

    def _amount(self, ctx: _Ctx, fleet: FleetConfig) -> None:
        assert ctx.token is not None
        limit = fleet.limits.per_withdrawal_yuan
        if ctx.token.amount_yuan:  # the phone fixed the amount: nothing to choose
            problem = self._amount_ok(ctx.token.amount_yuan, ctx, fleet)
            if problem:
                raise Refused(problem, f"{ctx.token.amount_yuan} yuan")
            ctx.amount = ctx.token.amount_yuan
            return
        presets = tuple(p for p in self.cfg.presets_yuan if not self._amount_ok(p, ctx, fleet))
        self._enter(State.AMOUNT, keypad="amount", presets=presets, max_amount=limit, amount=0)
        buf = ""
        while True:
            k = self._next_key()
            amount = 0
            if k.startswith("preset:"):
                amount = int(k.split(":", 1)[1]) if k.split(":", 1)[1].isdigit() else 0
            elif k.isdigit() and len(buf) < 6:
                buf = (buf + k).lstrip("0")
            elif k == "back":
                buf = buf[:-1]
            elif k == "clear":
                buf = ""
            elif k == "ok":
                amount = int(buf or "0")
            if not amount:
                self._update(amount=int(buf or "0"), guidance=None)
                continue
            problem = self._amount_ok(amount, ctx, fleet)
            if not problem:
                ctx.amount = amount
                self._update(amount=amount, guidance=None)
                return
            buf = ""
            self._update(amount=0, guidance=msg.outcome(problem).as_dict())

    # ----- AUTHORIZE --------------------------------------------------------------------------------
    def _authorize(self, ctx: _Ctx, nonce: bytes) -> AuthResponse | None:
        assert ctx.probe is not None
        info = self._cassettes
        self._enter(State.AUTHORIZE)
        req = AuthRequest(
            request_id=os.urandom(16).hex(),
            atm_id=self._atm_id(),
            device_id=self.dispenser.info.device_id.hex(),
            command_nonce=nonce.hex(),
            qr_token=ctx.qr_text,
            amount_yuan=ctx.amount,
            face=ctx.probe,
            account_digits=ctx.account_digits,
            mobile_digits=ctx.mobile_digits,
            cassettes=list(self.bank.cassettes) if info is None else self._cassette_list(info),
            max_notes=self._max_notes(),
            ts_ms=int(self.wall() * 1000),
        )
        try:
            return self.bank.authorize(req, timeout_s=self.cfg.timeouts.authorize_s)
        except (BankTimeoutError, BankLinkError) as exc:
            log.warning("authorization %s unanswered: %s", req.request_id, exc)
            self.bank.send_event("auth_timeout", "warning", {"request_id": req.request_id})
            try:  # burn the nonce: a late approval's token can then never be dispensed
                self.dispenser.get_nonce()
            except LinkError:
                pass
            # The bank is told (through the outbox): it closes the request, or parks its hold as suspect.
            self.bank.send_abandon(
                request_id=req.request_id, txid=None, reason="auth_timeout", detail=str(exc)
            )
            return None

    @staticmethod
    def _cassette_list(info: CassetteInfo) -> list[Cassette]:
        pairs = zip(info.denominations, info.counts, strict=True)
        return [Cassette(denomination=d, count=c) for d, c in pairs]

    def _atm_id(self) -> str:
        return self.bank.atm

    # ----- money: DISPENSE, PRESENT, REPORT --------------------------------------------------------
    def _pay(self, ctx: _Ctx, resp: AuthResponse) -> tuple[str, str]:
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
        if isinstance(report, _NotStarted):
            self._not_started(resp.txid, failure)
            return "dispenser_fault", failure or "the dispenser did not start the transaction"
        self.bank.send_report(resp.txid, report.raw)
        self.pending.remove(resp.txid)
        ctx.presented, ctx.retracted = report.presented, report.retracted
        self._wait_result(ctx)
        # Unknown first: the bank marks such a report suspect, so the customer must not read "not charged".
        unknown = m.UNKNOWN_COUNT in (report.presented, report.retracted)
        if unknown or report.present_status == m.PRESENT_UNKNOWN:
            return "suspect", failure or "present status unknown"
        if report.presented == 0 or report.present_status == m.PRESENT_NOT_PRESENTED:
            return "dispenser_fault", failure or "not presented"
        if report.retracted >= report.presented:
            self.counters["retracted"] += 1
            return "retracted", "not taken"
        if report.retracted:
            return "partial", f"{report.retracted} notes retracted"
        self.counters["paid"] += 1
        return "paid", ""

    def _final_report(self, txid: bytes, *, in_journey: bool) -> Report | _NotStarted | None:
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
                st = self.dispenser.status()
                if st.state == m.STATE_PRESENTED:
                    if not in_journey:
                        return None
                    self.dispenser.retract(txid)
                elif st.state == m.STATE_STACKED or (st.state == m.STATE_FAULT and in_journey):
                    self.dispenser.reset()  # stacker and path go to the reject bin
                elif not in_journey:
                    return None
                elif attempt:
                    self.dispenser.reset()
            except (CommandFailed, CommandRejected) as exc:
                if exc.code != m.UNKNOWN_TRANSACTION:
                    log.warning("report for %s not readable yet: %s", txid.hex(), exc)
                    if not in_journey:
                        return None
                    self._sleep(0.5)
                    continue
                if burnt:
                    return NOT_STARTED
                try:
                    self.dispenser.get_nonce()  # burn the nonce the token was made for
                    burnt = True
                except LinkError as burn:
                    log.warning("report for %s unknown; nonce not burnt: %s", txid.hex(), burn)
                    if not in_journey:
                        return None
                    self._sleep(0.5)
            except LINK_LOST as exc:
                log.warning("report for %s: dispenser link lost: %s", txid.hex(), exc)
                return None  # no point asking a port that is gone; pending recovery asks again
            except LinkError as exc:
                log.warning("report for %s not readable yet: %s", txid.hex(), exc)
                if not in_journey:
                    return None
                self._sleep(0.5)
        return None

    def _not_started(self, txid: str, error: str) -> None:
        """Nothing moved and nothing can: the bank is told (its hold becomes suspect), pending dropped."""
        log.warning("transaction %s was never started by the dispenser", txid)
        self.bank.send_abandon(request_id=None, txid=txid, reason="not_started", detail=error)
        self.pending.remove(txid)
        self.bank.send_event("dispense_not_started", "warning", {"txid": txid, "error": error[:100]})

    def _wait_result(self, ctx: _Ctx) -> None:
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
            if isinstance(rep, _NotStarted):
                self._not_started(txid, "found pending")
                continue
            self.bank.send_report(txid, rep.raw)
            self.pending.remove(txid)
            log.warning("pending report %s sent: %s", txid, rep.present_status_name)
            detail: dict[str, str | int] = {"txid": txid, "status": rep.present_status_name}
            detail.update(presented=rep.presented, retracted=rep.retracted, rejected=rep.rejected)
            self.bank.send_event("pending_report_sent", "info", detail)

    # ----- END ---------------------------------------------------------------------------------------
    def _end(self, ctx: _Ctx, outcome: str, reason: str) -> None:
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
