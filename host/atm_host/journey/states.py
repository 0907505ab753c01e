"""The journey's states, the transitions allowed between them, and the snapshot the screen shows."""

from dataclasses import dataclass, field
from enum import StrEnum


class State(StrEnum):
    """Where the journey is. Values are stable: the screen and the docs use them."""

    OUT_OF_SERVICE = "out_of_service"
    IDLE = "idle"
    CHECK_TOKEN = "check_token"
    FACE = "face"
    CHALLENGE = "challenge"
    SECOND_CHECK = "second_check"
    AMOUNT = "amount"
    NONCE = "nonce"
    AUTHORIZE = "authorize"
    DISPENSE = "dispense"
    PRESENT = "present"
    REPORT = "report"
    END = "end"


S = State
# Every transition the machine may make; anything else is a bug (the machine asserts it).
# Cancel/timeout/failure lead to END before any money moved, to REPORT after it may have.
TRANSITIONS: dict[State, frozenset[State]] = {
    S.OUT_OF_SERVICE: frozenset({S.IDLE, S.OUT_OF_SERVICE}),
    S.IDLE: frozenset({S.CHECK_TOKEN, S.OUT_OF_SERVICE, S.IDLE}),
    S.CHECK_TOKEN: frozenset({S.FACE, S.END}),
    S.FACE: frozenset({S.CHALLENGE, S.SECOND_CHECK, S.END}),
    S.CHALLENGE: frozenset({S.SECOND_CHECK, S.END}),
    S.SECOND_CHECK: frozenset({S.AMOUNT, S.NONCE, S.END}),  # NONCE: the phone's token fixed the amount
    S.AMOUNT: frozenset({S.NONCE, S.END}),
    S.NONCE: frozenset({S.AUTHORIZE, S.END}),
    S.AUTHORIZE: frozenset({S.DISPENSE, S.END}),
    S.DISPENSE: frozenset({S.PRESENT, S.REPORT}),
    S.PRESENT: frozenset({S.REPORT}),
    S.REPORT: frozenset({S.END}),
    S.END: frozenset({S.IDLE, S.OUT_OF_SERVICE}),
}

# States where the customer can still cancel: no money has been asked for yet.
CANCELLABLE = frozenset({S.CHECK_TOKEN, S.FACE, S.CHALLENGE, S.SECOND_CHECK, S.AMOUNT})

# Progress shown on screen (1-based step of 5).
STEP: dict[State, int] = {
    S.CHECK_TOKEN: 1,
    S.FACE: 2,
    S.CHALLENGE: 2,
    S.SECOND_CHECK: 3,
    S.AMOUNT: 4,
    S.NONCE: 5,
    S.AUTHORIZE: 5,
    S.DISPENSE: 5,
    S.PRESENT: 5,
    S.REPORT: 5,
}


@dataclass
class Timings:
    """Marks of one journey (time.monotonic seconds) and the split into machine and person time."""

    marks: dict[str, float] = field(default_factory=dict[str, float])

    def mark(self, name: str, t: float) -> None:
        self.marks.setdefault(name, t)

    def span_ms(self, a: str, b: str) -> float | None:
        if a in self.marks and b in self.marks:
            return (self.marks[b] - self.marks[a]) * 1000.0
        return None

    def summary(self) -> dict[str, float]:
        """Machine time from the QR coming into view to the bank's approval, with the person excluded.

        machine = (qr_seen -> token_ok) + (face_seen -> face_ok) + (inputs_done -> approved);
        person  = (token_ok -> face_seen) + (face_ok -> inputs_done): walking up, typing, choosing.
        """
        out: dict[str, float] = {}
        pairs = {
            "qr_decode_ms": ("qr_seen", "qr_decoded"),
            "token_check_ms": ("qr_decoded", "token_ok"),
            "face_ms": ("face_seen", "face_ok"),
            "nonce_ms": ("inputs_done", "nonce_ok"),
            "authorize_ms": ("nonce_ok", "approved"),
            "person_face_ms": ("token_ok", "face_seen"),
            "person_input_ms": ("face_ok", "inputs_done"),
            "dispense_ms": ("approved", "stacked"),
            "present_ms": ("stacked", "presented"),
            "wall_qr_to_approval_ms": ("qr_seen", "approved"),
        }
        for name, (a, b) in pairs.items():
            v = self.span_ms(a, b)
            if v is not None:
                out[name] = v
        machine = ("qr_decode_ms", "token_check_ms", "face_ms", "nonce_ms", "authorize_ms")
        if all(k in out for k in machine):
            out["machine_qr_to_approval_ms"] = sum(out[k] for k in machine)
            out["person_ms"] = out.get("person_face_ms", 0.0) + out.get("person_input_ms", 0.0)
        return out


@dataclass(frozen=True)
class Snapshot:
    """Everything the screen needs to draw the current state; the screen decides nothing."""

    seq: int
    state: State
    prompt: dict[str, str]
    guidance: dict[str, str] | None = None
    step: int = 0
    deadline_s: float | None = None  # seconds left in this state
    digits_needed: int = 0
    entered: int = 0  # digits typed so far (never the digits themselves)
    keypad: str = ""  # which keypad field is active: account, mobile, amount
    presets: tuple[int, ...] = ()
    max_amount: int = 0
    amount: int = 0
    notes: int = 0
    outcome: str = ""
    outcome_text: dict[str, str] | None = None
    causes: tuple[str, ...] = ()
    causes_text: tuple[dict[str, str], ...] = ()
    timings: dict[str, float] = field(default_factory=dict[str, float])
    txid: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "state": self.state.value,
            "prompt": self.prompt,
            "guidance": self.guidance,
            "step": self.step,
            "deadline_s": None if self.deadline_s is None else round(self.deadline_s, 1),
            "digits_needed": self.digits_needed,
            "entered": self.entered,
            "keypad": self.keypad,
            "presets": list(self.presets),
            "max_amount": self.max_amount,
            "amount": self.amount,
            "notes": self.notes,
            "outcome": self.outcome,
            "outcome_text": self.outcome_text,
            "causes": list(self.causes),
            "causes_text": list(self.causes_text),
            "timings": {k: round(v, 1) for k, v in self.timings.items()},
            "txid": self.txid,
        }
