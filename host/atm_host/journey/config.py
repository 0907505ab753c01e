"""Journey settings (pydantic, extra="forbid", every field described): timeouts, presets, face capture."""

from pydantic import BaseModel, ConfigDict, Field


class Timeouts(BaseModel):
    """How long each customer-facing state may last (seconds); on expiry the journey ends in a defined state.

    Dispenser command deadlines are not here: atm_host.link.timeouts owns them (the journey asks it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    idle_check_s: float = Field(
        default=1.0, gt=0, le=60, description="IDLE re-checks the ATM's health at least this often."
    )
    token_check_s: float = Field(default=2.0, gt=0, le=30, description="Offline QR token check.")
    face_s: float = Field(
        default=20.0, gt=0, le=120, description="Time the customer has to present a good, live face."
    )
    challenge_s: float = Field(
        default=4.0, gt=0, le=30, description="Active liveness challenge (blink/turn) when passive is unsure."
    )
    second_check_s: float = Field(
        default=30.0, gt=0, le=300, description="Time to type the account and mobile digits."
    )
    amount_s: float = Field(default=30.0, gt=0, le=300, description="Time to choose the amount.")
    authorize_s: float = Field(
        default=10.0, gt=0, le=60, description="Bank answer; the same request id is re-sent until then."
    )
    take_margin_s: float = Field(
        default=10.0, gt=0, le=60, description="Wait for taken/retracted beyond the MCU's retract timeout."
    )
    result_s: float = Field(
        default=3.0, ge=0, le=60, description="Wait this long for the bank's ledger result to show it."
    )
    outcome_s: float = Field(default=4.0, ge=0, le=60, description="The outcome stays on screen this long.")


class JourneyConfig(BaseModel):
    """Everything the state machine decides with locally (the bank stays the authority on money)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Per-state timeouts.")
    presets_yuan: list[int] = Field(
        default=[100, 200, 500, 1000], min_length=1, max_length=8, description="Amount buttons."
    )
    face_frames: int = Field(
        default=2, ge=1, le=10, description="Good live frames averaged into the probe sent to the bank."
    )
    attack_frames: int = Field(
        default=2, ge=1, le=10, description="Frames judged an attack before the journey stops as an attack."
    )
    retract_timeout_ms: int = Field(
        default=30000, ge=1000, le=120000, description="MCU: present -> retract after this (30-45 s typical)."
    )
    min_notes_low: int = Field(
        default=20, ge=0, description="A cassette at or under this count reports 'low' to the bank."
    )
    reset_retry_s: float = Field(
        default=3.0, gt=0, le=600, description="A faulted dispenser is reset at most this often to recover."
    )
    telemetry_s: float = Field(default=10.0, gt=0, le=3600, description="Telemetry period to the console.")
    camera_fps: float = Field(default=30.0, gt=0, le=120, description="Frame rate the camera is read at.")
