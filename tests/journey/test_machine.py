"""The journey state machine against fake devices: every timeout, cancel and failure path, fast.

Each test asserts what the customer read (the END snapshot's outcome text), what the bank was told
(requests, reports, events) and what the dispenser did (its recorded calls and where the notes are):
nothing is paid twice, no cash without the bank's approval, every approved transaction is reported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from atm_host.journey import messages as msg
from atm_host.journey.config import JourneyConfig
from atm_host.journey.machine import Journey, JourneyRecord
from atm_host.journey.states import Snapshot, State
from atm_host.link.timeouts import command_timeout
from atm_host.vision.frame import Frame
from atm_msg.reasons import Reason
from atm_msg.schemas import Command
from atm_wire import messages as m
from pydantic import ValidationError

from .fakes import (
    ATTACK,
    BROKEN,
    LIVE,
    MANY,
    NO_FACE,
    OTHER_KEY,
    POOR,
    UNSURE,
    Customer,
    FakeBank,
    FakeCamera,
    FakeDispenser,
    FakePipeline,
    issue,
    qr_frame,
    scene,
)

WAIT_S = 10.0  # generous: the machine is shared; nothing here asserts on time


def config(**timeouts: float) -> JourneyConfig:
    t: dict[str, float] = {
        "idle_check_s": 0.05,
        "token_check_s": 2.0,
        "face_s": 5.0,
        "challenge_s": 5.0,
        "second_check_s": 5.0,
        "amount_s": 5.0,
        "authorize_s": 1.0,
        "take_margin_s": 0.3,
        "result_s": 0.5,
        "outcome_s": 0.0,
    }
    t.update(timeouts)
    return JourneyConfig.model_validate(
        {"timeouts": t, "retract_timeout_ms": 1000, "reset_retry_s": 0.05, "telemetry_s": 0.2}
    )


@dataclass
class Rig:
    journey: Journey
    camera: FakeCamera
    disp: FakeDispenser
    bank: FakeBank
    pipe: FakePipeline
    snaps: list[Snapshot] = field(default_factory=list[Snapshot])
    on_state: dict[State, Callable[[], None]] = field(default_factory=dict[State, Callable[[], None]])
    _next_customer: int = 1000

    def customer(self) -> Customer:
        self._next_customer += 1
        return Customer(self._next_customer, self._next_customer + 4000)

    def listen(self, snap: Snapshot) -> None:
        self.snaps.append(snap)
        hook = self.on_state.pop(snap.state, None)
        if hook is not None:
            hook()

    def end_snapshot(self) -> Snapshot:
        return [s for s in self.snaps if s.state is State.END][-1]

    def visited(self, since: int = 0) -> list[State]:
        out: list[State] = []
        for s in self.snaps[since:]:
            if not out or out[-1] is not s.state:
                out.append(s.state)
        return out

    def walk(
        self,
        amount: int | None = 300,
        *,
        c: Customer | None = None,
        token: str | None = None,
        face: Frame | None = None,
        digits: tuple[str, str] | None = None,
        stop_at: State | None = None,
    ) -> JourneyRecord | None:
        """Play one customer up to `stop_at` (None: to the end, returning the journey's record)."""
        j = self.journey
        c = c or self.customer()
        done = len(j.records)

        def reach(*states: State) -> State | None:
            """Wait for one of `states`, or for the journey to have ended (None)."""
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline:
                if len(j.records) > done:
                    return None
                if j.state in states:
                    return j.state
                time.sleep(0.002)
            raise AssertionError(f"still {j.state}, wanted {states}")

        j.wait_state({State.IDLE}, WAIT_S)
        self.camera.show(qr_frame(token or issue(c)))
        state = reach(State.FACE)
        if stop_at is State.FACE:
            return None
        if state is State.FACE:
            self.camera.show(face if face is not None else scene(LIVE))
            state = reach(State.SECOND_CHECK, State.CHALLENGE)
            if stop_at is State.CHALLENGE:
                return None
            if state is State.CHALLENGE:
                state = reach(State.SECOND_CHECK)
        self.camera.show(scene(NO_FACE))
        if stop_at is State.SECOND_CHECK:
            return None
        if state is State.SECOND_CHECK:
            account, mobile = digits or (c.account_digits, c.mobile_digits)
            j.type(account)
            j.type(mobile)
            state = reach(State.AMOUNT, State.NONCE, State.AUTHORIZE, State.DISPENSE)
        if stop_at is State.AMOUNT:
            return None
        if state is State.AMOUNT and amount is not None:
            j.type(str(amount))
        return j.wait_records(done + 1, WAIT_S * 2)[done]

    def paid_once(self) -> None:
        """Nothing paid twice: one DISPENSE and at most one report per approved transaction."""
        sent = self.disp.dispensed_txids()
        assert len(sent) == len(set(sent)), "a dispense was re-sent"
        for txid in self.bank.approved:
            assert len(self.bank.reports_of(txid)) <= 1, f"{txid} reported twice"
        assert self.disp.total() == 800, "a note went missing"


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(
        cfg: JourneyConfig | None = None,
        *,
        disp: FakeDispenser | None = None,
        bank: FakeBank | None = None,
        pipe: FakePipeline | None = None,
        pending: list[str] | None = None,
        start_in_service: bool = True,
    ) -> Rig:
        path = tmp_path / f"pending-{len(rigs)}.json"
        if pending is not None:
            path.write_text(json.dumps(pending))
        camera = FakeCamera()
        disp, bank, pipe = disp or FakeDispenser(), bank or FakeBank(), pipe or FakePipeline()
        journey = Journey(cfg or config(), camera, disp, bank, pipe, pending_path=path)
        rig = Rig(journey, camera, disp, bank, pipe)
        rig.journey.subscribe(rig.listen)
        rig.journey.start()
        if start_in_service:
            rig.journey.wait_state({State.IDLE}, WAIT_S)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.journey.stop()
        rig.disp.close()


def wait_for(cond: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def assert_outcome(rig: Rig, rec: JourneyRecord | None, outcome: str) -> JourneyRecord:
    assert rec is not None and rec.outcome == outcome, rec
    end = rig.end_snapshot()
    assert end.outcome == outcome and end.outcome_text == msg.outcome(outcome).as_dict()
    assert outcome in msg.OUTCOMES
    ev = [e for e in rig.bank.events_of("journey") if e.detail["outcome"] == outcome]
    assert ev, f"no journey event for {outcome}"
    return rec


# ----- the paid path ---------------------------------------------------------------------------------
def test_paid_walks_every_state_pays_once_and_reports(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    since = len(rig.snaps)
    rec = assert_outcome(rig, rig.walk(380), "paid")
    assert rec.amount == 380 and rec.notes == (3, 1, 1, 1) and (rec.presented, rec.retracted) == (6, 0)
    assert rec.bank_result == "debited" and rig.disp.taken == 6
    path = [State.CHECK_TOKEN, State.FACE, State.SECOND_CHECK, State.AMOUNT, State.NONCE, State.AUTHORIZE]
    path += [State.DISPENSE, State.PRESENT, State.REPORT, State.END]
    visited = rig.visited(since)
    start = visited.index(State.CHECK_TOKEN)
    assert visited[start : start + len(path)] == path
    (rep,) = rig.bank.reports_of(rec.txid)
    assert rep.final and rep.taken and rep.presented == 6
    (req,) = rig.bank.requests
    assert req.account_digits == "0042" and req.mobile_digits == "1234" and req.amount_yuan == 380
    assert req.face.liveness > 0.9 and len(req.face.embedding) == 128
    assert rig.journey.counters["paid"] == 1 and not rig.journey.pending.all()
    assert {"machine_qr_to_approval_ms", "person_ms"} <= set(rec.timings)
    assert rig.disp.retract_timeout_ms == 1000  # configured at start
    assert rig.bank.events_of("versions")[0].detail["firmware"] == "1.0.0"
    rig.journey.wait_state({State.IDLE}, WAIT_S)
    rig.paid_once()


def test_a_token_that_fixes_the_amount_skips_the_amount_screen(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    c = rig.customer()
    since = len(rig.snaps)
    rec = assert_outcome(rig, rig.walk(None, c=c, token=issue(c, 200)), "paid")
    assert rec.amount == 200 and State.AMOUNT not in rig.visited(since)
    assert rig.bank.requests[-1].amount_yuan == 200


def test_the_same_qr_still_in_view_is_not_read_again(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    c = rig.customer()
    token = issue(c)
    assert_outcome(rig, rig.walk(100, c=c, token=token), "paid")
    rig.camera.show(qr_frame(token))
    reads = rig.camera.reads
    wait_for(lambda: rig.camera.reads > reads + 30)
    assert rig.journey.state is State.IDLE and len(rig.journey.records) == 1


# ----- timeouts: every state ends in a defined state with its message ---------------------------------
@pytest.mark.parametrize(
    ("state", "timeouts", "outcome"),
    [
        (State.CHECK_TOKEN, {"token_check_s": 1e-6}, "timeout"),
        (State.FACE, {"face_s": 0.3}, "timeout"),
        (State.CHALLENGE, {"challenge_s": 0.3}, "attack"),  # a challenge not passed in time is refused
        (State.SECOND_CHECK, {"second_check_s": 0.3}, "timeout"),
        (State.AMOUNT, {"amount_s": 0.3}, "timeout"),
    ],
)
def test_customer_states_time_out_to_end_then_idle(
    make_rig: Callable[..., Rig], state: State, timeouts: dict[str, float], outcome: str
) -> None:
    rig = make_rig(config(**timeouts), pipe=FakePipeline(challenge="hang"))
    j = rig.journey
    n = len(j.records)
    face = scene(UNSURE) if state is State.CHALLENGE else None
    if state is State.FACE:
        rig.walk(stop_at=State.FACE)  # nobody looks at the camera
    else:
        rig.walk(face=face, stop_at=state if state is not State.CHECK_TOKEN else None)
    rec = assert_outcome(rig, j.wait_records(n + 1, WAIT_S)[n], outcome)
    if outcome == "timeout":
        assert rec.reason == state.value
    assert rig.bank.requests == [] and rig.disp.count("dispense") == 0
    j.wait_state({State.IDLE}, WAIT_S)


def test_face_guidance_follows_what_the_camera_sees(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(config(face_s=1.0))
    j = rig.journey
    rig.walk(stop_at=State.FACE)
    for kind, key in ((NO_FACE, "no_face"), (MANY, "many_faces"), (POOR, "come closer")):
        rig.camera.show(scene(kind))
        wait_for(lambda key=key: j.snapshot.guidance == msg.guidance([key]).as_dict())
    rig.camera.show(scene(BROKEN))  # a model failing on a frame is skipped, not fatal
    assert_outcome(rig, j.wait_records(1, WAIT_S)[0], "timeout")


def test_an_attack_is_refused_before_the_bank_and_raises_the_alarm(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rec = assert_outcome(rig, rig.walk(face=scene(ATTACK)), "attack")
    assert rig.bank.requests == [] and rig.journey.counters["attacks"] == 1
    (alarm,) = rig.bank.events_of("presentation_attack")
    assert alarm.severity == "alarm" and alarm.detail["customer"] == rec.customer_id


def test_a_passed_challenge_vouches_for_liveness(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(pipe=FakePipeline(challenge="pass"))
    assert_outcome(rig, rig.walk(face=scene(UNSURE)), "paid")
    assert rig.bank.requests[-1].face.liveness == pytest.approx(rig.pipe.config.liveness.accept)
    assert len(rig.pipe.challenges) == 1


def test_a_failed_challenge_is_an_attack(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(pipe=FakePipeline(challenge="fail"))
    assert_outcome(rig, rig.walk(face=scene(UNSURE)), "attack")
    assert rig.bank.requests == []


# ----- cancel -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "state", [State.CHECK_TOKEN, State.FACE, State.CHALLENGE, State.SECOND_CHECK, State.AMOUNT]
)
def test_cancel_in_every_customer_state(make_rig: Callable[..., Rig], state: State) -> None:
    rig = make_rig(pipe=FakePipeline(challenge="hang"))
    j = rig.journey
    if state is State.CHECK_TOKEN:
        rig.on_state[State.CHECK_TOKEN] = j.cancel  # pressed while the token is being checked
        rec = rig.walk()
    else:
        face = scene(UNSURE) if state is State.CHALLENGE else None
        rig.walk(face=face, stop_at=state)
        j.wait_state({state}, WAIT_S)
        j.key("cancel")
        rec = j.wait_records(1, WAIT_S)[0]
    assert_outcome(rig, rec, "cancelled")
    assert rig.bank.requests == [] and rig.disp.count("get_nonce") == 0
    assert j.counters["cancelled"] == 1
    j.wait_state({State.IDLE}, WAIT_S)


@pytest.mark.parametrize("state", [State.NONCE, State.AUTHORIZE])
def test_cancel_is_not_honoured_once_the_bank_is_being_asked(
    make_rig: Callable[..., Rig], state: State
) -> None:
    rig = make_rig()
    rig.on_state[state] = rig.journey.cancel
    assert_outcome(rig, rig.walk(100), "paid")


def test_wrong_length_and_refused_amounts_are_explained_and_asked_again(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    j = rig.journey
    rig.walk(stop_at=State.SECOND_CHECK)
    j.wait_state({State.SECOND_CHECK}, WAIT_S)
    j.type("12")  # too short
    wait_for(lambda: (j.snapshot.guidance or {}).get("en") == "Please type 4 digits")
    for k in ("9", "back", "clear"):
        j.key(k)
    j.type("0042")
    j.type("1234")
    j.wait_state({State.AMOUNT}, WAIT_S)
    assert 1000 in j.snapshot.presets
    for amount, why in ((1500, "limit"), (105, "amount_invalid")):
        j.type(str(amount))
        wait_for(lambda why=why: j.snapshot.guidance == msg.outcome(why).as_dict())
        assert j.snapshot.state is State.AMOUNT
    j.key("preset:500")
    assert_outcome(rig, j.wait_records(1, WAIT_S)[0], "paid")
    assert rig.bank.requests[-1].amount_yuan == 500


def test_a_board_stating_a_smaller_capacity_is_refused_before_any_nonce(make_rig: Callable[..., Rig]) -> None:
    """The presenter capacity is the MCU's hello: amounts above it are refused before GET_NONCE."""
    rig = make_rig(disp=FakeDispenser(max_notes=5))
    j = rig.journey
    c = rig.customer()
    rec = rig.walk(None, c=c, token=issue(c, 600))  # the phone fixed 600 yuan: 6 notes of 100
    assert_outcome(rig, rec, "amount_invalid")
    assert rig.disp.count("get_nonce") == 0 and rig.bank.requests == []
    j.wait_state({State.IDLE}, WAIT_S)
    rig.walk(stop_at=State.AMOUNT)
    j.wait_state({State.AMOUNT}, WAIT_S)
    assert 500 in j.snapshot.presets and 1000 not in j.snapshot.presets  # 10 notes: more than 5
    j.type("380")  # 100+100+100+50+20+10: 6 notes
    wait_for(lambda: j.snapshot.guidance == msg.outcome("amount_invalid").as_dict())
    assert rig.disp.count("get_nonce") == 0 and rig.bank.requests == []
    j.type("500")
    assert_outcome(rig, j.wait_records(2, WAIT_S)[1], "paid")
    (req,) = rig.bank.requests
    assert req.max_notes == 5 and req.amount_yuan == 500  # the bank is told the board's capacity
    wait_for(lambda: rig.bank.max_notes_seen == 5)  # and the console, through telemetry


# ----- the bank's answers ----------------------------------------------------------------------------------
def test_every_decline_reason_ends_with_its_message_and_no_cash(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    for i, reason in enumerate(Reason):
        rig.bank.answers.append(reason)
        rec = rig.walk(100)
        expected = msg.DECLINE_OUTCOME.get(reason.value, "declined")
        assert_outcome(rig, rec, expected)
        assert rec is not None and rec.reason == reason.value and rec.txid == ""
        assert rig.journey.counters["declined"] == i + 1
    assert rig.disp.count("dispense") == 0 and rig.bank.reports == []


@pytest.mark.parametrize("answer", ["timeout", "unreachable"])
def test_no_answer_from_the_bank_pays_nothing_and_burns_the_nonce(
    make_rig: Callable[..., Rig], answer: str
) -> None:
    rig = make_rig()
    rig.bank.answers.append(answer)
    assert_outcome(rig, rig.walk(100), "bank_unreachable")
    assert rig.disp.count("dispense") == 0
    assert rig.disp.count("get_nonce") == 2  # the one the request named, then burnt
    (ev,) = rig.bank.events_of("auth_timeout")
    assert ev.detail["request_id"] == rig.bank.requests[0].request_id
    assert rig.bank.abandons == [(rig.bank.requests[0].request_id, None, "auth_timeout")]  # the bank is told


def test_bank_unreachable_or_unconfigured_is_out_of_service_and_back(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    j = rig.journey
    rig.bank.is_connected = False
    snap = j.wait_state({State.OUT_OF_SERVICE}, WAIT_S)
    assert snap.causes == ("bank_unreachable",) and snap.causes_text == (
        msg.CAUSES["bank_unreachable"].as_dict(),
    )
    assert snap.prompt == msg.prompt("out_of_service").as_dict()
    rig.bank.is_connected = True
    fleet, rig.bank.fleet = rig.bank.fleet, None
    wait_for(lambda: j.snapshot.causes == ("not_configured",))
    rig.bank.fleet = fleet
    j.wait_state({State.IDLE}, WAIT_S)
    assert rig.bank.events_of("in_service")
    assert_outcome(rig, rig.walk(100), "paid")


# ----- the dispenser's failures --------------------------------------------------------------------------
def test_nonce_failure_is_a_dispenser_fault_before_the_bank(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.disp.timeouts.add("get_nonce")
    assert_outcome(rig, rig.walk(100), "dispenser_fault")
    assert rig.bank.requests == [] and rig.disp.count("dispense") == 0


def test_a_jam_the_reset_clears_is_reversed_at_once(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.disp.jam_after = 2
    rec = assert_outcome(rig, rig.walk(500), "dispenser_fault")
    (rep,) = rig.bank.reports_of(rec.txid)
    assert (
        rep.present_status == m.PRESENT_NOT_PRESENTED and rep.rejected == 2 and rec.bank_result == "reversed"
    )
    assert rig.disp.reject_bin == 2 and rig.disp.taken == 0
    assert rig.bank.events_of("dispenser_fault")[0].detail["txid"] == rec.txid
    rig.journey.wait_state({State.IDLE}, WAIT_S)
    rig.paid_once()


def test_a_stuck_jam_is_suspect_out_of_service_then_settled_when_cleared(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    j = rig.journey
    rig.disp.jam_after, rig.disp.jam_stuck = 3, True
    rec = assert_outcome(rig, rig.walk(500), "suspect")
    assert j.pending.all() == [rec.txid] and rig.bank.reports_of(rec.txid) == []
    snap = j.wait_state({State.OUT_OF_SERVICE}, WAIT_S)
    assert "dispenser_fault" in snap.causes
    assert rig.bank.events_of("out_of_service")[-1].severity == "alarm"
    rig.disp.clear_jam()  # the technician frees the note: the ATM resets and is back by itself
    j.wait_state({State.IDLE}, WAIT_S)
    (rep,) = rig.bank.reports_of(rec.txid)
    assert rep.final and rep.present_status == m.PRESENT_NOT_PRESENTED and rig.disp.reject_bin == 3
    assert not j.pending.all() and rig.bank.events_of("pending_report_sent")
    assert rig.bank.events_of("in_service")
    rig.paid_once()


def test_notes_not_taken_are_retracted_by_the_mcu_and_reversed(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.disp.customer = "leave"
    rec = assert_outcome(rig, rig.walk(300), "retracted")
    assert (rec.presented, rec.retracted) == (3, 3) and rec.bank_result == "reversed"
    assert rig.disp.retract_bin == 3 and rig.disp.count("retract") == 0  # the MCU's own timer
    assert rig.journey.counters["retracted"] == 1
    rig.paid_once()


def test_present_timeout_without_any_event_is_retracted_by_the_host(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.disp.customer = "vanish"
    rec = assert_outcome(rig, rig.walk(200), "retracted")
    assert rig.disp.count("retract") == 1 and rig.disp.retract_bin == 2
    assert rig.bank.reports_of(rec.txid)[0].retracted == 2
    rig.paid_once()


MONEY_COMMANDS = {"get_nonce", "dispense", "present", "retract", "reset", "get_report", "status"}


def test_command_deadlines_are_the_link_tables_not_the_journeys(make_rig: Callable[..., Rig]) -> None:
    """One owner: the journey passes no deadline, so DispenserClient applies atm_host.link.timeouts."""
    with pytest.raises(ValidationError):
        JourneyConfig.model_validate({"timeouts": {"dispense_s": 30.0}})  # the old second owner is gone
    rig = make_rig()
    rig.disp.customer = "vanish"  # the host retracts
    assert_outcome(rig, rig.walk(200), "retracted")
    rig.journey.wait_state({State.IDLE}, WAIT_S)
    rig.disp.customer, rig.disp.jam_after = "take", 1  # the host resets after the jam
    assert_outcome(rig, rig.walk(300), "dispenser_fault")
    used = {name for name, _ in rig.disp.deadlines}
    assert {"get_nonce", "dispense", "present", "retract", "reset", "get_report"} <= used
    given = {(name, t) for name, t in rig.disp.deadlines if name in MONEY_COMMANDS and t is not None}
    assert given == set(), f"the journey set its own command deadlines: {given}"
    assert command_timeout("reset") > command_timeout("retract") > 20  # what the MCU gets, not 30 s flat


def test_unknown_present_status_after_a_power_loss_is_suspect(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.disp.customer = "power_cut"
    rec = assert_outcome(rig, rig.walk(300), "suspect")
    (rep,) = rig.bank.reports_of(rec.txid)
    assert rep.present_status == m.PRESENT_UNKNOWN and rec.bank_result == "suspect"
    ev = next(e for e in rig.bank.events_of("journey") if e.detail["outcome"] == "suspect")
    assert ev.severity == "warning"
    wait_for(lambda: rig.disp.retract_timeout_ms == 1000)  # re-applied after the MCU's reboot
    rig.paid_once()


def test_unknown_with_nothing_counted_is_suspect_not_not_charged(make_rig: Callable[..., Rig]) -> None:
    """Bug fixed: presented 0 with status unknown told the customer 'not charged' while the bank
    marked the transaction suspect."""
    rig = make_rig()
    disp = rig.disp
    original = disp._power_cut_in_present  # pyright: ignore[reportPrivateUsage]

    def cut(tx: object) -> None:
        original(tx)  # type: ignore[arg-type]
        tx.presented = 0  # type: ignore[attr-defined]
        tx.retracted = m.UNKNOWN_COUNT  # type: ignore[attr-defined]

    disp._power_cut_in_present = cut  # type: ignore[method-assign]
    disp.customer = "power_cut"
    rec = assert_outcome(rig, rig.walk(100), "suspect")
    assert rig.bank.reports_of(rec.txid)


def test_a_lost_dispense_answer_is_never_resent_and_is_settled_from_the_report(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    rig.disp.lost_answers.add("dispense")  # the notes were stacked; the completion never arrived
    rec = assert_outcome(rig, rig.walk(300), "dispenser_fault")
    assert rig.disp.count("dispense") == 1 and rig.disp.count("reset") >= 1
    (rep,) = rig.bank.reports_of(rec.txid)
    assert rep.present_status == m.PRESENT_NOT_PRESENTED and rig.disp.reject_bin == 3
    assert rig.disp.taken == 0
    rig.paid_once()


def test_a_dispense_refused_before_it_began_is_dropped_not_pending_forever(
    make_rig: Callable[..., Rig],
) -> None:
    """Bug fixed: the MCU refused DISPENSE (door opened, token) before journaling it; GET_REPORT then
    answers UNKNOWN_TRANSACTION for ever and the ATM stayed out of service with a pending txid."""
    rig = make_rig()
    j = rig.journey
    rig.disp.refuse_dispense = m.DOOR_OPEN
    rec = assert_outcome(rig, rig.walk(100), "dispenser_fault")
    assert not j.pending.all() and rig.bank.reports_of(rec.txid) == []
    (ev,) = rig.bank.events_of("dispense_not_started")
    assert ev.detail["txid"] == rec.txid
    assert rig.bank.abandons == [(None, rec.txid, "not_started")]  # the bank parks the hold as suspect
    assert rig.disp.count("get_nonce") == 2  # burnt before concluding: a queued DISPENSE can never run
    rig.disp.refuse_dispense = None
    j.wait_state({State.IDLE}, WAIT_S)
    assert_outcome(rig, rig.walk(100), "paid")


def test_an_unreadable_report_stays_pending_out_of_service_until_sent(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    j = rig.journey
    rig.disp.timeouts.add("get_report")
    rec = assert_outcome(rig, rig.walk(200), "suspect")
    assert j.pending.all() == [rec.txid] and rig.disp.taken == 2
    assert "dispenser_fault" in j.wait_state({State.OUT_OF_SERVICE}, WAIT_S).causes
    rig.disp.timeouts.clear()
    j.wait_state({State.IDLE}, WAIT_S)
    (rep,) = rig.bank.reports_of(rec.txid)
    assert rep.taken and rep.presented == 2
    rig.paid_once()


def test_pending_reports_of_a_crash_are_sent_at_start(make_rig: Callable[..., Rig]) -> None:
    disp = FakeDispenser()
    bank = FakeBank()
    # A previous run approved, dispensed and presented, then the host died: the MCU finished alone.
    first = make_rig(disp=disp, bank=bank)
    rec = assert_outcome(first, first.walk(100), "paid")
    first.journey.stop()
    txid = rec.txid
    bank.reports.clear()
    rig = make_rig(disp=disp, bank=bank, pending=[txid])
    (rep,) = rig.bank.reports_of(txid)
    assert rep.taken and not rig.journey.pending.all()


def test_cassettes_empty_is_out_of_service_and_back_after_replenishment(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    j = rig.journey
    saved = list(rig.disp.counts)
    rig.disp.counts = [0, 0, 0, 0]
    snap = j.wait_state({State.OUT_OF_SERVICE}, WAIT_S)
    assert snap.causes == ("cassettes_empty",)
    assert [c.status for c in rig.bank.cassettes] == ["empty"] * 4
    rig.disp.counts = saved
    j.wait_state({State.IDLE}, WAIT_S)


@pytest.mark.parametrize(("flag", "cause"), [("tamper", "tamper"), ("door_open", "door_open")])
def test_tamper_and_door_are_out_of_service_and_back(
    make_rig: Callable[..., Rig], flag: str, cause: str
) -> None:
    rig = make_rig()
    j = rig.journey
    setattr(rig.disp, flag, True)
    assert cause in j.wait_state({State.OUT_OF_SERVICE}, WAIT_S).causes
    wait_for(lambda: any(cause in str(e.detail) for e in rig.bank.events_of("out_of_service")))
    wait_for(lambda: any(s in {"fault", "out_of_service"} for s, _ in rig.bank.telemetry))
    setattr(rig.disp, flag, False)
    j.wait_state({State.IDLE}, WAIT_S)
    assert rig.bank.events_of("in_service")


def test_operator_commands_take_the_atm_out_of_service_and_back(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    j = rig.journey
    assert rig.bank.on_command is not None
    cmd = Command(command_id="00" * 16, name="out_of_service", expires_ms=2**40)
    assert rig.bank.on_command(cmd)[0]
    assert j.wait_state({State.OUT_OF_SERVICE}, WAIT_S).causes == ("operator",)
    wait_for(lambda: any(s == "maintenance" for s, _ in rig.bank.telemetry))
    assert rig.bank.on_command(cmd.model_copy(update={"name": "in_service"}))[0]
    j.wait_state({State.IDLE}, WAIT_S)
    assert not rig.bank.on_command(cmd.model_copy(update={"name": "reboot"}))[0]


def test_a_camera_that_dies_mid_journey_ends_it_and_the_atm_carries_on(make_rig: Callable[..., Rig]) -> None:
    """Bug fixed: an unexpected error inside a journey left the machine in that state for ever
    (every later transition was refused as illegal)."""
    rig = make_rig()
    j = rig.journey
    rig.walk(stop_at=State.FACE)
    rig.camera.broken = True
    rec = assert_outcome(rig, j.wait_records(1, WAIT_S)[0], "out_of_service")
    assert "camera disconnected" in rec.reason and rig.bank.requests == []
    rig.camera.broken = False
    j.wait_state({State.IDLE}, WAIT_S)
    assert_outcome(rig, rig.walk(100), "paid")


# ----- the dispenser link ----------------------------------------------------------------------------------
def test_link_lost_mid_dispense_is_settled_once_the_port_is_back(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    j = rig.journey
    rig.disp.cut_after = "dispense"  # notes stacked, then the cable is pulled
    rec = assert_outcome(rig, rig.walk(400), "suspect")
    assert j.pending.all() == [rec.txid]
    snap = j.wait_state({State.OUT_OF_SERVICE}, WAIT_S)
    assert "dispenser_link_lost" in snap.causes
    assert msg.CAUSES["dispenser_link_lost"].as_dict() in snap.causes_text
    (lost,) = rig.bank.events_of("dispenser_link")
    assert lost.severity == "alarm" and lost.detail["state"] == "lost"
    wait_for(lambda: any(s == "fault" for s, _ in rig.bank.telemetry))
    checks = rig.disp.count("status")  # every health check asks the (gone) port for its status
    wait_for(lambda: rig.disp.count("status") >= checks + 3)  # three more checks with the port gone...
    assert j.state is State.OUT_OF_SERVICE and j.counters["link_lost"] == 1
    rig.disp.link_lost = False  # plugged back in
    j.wait_state({State.IDLE}, WAIT_S)
    (rep,) = rig.bank.reports_of(rec.txid)
    assert rep.present_status == m.PRESENT_NOT_PRESENTED and rig.disp.taken == 0 and rig.disp.reject_bin == 4
    assert [e.detail["state"] for e in rig.bank.events_of("dispenser_link")] == ["lost", "restored"]
    assert rig.disp.count("dispense") == 1 and j.counters["link_restored"] == 1
    assert_outcome(rig, rig.walk(100), "paid")
    rig.paid_once()


def test_a_reflashed_mcu_is_reconfigured_and_its_version_reported(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.disp.link_lost = True
    rig.journey.wait_state({State.OUT_OF_SERVICE}, WAIT_S)
    rig.disp.reboot(firmware=(1, 1, 0))  # reflashed while unplugged: config forgotten, new hello
    rig.disp.link_lost = False
    rig.journey.wait_state({State.IDLE}, WAIT_S)
    assert rig.disp.retract_timeout_ms == 1000
    assert [e.detail["firmware"] for e in rig.bank.events_of("versions")] == ["1.0.0", "1.1.0"]
    assert rig.bank.events_of("dispenser_link")[-1].detail["firmware"] == "1.1.0"


def test_a_dispenser_absent_at_start_is_configured_when_it_answers(make_rig: Callable[..., Rig]) -> None:
    disp = FakeDispenser()
    disp.link_lost = True
    rig = make_rig(disp=disp, start_in_service=False)
    snap = rig.journey.wait_state({State.OUT_OF_SERVICE}, WAIT_S)
    wait_for(lambda: "dispenser_link_lost" in rig.journey.snapshot.causes)
    assert snap.state is State.OUT_OF_SERVICE and rig.bank.events_of("versions") == []
    disp.link_lost = False
    rig.journey.wait_state({State.IDLE}, WAIT_S)
    assert disp.retract_timeout_ms == 1000 and rig.bank.events_of("versions")


def test_a_forged_or_expired_token_never_reaches_the_bank(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    c = rig.customer()
    rec = assert_outcome(rig, rig.walk(token=issue(c, key=OTHER_KEY)), "token_invalid")
    assert rec.reason == "TOKEN_FORGED"
    c2 = rig.customer()
    assert_outcome(rig, rig.walk(token=issue(c2, age_s=600)), "token_expired")
    assert rig.bank.requests == []


def test_stop_ends_the_thread(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.journey.stop()
    assert not rig.journey.alive
