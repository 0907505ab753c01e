"""The journey's shared state, snapshots and inputs, and the state-machine steps every section uses."""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from atm_msg.schemas import TxnResult

from atm_host.link.errors import LinkClosed, PortError
from atm_host.link.results import CassetteInfo, Hello
from atm_host.link.timeouts import command_timeout, dispense_timeout
from atm_host.vision.frame import Frame

from . import messages as msg
from .config import JourneyConfig
from .errors import Cancelled, JourneyError, StepTimeout
from .ports import Bank, Camera, Dispenser, FacePipe
from .records import JourneyRecord, PendingReports
from .states import CANCELLABLE, STEP, TRANSITIONS, Snapshot, State

log = logging.getLogger("atm_host.journey")

TEMPLATE_VERSION = 1  # face template format the bank enrols and compares (atm_bank registry)
QR_PREFIX = "ATM1:"  # phone withdrawal tokens (docs/bank.md)
SAME_TOKEN_IGNORE_S = 60.0  # a token still in view after its journey is not read again for this long
KEYS = frozenset("0123456789") | {"back", "clear", "ok"}
# Errors that mean the dispenser's port itself is gone (unplugged, re-enumerated, reader thread dead).
LINK_LOST = (PortError, LinkClosed)


class JourneyCore:
    """State, observation and the primitives (enter a state, deadlines, frames, keys) of the journey."""

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
        missing = {s.value for s in State} - set(msg.PROMPTS)
        if missing:
            raise JourneyError(f"no customer prompt for states {sorted(missing)}")

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

    def _next_key(self) -> str:
        with self._cond:
            while not self._inputs:
                self._check_deadline()
                self._cond.wait(0.1)
            return self._inputs.pop(0)

    def _max_notes(self) -> int:
        """The presenter capacity: what the MCU stated in its latest hello (the one declaration)."""
        return self.dispenser.info.max_notes

    def _atm_id(self) -> str:
        return self.bank.atm
