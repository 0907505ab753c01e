"""Versioned MQTT payload schemas (v1) shared by the bank and the ATM host; imports only pydantic.

Every payload is a JSON object with "v": 1. Unknown fields are refused (extra="forbid"), so a
sender on a newer version fails loudly instead of being half understood.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .reasons import Reason

SCHEMA_VERSION = 1
# The bound on one MQTT payload: the largest legitimate message, an AuthRequest with a 1,024-float face
# embedding, is about 26 KB of JSON (tests/bank/test_hardening.py builds the worst case). The broker
# refuses bigger publishes (message_size_limit, deploy/mosquitto) and the bank refuses them unparsed.
MAX_MESSAGE_BYTES = 65536

Hex16 = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="16 bytes as lower-case hex.")]
Hex8 = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$", description="8 bytes as lower-case hex.")]
AtmId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$", description="ATM id (topic level).")]
Digits = Annotated[str, Field(pattern=r"^[0-9]{2,8}$", description="Digits typed by the customer.")]


class Msg(BaseModel):
    """Base of every payload: strict, immutable, versioned.

    strict: no coercion, in JSON or Python: "100" is not an int, true is not 1, 1 is not true, 1.0 is
    not an int ("100" was once approved and paid, true once became 1 yuan). Enum fields take their
    values' text (see AuthResponse.reason).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    v: Literal[1] = Field(default=1, description="Schema version.")


class Cassette(Msg):
    """One cassette as the ATM reports it."""

    denomination: int = Field(ge=1, le=10000, description="Yuan per note.")
    count: int = Field(ge=0, le=65535, description="Notes the dispenser counts in it.")
    status: Literal["ok", "low", "empty", "missing"] = Field(default="ok", description="Unit fill status.")


class Birth(Msg):
    """Published at every connect (retained); the matching Death carries the same bd_seq."""

    atm_id: AtmId
    bd_seq: int = Field(ge=0, le=255, description="Birth/death sequence, +1 per connect.")
    seq: int = Field(ge=0, le=255, description="Message sequence: 0 on birth.")
    ts_ms: int = Field(ge=0, description="Host clock, ms since the epoch.")
    device_id: Hex8 = Field(description="The dispenser MCU's unique id.")
    host_version: str = Field(max_length=40, description="Host software version.")
    config_version: int = Field(ge=0, description="Fleet config version the ATM runs.")
    cassettes: list[Cassette] = Field(min_length=4, max_length=4, description="Cassettes 1-4.")


class Death(Msg):
    """The MQTT Will: the broker publishes it (retained) when the ATM drops off."""

    atm_id: AtmId
    bd_seq: int = Field(ge=0, le=255, description="Equals the bd_seq of the birth it ends.")
    ts_ms: int = Field(ge=0, description="Time the Will was registered (connect time).")


class Telemetry(Msg):
    """Periodic health, cash levels and counters."""

    atm_id: AtmId
    seq: int = Field(ge=0, le=255, description="Message sequence, wraps 255 -> 0.")
    ts_ms: int = Field(ge=0, description="Host clock, ms since the epoch.")
    state: Literal["in_service", "out_of_service", "maintenance", "fault"] = Field(
        description="ATM service state."
    )
    cassettes: list[Cassette] = Field(min_length=4, max_length=4, description="Cassettes 1-4.")
    counters: dict[str, int] = Field(default_factory=dict, description="Dispenser and link counters.")
    max_notes: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Presenter capacity the dispenser MCU states (None: not known).",
    )
    outbox_depth: int = Field(default=0, ge=0, description="Records waiting in the host outbox.")


class Event(Msg):
    """An event or alarm from the ATM, sent through the outbox (kept until acknowledged)."""

    atm_id: AtmId
    event_id: Hex16 = Field(description="Idempotency key: consumers drop a repeated event_id.")
    seq: int = Field(ge=0, le=255, description="Message sequence, wraps 255 -> 0.")
    ts_ms: int = Field(ge=0, description="Host clock, ms since the epoch.")
    kind: str = Field(max_length=40, description="e.g. items_taken, jam, tamper, cassette_threshold.")
    severity: Literal["info", "warning", "alarm"] = Field(description="How urgently the console shows it.")
    detail: dict[str, str | int] = Field(default_factory=dict, description="Event specific fields.")


class FaceProbe(Msg):
    """The face the ATM captured, as the vision pipeline's embedder produced it."""

    model_id: str = Field(max_length=64, description="Embedder model id; must equal the enrolled one.")
    template_version: int = Field(ge=1, description="Template format version; must equal the enrolled one.")
    embedding: list[float] = Field(min_length=16, max_length=1024, description="L2-normalised embedding.")
    liveness: float = Field(ge=0, le=1, description="Passive liveness score.")
    quality: float = Field(ge=0, le=1, description="Face quality score.")


class AuthRequest(Msg):
    """ATM -> bank: may this customer withdraw this amount here, now?"""

    request_id: Hex16 = Field(description="Idempotency key; a retry re-sends the same id.")
    atm_id: AtmId
    device_id: Hex8 = Field(description="The dispenser MCU's id (the dispense token names it).")
    command_nonce: Hex16 = Field(description="The MCU's outstanding command nonce.")
    qr_token: str = Field(min_length=10, max_length=400, description="The phone's QR token text.")
    amount_yuan: int = Field(ge=0, le=1_000_000, description="Requested amount in whole yuan.")
    face: FaceProbe = Field(description="Probe face.")
    account_digits: Digits = Field(description="Trailing digits of the account number.")
    mobile_digits: Digits = Field(description="Trailing digits of the mobile number.")
    cassettes: list[Cassette] = Field(min_length=4, max_length=4, description="Cash now in cassettes 1-4.")
    max_notes: int = Field(
        ge=1,
        le=65535,
        description="Presenter capacity in notes, as the dispenser MCU states it in its hello.",
    )
    ts_ms: int = Field(ge=0, description="Host clock when the request was made.")


class AuthResponse(Msg):
    """Bank -> ATM: approve with the MCU's dispense token, or decline with a reason."""

    request_id: Hex16 = Field(description="The request answered.")
    decision: Literal["approve", "decline"] = Field(description="The outcome.")
    reason: Reason | None = Field(
        default=None, strict=False, description="Decline reason code (None on approve); its text or the enum."
    )
    message: str = Field(default="", max_length=120, description="Text the ATM may show.")
    txid: Hex16 | None = Field(default=None, description="Transaction id on approve.")
    amount_yuan: int = Field(default=0, ge=0, description="Amount approved.")
    notes: list[int] | None = Field(default=None, description="Notes per cassette 1-4 on approve.")
    dispense_token: str | None = Field(
        default=None, description="80-byte MCU dispense token as hex, on approve."
    )
    retry_after_s: int | None = Field(
        default=None, ge=0, description="On lockout / too frequent: seconds to wait."
    )


class TxnReport(Msg):
    """ATM -> bank (through the outbox): the MCU's signed final present-status report."""

    atm_id: AtmId
    txid: Hex16 = Field(description="Transaction id (also the idempotency key).")
    report: str = Field(pattern=r"^[0-9a-f]+$", max_length=400, description="MCU report bytes as hex.")
    ts_ms: int = Field(ge=0, description="Host clock.")


AbandonReason = Literal["auth_timeout", "not_started"]  # why an ATM gave up (TxnAbandon)


class TxnAbandon(Msg):
    """ATM -> bank (through the outbox): the ATM gave up on a request or transaction it saw no note of.

    Sent after an authorization went unanswered (the MCU nonce is burnt, so a late approval can never
    dispense) and after a dispense the MCU never began (GET_REPORT unknown even after the nonce was burnt).
    The host's word is not proof: the bank never reverses on it, it parks an approved reservation as
    suspect (for reconciliation, or the MCU's signed report if one comes) and closes an undecided request.
    """

    atm_id: AtmId
    request_id: Hex16 | None = Field(default=None, description="The authorization request given up on.")
    txid: Hex16 | None = Field(default=None, description="The approved transaction, when the ATM has it.")
    reason: AbandonReason = Field(description="Why the ATM gave up.")
    detail: str = Field(default="", max_length=200, description="The host's error text.")
    ts_ms: int = Field(ge=0, description="Host clock.")

    @model_validator(mode="after")
    def _names_something(self) -> "TxnAbandon":
        if self.request_id is None and self.txid is None:
            raise ValueError("an abandon names a request_id, a txid or both")
        return self


class TxnResult(Msg):
    """Bank -> ATM: how the ledger settled the transaction."""

    txid: Hex16 = Field(description="Transaction id.")
    outcome: Literal["debited", "reversed", "suspect", "rejected", "pending"] = Field(
        description="Ledger state after the report."
    )
    debited_yuan: int = Field(default=0, ge=0, description="Amount finally debited.")
    detail: str = Field(default="", max_length=120, description="Why, for rejected reports.")


class Command(Msg):
    """Console/bank -> ATM: a remote command."""

    command_id: Hex16 = Field(description="Idempotency key; the ATM runs a command_id once.")
    name: Literal[
        "rebirth", "out_of_service", "in_service", "reboot", "send_counters", "apply_config", "maint"
    ] = Field(description="What to do. maint: args op (reject/count/open_shutter) and args (hex bytes).")
    args: dict[str, str | int] = Field(default_factory=dict, description="Command arguments.")
    expires_ms: int = Field(ge=0, description="Do not run after this time (ms since the epoch).")


class CommandResult(Msg):
    """ATM -> console: the outcome of a command."""

    command_id: Hex16 = Field(description="The command answered.")
    atm_id: AtmId
    ok: bool = Field(description="Whether it ran.")
    detail: str = Field(default="", max_length=200, description="Result or error text.")


class FleetLimits(Msg):
    """The limits every ATM re-checks locally (the bank stays the authority)."""

    per_withdrawal_yuan: int = Field(ge=1, description="Most one withdrawal may pay.")
    per_customer_day_yuan: int = Field(ge=1, description="Most one customer may withdraw per day.")
    per_account_total_yuan: int = Field(ge=1, description="Account's cardless lifetime cap.")


class FleetConfig(Msg):
    """Bank -> every ATM (retained): one rule set for every branch and region."""

    config_version: int = Field(ge=1, description="Version; ATMs report it in birth.")
    limits: FleetLimits = Field(description="Money limits.")
    denominations: list[int] = Field(min_length=4, max_length=4, description="Default yuan per note 1-4.")
    token_keys: dict[str, str] = Field(
        description="Ed25519 public keys (hex) by key id: the ATM checks QR tokens offline with them."
    )
    token_clock_skew_s: int = Field(ge=0, description="Tolerated clock skew for token expiry.")
    second_check_digits: int = Field(ge=2, le=8, description="Digits asked for the second check.")


class ConsoleAlarm(Msg):
    """Bank -> console: an abuse pattern or a ledger anomaly."""

    alarm_id: Hex16 = Field(description="Unique id.")
    ts_ms: int = Field(ge=0, description="Bank clock.")
    kind: str = Field(max_length=40, description="e.g. attempts_exceeded, lockout, rate_violations.")
    scope: Literal["customer", "account", "atm", "ledger"] = Field(description="What the subject is.")
    subject: str = Field(max_length=64, description="Customer id, account id or ATM id.")
    detail: str = Field(default="", max_length=200, description="Human readable detail.")


class Ack(Msg):
    """Bank -> ATM: acknowledges an event_id at application level (optional; the outbox uses PUBACK)."""

    event_id: Hex16 = Field(description="Event acknowledged.")


MaintOp = Literal["reject", "count", "open_shutter"]  # dispenser commands that need a maintenance token


class MaintRequest(Msg):
    """ATM -> bank: a maintenance token for the MCU's nonce, on behalf of an operator's signed command.

    operator_command is the console's signed `Command` (name "maint") exactly as the ATM received it on
    atm/v1/{atm}/cmd, with its signature (atm_msg.cmdsign user properties sig-alg, kid, sig).
    """

    request_id: Hex16 = Field(description="Idempotency key; a retry re-sends the same id.")
    atm_id: AtmId
    device_id: Hex8 = Field(description="The dispenser MCU's id (the token names it).")
    command_nonce: Hex16 = Field(description="The MCU's outstanding command nonce.")
    operator_command: str = Field(max_length=2000, description="The signed Command payload, verbatim.")
    sig_alg: str = Field(max_length=16, description="Signature algorithm of the operator's command.")
    kid: str = Field(max_length=64, description="Operator key id (atm_msg.cmdsign.key_id).")
    sig: str = Field(pattern=r"^[0-9a-f]{128}$", description="Ed25519 signature over topic and payload.")
    ts_ms: int = Field(ge=0, description="Host clock.")


class MaintResponse(Msg):
    """Bank -> ATM: the maintenance token (56 bytes hex: device id, nonce, MAC), or why not."""

    request_id: Hex16 = Field(description="The request answered.")
    ok: bool = Field(description="Whether a token was issued.")
    token: str | None = Field(default=None, pattern=r"^[0-9a-f]{112}$", description="auth.sign_maint bytes.")
    reason: str = Field(default="", max_length=120, description="Why not, when refused.")
