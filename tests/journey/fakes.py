"""Fake devices for fast, deterministic journey tests: camera, face pipeline, dispenser MCU and bank.

They fail the way the real parts do: the dispenser keeps a journal of transactions and answers with
the real result types and error classes (a jam leaves the transaction open and the MCU in FAULT, a
lost answer still moved the notes, a pulled cable fails every call with PortError, a power loss in
PRESENT leaves the present status "unknown"); the bank records every request, event and report.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import segno
from atm_host.banklink.errors import BankLinkError, BankTimeoutError
from atm_host.link import results as r
from atm_host.link.errors import CommandFailed, LinkTimeout, PortError
from atm_host.link.events import EventBus, EventSubscription
from atm_host.vision import quality
from atm_host.vision.challenge import Challenge, ChallengeState
from atm_host.vision.config import LivenessConfig, VisionConfig
from atm_host.vision.detector import Detection
from atm_host.vision.errors import MultipleFacesError, NoFaceError, QualityError, VisionError
from atm_host.vision.frame import FloatArray, Frame
from atm_host.vision.liveness import PassiveResult, Verdict
from atm_host.vision.manifest import ModelEntry, load_manifest
from atm_host.vision.pipeline import FaceSample
from atm_host.vision.quality import QualityReport
from atm_host.vision.session import ChallengeOutcome
from atm_msg import qrtoken
from atm_msg.denominate import denominate
from atm_msg.errors import MsgError
from atm_msg.reasons import Reason
from atm_msg.schemas import (
    AbandonReason,
    AuthRequest,
    AuthResponse,
    Cassette,
    Command,
    Event,
    FleetConfig,
    FleetLimits,
    TxnResult,
)
from atm_wire import PROTOCOL_VERSION, names
from atm_wire import messages as m
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DENOMS = (100, 50, 20, 10)
DEVICE_ID = bytes.fromhex("e66038b7134f2a2f")

# ----- camera and scenes ---------------------------------------------------------------------------
# A face scene is a small uniform frame whose pixel value names what the fake pipeline sees in it.
LIVE, UNSURE, ATTACK, NO_FACE, MANY, POOR, BROKEN = 10, 20, 30, 40, 50, 60, 70
_SCENE_NAMES = {LIVE: "live", UNSURE: "unsure", ATTACK: "attack", NO_FACE: "nothing", MANY: "many"}


def scene(kind: int) -> Frame:
    """A frame the fake pipeline reads as `kind` (LIVE, UNSURE, ATTACK, NO_FACE, MANY, POOR, BROKEN)."""
    return np.full((48, 48, 3), kind, dtype=np.uint8)


def qr_frame(text: str, module_px: int = 3) -> Frame:
    """A clean frame with `text` as a QR code (what the phone shows), decodable by the real decoder."""
    qr = segno.make_qr(text, error="m", boost_error=False)
    rows = [[0 if dark else 255 for dark in row] for row in qr.matrix]
    grid = np.asarray(rows, dtype=np.uint8)
    grid = np.pad(grid, 4, constant_values=255)
    img = np.kron(grid, np.ones((module_px, module_px), dtype=np.uint8))
    return np.ascontiguousarray(np.stack([img, img, img], axis=-1))


class FakeCamera:
    """Plays one scene (frame) until told otherwise, paced like a sensor; can be unplugged."""

    def __init__(self, period_s: float = 0.004) -> None:
        self.period_s = period_s
        self._frame = scene(NO_FACE)
        self._lock = threading.Lock()
        self.broken = False
        self.reads = 0

    def show(self, frame: Frame) -> None:
        with self._lock:
            self._frame = frame

    def read(self) -> Frame:
        time.sleep(self.period_s)
        with self._lock:
            if self.broken:
                raise RuntimeError("camera disconnected")
            self.reads += 1
            return self._frame

    def close(self) -> None:
        pass


# ----- face pipeline -------------------------------------------------------------------------------
_MANIFEST_ENTRY: ModelEntry | None = None


def _embedder_entry(config: VisionConfig) -> ModelEntry:
    global _MANIFEST_ENTRY  # read the manifest once per test session
    if _MANIFEST_ENTRY is None:
        _MANIFEST_ENTRY = load_manifest(config.manifest).entry(config.embedder)
    return _MANIFEST_ENTRY


class FakePipeline:
    """The face pipeline's interface (ports.FacePipe) answering from the scene value of each frame."""

    def __init__(self, challenge: str = "pass") -> None:
        # LIVE frames skip the challenge here so each path (passive, challenge) is walked on its own; the
        # production default (every customer does the challenge) is tested in tests/vision/test_pad*.py.
        self.config = VisionConfig(liveness=LivenessConfig(passive_skips_challenge=True))
        self.embedder_entry = _embedder_entry(self.config)
        self.challenge = challenge  # pass, fail, or hang (consume frames until the journey stops it)
        self.challenges: list[Challenge] = []
        self.references: list[int] = []  # how many probe frames each challenge was given as reference
        self.samples = 0
        rng = np.random.default_rng(7)
        emb = rng.standard_normal(128).astype(np.float32)
        self._embedding: FloatArray = (emb / np.linalg.norm(emb)).astype(np.float32)

    @staticmethod
    def _kind(frame: Frame) -> int:
        return int(frame[0, 0, 0])

    def sample(self, frame: Frame, gate: bool = True) -> FaceSample:
        self.samples += 1
        kind = self._kind(frame)
        if kind == MANY:
            raise MultipleFacesError("two faces")
        if kind == POOR:
            raise QualityError([quality.COME_CLOSER])
        if kind == BROKEN:
            raise VisionError("model failed on this frame")
        if kind not in (LIVE, UNSURE, ATTACK):
            raise NoFaceError("no face")
        det = Detection((10.0, 10.0, 20.0, 20.0), np.zeros((6, 2), dtype=np.float32), 0.99)
        rep = QualityReport(50.0, 0.0, 0.0, 0.0, 1.0, 0.5, 0.0, 0.9)
        return FaceSample(det, np.zeros((112, 112, 3), dtype=np.uint8), rep, self._embedding.copy())

    def check_liveness(self, frame: Frame, face: Detection) -> PassiveResult:
        kind = self._kind(frame)
        if kind == ATTACK:
            return PassiveResult(0.05, (0.05, 0.05), Verdict.ATTACK)
        if kind == UNSURE:
            return PassiveResult(0.8, (0.8, 0.8), Verdict.UNCERTAIN)
        return PassiveResult(0.97, (0.97, 0.97), Verdict.LIVE)

    def run_challenge(
        self,
        frames: Iterable[Frame],
        challenge: Challenge,
        reference: Sequence[FloatArray] = (),
        box: tuple[float, float, float, float] | None = None,
    ) -> ChallengeOutcome:
        self.challenges.append(challenge)
        self.references.append(len(reference))
        it = iter(frames)
        next(it)
        if self.challenge == "pass":  # the challenge's own frames come back as probe frames
            return ChallengeOutcome(ChallengeState.PASSED, probe=((self._embedding.copy(), 0.9),))
        if self.challenge == "fail":
            return ChallengeOutcome(ChallengeState.FAILED, "no blink was seen in time")
        for _ in it:  # "hang": the journey's deadline or cancel ends it (raised through the iterator)
            pass
        return ChallengeOutcome(ChallengeState.FAILED, "not done")


# ----- dispenser MCU -------------------------------------------------------------------------------
@dataclass
class Tx:
    """One transaction in the fake MCU's journal."""

    txid: bytes
    nonce: bytes
    notes: tuple[int, int, int, int]
    stacked: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    presented: int = 0
    retracted: int = 0
    rejected: int = 0
    status: int = m.PRESENT_NOT_PRESENTED
    flags: int = 0

    @property
    def final(self) -> bool:
        return bool(self.flags & m.REPORT_FLAG_FINAL)


def _failed(command: str, code: int) -> CommandFailed:
    return CommandFailed(
        command, code, names.COMPLETION_NAMES[code] if code < len(names.COMPLETION_NAMES) else "?", b""
    )


class FakeDispenser:
    """The dispenser MCU (ports.Dispenser) with its journal, mechanics and the ways it really fails.

    customer: what happens after PRESENT: "take" (notes taken), "leave" (the MCU retracts after its
    retract timeout), "vanish" (no event ever arrives), "power_cut" (the MCU reboots with notes
    missing and no sensor saw them taken: present status unknown).
    """

    def __init__(self, counts: tuple[int, int, int, int] = (200, 200, 200, 200), max_notes: int = 60) -> None:
        self._lock = threading.RLock()
        self.max_notes = max_notes  # presenter capacity, stated in the hello (firmware MAX_NOTES)
        self.counts = list(counts)
        self.journal: dict[bytes, Tx] = {}
        self.open_tx: Tx | None = None
        self.state = m.STATE_IDLE
        self.nonce: bytes | None = None
        self.retract_timeout_ms = 30000
        self.customer = "take"
        self.taken = 0  # notes the customer walked away with (the physical truth)
        self.retract_bin = 0
        self.reject_bin = 0
        self.door_open = False
        self.tamper = False
        self.locked = False
        self.jam_after: int | None = None  # the next dispense jams after this many notes
        self.jam_stuck = False  # a reset cannot clear it until clear_jam() (the technician)
        self.refuse_dispense: int | None = None  # completion code before the journal begins (door...)
        self.lost_answers: set[str] = set()  # these commands run but their answer never arrives
        self.timeouts: set[str] = set()  # these commands time out without running
        self.link_lost = False  # the cable is out: every call fails with PortError
        self.cut_after: str | None = None  # the cable is pulled right after this command ran
        self.firmware = (1, 0, 0)
        self.boot_count = 1
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.deadlines: list[tuple[str, float | None]] = []  # the timeout the caller passed, per call
        self._bus = EventBus()
        self._hello = self._make_hello()

    # ----- test controls ---------------------------------------------------------------------------
    def _make_hello(self) -> r.Hello:
        return r.Hello(
            PROTOCOL_VERSION, self.firmware, DEVICE_ID, 0, self.boot_count, 4, 118, 30000, self.max_notes
        )

    def reboot(self, firmware: tuple[int, int, int] | None = None) -> None:
        """Power cycle (or reflash): RAM config forgotten, a new hello, the nonce gone."""
        with self._lock:
            self.firmware = firmware or self.firmware
            self.boot_count += 1
            self.retract_timeout_ms = 30000
            self.nonce = None
            self._hello = self._make_hello()

    def clear_jam(self) -> None:
        with self._lock:
            self.jam_stuck = False

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.calls if n == name)

    def dispensed_txids(self) -> list[bytes]:
        return [bytes(a[0]) for n, a in self.calls if n == "dispense" and isinstance(a[0], bytes)]

    def total(self) -> int:
        """Every note somewhere: cassettes, bins, stacker/presenter of the open transaction, customer."""
        held = 0
        if self.open_tx is not None and not self.open_tx.final:
            held = sum(self.open_tx.stacked) - self.open_tx.rejected
        return sum(self.counts) + self.retract_bin + self.reject_bin + self.taken + held

    def _enter(self, name: str, *args: object, timeout: float | None = None) -> None:
        self.calls.append((name, args))
        self.deadlines.append((name, timeout))
        if self.link_lost:
            raise PortError("read failed: [Errno 5] Input/output error")
        if name in self.timeouts:
            raise LinkTimeout(f"{name}: no acknowledge from the device")

    def _answer(self, name: str) -> None:
        if name == self.cut_after:
            self.cut_after = None
            self.link_lost = True
            raise PortError("read failed: [Errno 5] Input/output error")
        if name in self.lost_answers:
            raise LinkTimeout(f"{name}: acknowledged but not completed in time; re-query the device")

    def _emit(self, name: str, *fields: object) -> None:
        code = names.EVENT_BY_NAME[name][1]
        self._bus.publish(r.Event(name, code, 0, tuple(fields), b""))  # type: ignore[arg-type]

    def _finish(self, tx: Tx, status: int, flags: int = 0) -> None:
        tx.status = status
        tx.flags |= flags | m.REPORT_FLAG_FINAL
        self.open_tx = None
        self.state = m.STATE_IDLE

    # ----- the Dispenser interface ---------------------------------------------------------------------
    @property
    def info(self) -> r.Hello:
        with self._lock:
            return self._hello  # the last hello, also while the cable is out

    def status(self, timeout: float | None = None) -> r.Status:
        with self._lock:
            self._enter("status", timeout=timeout)
            flags = m.STATUS_FLAG_PROVISIONED
            if self.nonce is not None:
                flags |= m.STATUS_FLAG_NONCE
            if self.locked:
                flags |= m.STATUS_FLAG_LOCKED
            if self.tamper:
                flags |= m.STATUS_FLAG_TAMPER
            tx = self.open_tx
            presented = tx.presented if tx is not None and self.state == m.STATE_PRESENTED else 0
            stacked = sum(tx.stacked) if tx is not None else 0
            fault = m.JAMMED if self.state == m.STATE_FAULT else 0
            return r.Status(self.state, 0, int(self.door_open), fault, flags, stacked, presented, 100)

    def cassette_info(self, timeout: float | None = None) -> r.CassetteInfo:
        with self._lock:
            self._enter("cassette_info", timeout=timeout)
            c = self.counts
            units = tuple(m.UNIT_EMPTY if n == 0 else m.UNIT_OK for n in c)
            return r.CassetteInfo(DENOMS, (c[0], c[1], c[2], c[3]), units, self.reject_bin, self.retract_bin)  # type: ignore[arg-type]

    def get_nonce(self, timeout: float | None = None) -> r.Nonce:
        with self._lock:
            self._enter("get_nonce", timeout=timeout)
            if self.state != m.STATE_IDLE:
                raise _failed("get_nonce", m.SEQUENCE_ERROR)
            self.nonce = os.urandom(m.NONCE_LEN)
            self._answer("get_nonce")
            return r.Nonce(self.nonce, 180_000)

    def dispense(self, token: bytes, timeout: float | None = None) -> r.DispenseResult:
        with self._lock:
            device_id, nonce, txid, *rest = struct.unpack(m.DISPENSE_TOKEN_FMT, token)
            self._enter("dispense", txid, nonce, timeout=timeout)
            notes = (int(rest[0]), int(rest[1]), int(rest[2]), int(rest[3]))
            if txid in self.journal:
                raise AssertionError(f"DISPENSE re-sent for {txid.hex()}: a double payment risk")
            if self.refuse_dispense is not None:
                raise _failed("dispense", self.refuse_dispense)  # refused before the journal began
            if device_id != DEVICE_ID or nonce != self.nonce:
                self.nonce = None
                raise _failed("dispense", m.INVALID_TOKEN_NONCE)
            self.nonce = None
            if not 0 < sum(notes) <= self.max_notes:  # checked after the token, as the firmware does
                raise _failed("dispense", m.INVALID_DATA)
            tx = Tx(txid, nonce, notes)
            self.journal[txid] = tx
            self.open_tx = tx
            left = self.jam_after
            for c, n in enumerate(notes):
                for _ in range(n):
                    if left is not None and left <= 0:
                        self.jam_after = None
                        self.state = m.STATE_FAULT
                        self._emit("jam", c, m.JAMMED)
                        raise _failed("dispense", m.JAMMED)
                    self.counts[c] -= 1
                    tx.stacked[c] += 1
                    if left is not None:
                        left -= 1
            self.state = m.STATE_STACKED
            self._answer("dispense")
            return r.DispenseResult(txid, (notes[0], notes[1], notes[2], notes[3]), (0, 0, 0, 0), 0)

    def present(self, txid: bytes, timeout: float | None = None) -> int:
        with self._lock:
            self._enter("present", txid, timeout=timeout)
            tx = self.open_tx
            if tx is None or tx.txid != txid:
                raise _failed("present", m.UNKNOWN_TRANSACTION)
            if self.state != m.STATE_STACKED:
                raise _failed("present", m.SEQUENCE_ERROR)
            n = sum(tx.stacked)
            tx.presented = n
            self.state = m.STATE_PRESENTED
            self._emit("items_presented", txid, n)
            customer = self.customer
            if customer == "take":
                self._later(0.01, lambda: self._taken(tx))
            elif customer == "leave":
                self._later(self.retract_timeout_ms / 1000.0, lambda: self._auto_retract(tx))
            elif customer == "power_cut":
                self._later(0.01, lambda: self._power_cut_in_present(tx))
            self._answer("present")
            return n

    def _later(self, delay_s: float, fn: Callable[[], None]) -> None:
        t = threading.Timer(delay_s, fn)
        t.daemon = True
        t.start()

    def _taken(self, tx: Tx) -> None:
        with self._lock:
            if self.open_tx is not tx or self.state != m.STATE_PRESENTED:
                return
            self.taken += tx.presented
            self._finish(tx, m.PRESENT_PRESENTED, m.REPORT_FLAG_TAKEN)
            self._emit("items_taken", tx.txid, tx.presented)

    def _auto_retract(self, tx: Tx) -> None:
        with self._lock:
            if self.open_tx is not tx or self.state != m.STATE_PRESENTED:
                return
            tx.retracted = tx.presented
            self.retract_bin += tx.presented
            self._finish(tx, m.PRESENT_PRESENTED)
            self._emit("items_retracted", tx.txid, tx.retracted)

    def _power_cut_in_present(self, tx: Tx) -> None:
        """Boot reconciliation: notes gone from the presenter, no sensor saw them taken."""
        with self._lock:
            self.taken += tx.presented  # physically they are gone (the bank decides: suspect)
            self._finish(tx, m.PRESENT_UNKNOWN, m.REPORT_FLAG_RECOVERED)
            self.reboot()

    def retract(self, txid: bytes, timeout: float | None = None) -> int:
        with self._lock:
            self._enter("retract", txid, timeout=timeout)
            tx = self.open_tx
            if tx is None or tx.txid != txid:
                raise _failed("retract", m.UNKNOWN_TRANSACTION)
            if self.state != m.STATE_PRESENTED:
                raise _failed("retract", m.SEQUENCE_ERROR)
            tx.retracted = tx.presented
            self.retract_bin += tx.presented
            self._finish(tx, m.PRESENT_PRESENTED)
            self._emit("items_retracted", txid, tx.retracted)
            self._answer("retract")
            return tx.retracted

    def get_report(self, txid: bytes, timeout: float | None = None) -> r.Report:
        with self._lock:
            self._enter("get_report", txid, timeout=timeout)
            tx = self.journal.get(txid)
            if tx is None:
                raise _failed("get_report", m.UNKNOWN_TRANSACTION)
            final = tx.final
            status = (
                tx.status
                if final
                else (m.PRESENT_PRESENTED if self.state == m.STATE_PRESENTED else m.PRESENT_NOT_PRESENTED)
            )
            presented = tx.presented if final or self.state == m.STATE_PRESENTED else 0
            flags = tx.flags if final else 0
            s = tx.stacked
            mac = bytes(32)
            raw = struct.pack(
                m.REPORT_FMT, DEVICE_ID, txid, tx.nonce, s[0], s[1], s[2], s[3],
                presented, tx.retracted, tx.rejected, status, flags, mac,
            )  # fmt: skip
            return r.parse_report(raw)

    def reset(self, timeout: float | None = None) -> int:
        with self._lock:
            self._enter("reset", timeout=timeout)
            if self.state not in (m.STATE_FAULT, m.STATE_IDLE, m.STATE_STACKED):
                raise _failed("reset", m.SEQUENCE_ERROR)
            if self.state == m.STATE_FAULT and self.jam_stuck:
                raise _failed("reset", m.HARDWARE_ERROR)
            moved = 0
            tx = self.open_tx
            if tx is not None:
                moved = sum(tx.stacked) - tx.rejected
                tx.rejected += moved
                self.reject_bin += moved
                self._finish(tx, m.PRESENT_NOT_PRESENTED, m.REPORT_FLAG_RECOVERED)
            self.state = m.STATE_IDLE
            return moved

    def set_config(self, retract_timeout_ms: int, timeout: float | None = None) -> None:
        with self._lock:
            self._enter("set_config", retract_timeout_ms, timeout=timeout)
            self.retract_timeout_ms = retract_timeout_ms

    def counters(self, timeout: float | None = None) -> dict[str, int]:
        with self._lock:
            self._enter("counters", timeout=timeout)
            return dict.fromkeys(m.COUNTER_NAMES, 0)

    def event_queue(self, maxsize: int = 0) -> EventSubscription:
        return self._bus.queue(maxsize)

    def close(self) -> None:
        self._bus.close()


# ----- bank ----------------------------------------------------------------------------------------
TOKEN_KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()


@dataclass
class Customer:
    customer_id: int
    account_id: int
    account_digits: str = "0042"
    mobile_digits: str = "1234"


def issue(c: Customer, amount: int = 0, *, key: Ed25519PrivateKey = TOKEN_KEY, age_s: int = 0) -> str:
    """The phone app's token (bank-signed); `age_s` beyond its 90 s life makes it expired."""
    now = int(time.time()) - age_s
    return qrtoken.issue(
        key, key_id=1, customer_id=c.customer_id, account_id=c.account_id, amount_yuan=amount,
        now_s=now, ttl_s=90,
    )  # fmt: skip


def fleet_config() -> FleetConfig:
    return FleetConfig(
        config_version=1,
        limits=FleetLimits(
            per_withdrawal_yuan=1000,
            per_customer_day_yuan=2000,
            per_account_total_yuan=100000,
        ),
        denominations=list(DENOMS),
        token_keys={"1": qrtoken.public_key_hex(TOKEN_KEY.public_key())},
        token_clock_skew_s=5,
        second_check_digits=4,
    )


@dataclass
class Sent:
    kind: str
    severity: str
    detail: dict[str, str | int]


class FakeBank:
    """The bank link (ports.Bank): connected or not, approving or declining as scripted, recording all.

    `answers` is consumed one per authorization: "approve", a Reason (decline), "timeout" (no answer
    in time) or "unreachable" (the broker went away); when empty, it approves. Each report is settled
    as the bank would (debited, reversed or suspect) and the result sent back through on_txn_result.
    """

    def __init__(self) -> None:
        self.atm = "ATM0001"
        self.fleet: FleetConfig | None = fleet_config()
        self.cassettes: list[Cassette] = []
        self.on_command: Callable[[Command], tuple[bool, str]] | None = None
        self.on_txn_result: Callable[[TxnResult], None] | None = None
        self.is_connected = True
        self.answers: list[str | Reason] = []
        self.requests: list[AuthRequest] = []
        self.events: list[Sent] = []
        self.reports: list[tuple[str, r.Report]] = []
        self.abandons: list[tuple[str | None, str | None, str]] = []  # (request_id, txid, reason)
        self.telemetry: list[tuple[str, dict[str, int]]] = []
        self.approved: dict[str, AuthRequest] = {}
        self.max_notes_seen: int | None = None  # the presenter capacity the last telemetry carried
        self._lock = threading.Lock()

    @property
    def connected(self) -> bool:
        return self.is_connected

    def authorize(self, req: AuthRequest, timeout_s: float = 10.0) -> AuthResponse:
        with self._lock:
            self.requests.append(req)
            answer = self.answers.pop(0) if self.answers else "approve"
        if answer == "timeout":
            raise BankTimeoutError(f"no answer to {req.request_id} in {timeout_s} s")
        if answer == "unreachable":
            raise BankLinkError("broker not reachable")
        if isinstance(answer, Reason):
            return AuthResponse(request_id=req.request_id, decision="decline", reason=answer)
        counts = [c.count for c in req.cassettes] or [200, 200, 200, 200]
        try:
            notes = denominate(req.amount_yuan, list(DENOMS), counts, req.max_notes)  # as the bank does
        except MsgError:
            return AuthResponse(request_id=req.request_id, decision="decline", reason=Reason.CANNOT_DISPENSE)
        txid = os.urandom(16)
        token = struct.pack(
            m.DISPENSE_TOKEN_FMT, bytes.fromhex(req.device_id), bytes.fromhex(req.command_nonce), txid,
            *notes, bytes(32),
        )  # fmt: skip
        with self._lock:
            self.approved[txid.hex()] = req
        return AuthResponse(
            request_id=req.request_id,
            decision="approve",
            txid=txid.hex(),
            amount_yuan=req.amount_yuan,
            notes=notes,
            dispense_token=token.hex(),
        )

    def send_event(self, kind: str, severity: str, detail: dict[str, str | int] | None = None) -> Event:
        with self._lock:
            self.events.append(Sent(kind, severity, dict(detail or {})))
        return Event(
            atm_id=self.atm, event_id=os.urandom(16).hex(), seq=0, ts_ms=0, kind=kind,
            severity=severity, detail=dict(detail or {}),  # type: ignore[arg-type]
        )  # fmt: skip

    def send_abandon(
        self,
        *,
        request_id: str | None,
        txid: str | None,
        reason: AbandonReason,
        detail: str,
    ) -> None:
        with self._lock:
            self.abandons.append((request_id, txid, reason))

    def send_report(self, txid: str, report: bytes) -> None:
        rep = r.parse_report(report)
        with self._lock:
            self.reports.append((txid, rep))
        cb = self.on_txn_result
        if cb is not None:
            cb(TxnResult(txid=txid, outcome=settle(rep), debited_yuan=0))

    def send_telemetry(self, state: str, counters: dict[str, int], max_notes: int | None = None) -> bool:
        with self._lock:
            self.telemetry.append((state, dict(counters)))
            self.max_notes_seen = max_notes
        return self.is_connected

    # ----- what the tests read ---------------------------------------------------------------------
    def kinds(self) -> list[str]:
        with self._lock:
            return [e.kind for e in self.events]

    def events_of(self, kind: str) -> list[Sent]:
        with self._lock:
            return [e for e in self.events if e.kind == kind]

    def reports_of(self, txid: str) -> list[r.Report]:
        with self._lock:
            return [rep for t, rep in self.reports if t == txid]


def settle(rep: r.Report) -> Literal["debited", "reversed", "suspect"]:
    """What the bank's ledger does with a final report (docs/bank.md)."""
    if rep.present_status == m.PRESENT_UNKNOWN or m.UNKNOWN_COUNT in (rep.presented, rep.retracted):
        return "suspect"
    if rep.present_status == m.PRESENT_NOT_PRESENTED or rep.presented == 0 or rep.retracted >= rep.presented:
        return "reversed"
    return "debited"
