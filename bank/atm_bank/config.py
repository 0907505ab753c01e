"""The bank's configuration: one rule set for every branch and region, validated with extra="forbid"."""

import json
import math
from pathlib import Path

from atm_msg.qrtoken import MAX_TOKEN_TTL_S
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Strict):
    """Money limits (integer yuan), enforced atomically by the bank and re-checked on the ATM."""

    per_withdrawal_yuan: int = Field(
        default=1000, ge=1, description="Most one withdrawal at one terminal may pay."
    )
    per_customer_day_yuan: int = Field(
        default=2000, ge=1, description="Most one customer may withdraw per day."
    )
    per_account_total_yuan: int = Field(
        default=50000, ge=1, description="Cap on an account's cardless withdrawals over its whole life."
    )
    day_utc_offset_hours: int = Field(
        default=8, ge=-12, le=14, description="The business day's time zone (UTC+8 for yuan accounts)."
    )


class Abuse(_Strict):
    """Attempt limits from the Korean 1-won lesson: per customer, account and ATM, per day."""

    max_attempts_customer_day: int = Field(
        default=5, ge=1, description="Verification attempts per customer per day."
    )
    max_attempts_account_day: int = Field(
        default=5, ge=1, description="Verification attempts per account per day."
    )
    max_attempts_atm_day: int = Field(
        default=2000, ge=1, description="Authorization attempts per ATM per day."
    )
    min_interval_s: float = Field(
        default=10.0, ge=0, description="Minimum seconds between two attempts of one customer."
    )
    failures_before_lockout: int = Field(
        default=3, ge=1, description="Consecutive failures that lock a customer."
    )
    lockout_steps_s: list[int] = Field(
        default=[900, 3600, 86400],
        min_length=1,
        description="Escalating lockout durations; the last repeats for every further lockout.",
    )
    alarm_rate_violations: int = Field(
        default=20,
        ge=1,
        description="Too-frequent attempts by one subject in a day that raise a console alarm.",
    )
    alarm_invalid_tokens_atm: int = Field(
        default=50,
        ge=1,
        description="Invalid QR tokens (forged, tampered, expired, replayed) from one ATM in a day that "
        "raise a console alarm (a forged-token flood).",
    )


class Face(_Strict):
    """Face verification thresholds."""

    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Cosine-similarity threshold per model_id; models/manifest.json overrides when named.",
    )
    min_liveness: float = Field(default=0.9, ge=0, le=1, description="Lowest accepted liveness score.")
    min_quality: float = Field(default=0.5, ge=0, le=1, description="Lowest accepted probe quality score.")


class Tokens(_Strict):
    """QR withdrawal tokens."""

    ttl_s: int = Field(
        default=90, ge=5, le=MAX_TOKEN_TTL_S, description="Lifetime of a new phone token (<= 120 s)."
    )
    clock_skew_s: int = Field(
        default=5, ge=0, le=30, description="Tolerated clock difference phone/ATM/bank."
    )
    request_ttl_s: int = Field(
        default=30, ge=1, le=120, description="Age beyond which an auth request is stale."
    )
    second_check_digits: int = Field(
        default=4, ge=2, le=8, description="Trailing digits asked for the second check."
    )


class BankConfig(_Strict):
    """Everything the bank decides with; the fleet part is pushed to every ATM."""

    config_version: int = Field(
        default=1, ge=1, description="Bumped on every change; ATMs report what they run."
    )
    limits: Limits = Field(default_factory=Limits, description="Money limits.")
    abuse: Abuse = Field(default_factory=Abuse, description="Attempt limits and lockouts.")
    face: Face = Field(default_factory=Face, description="Face verification.")
    tokens: Tokens = Field(default_factory=Tokens, description="Phone tokens and request freshness.")
    default_denominations: list[int] = Field(
        default=[100, 50, 20, 10], min_length=4, max_length=4, description="Yuan per note of cassettes 1-4."
    )
    manifest_path: str | None = Field(
        default=None, description="models/manifest.json to take embedder thresholds from (None: config only)."
    )
    operator_keys: list[str] = Field(
        default_factory=list[str],
        description="Raw Ed25519 public keys (64 hex) of the operators' consoles whose signed maint "
        "commands the bank turns into maintenance tokens (none: no maintenance token is ever issued).",
    )

    @field_validator("operator_keys")
    @classmethod
    def _ed25519_hex(cls, keys: list[str]) -> list[str]:
        for k in keys:
            if len(k) != 64 or any(c not in "0123456789abcdef" for c in k):
                raise ValueError(f"operator_keys: {k[:16]}... is not 32 bytes of lower-case hex")
        return keys

    @field_validator("default_denominations")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(d <= 0 for d in value):
            raise ValueError("default_denominations: every denomination must be > 0")
        return value

    _thresholds: dict[str, float] = PrivateAttr(default_factory=dict[str, float])

    @model_validator(mode="after")
    def _resolve_thresholds(self) -> "BankConfig":
        """Read the manifest once, here: a bad manifest or threshold is a config error, not a decline."""
        merged = dict(self.face.thresholds)
        if self.manifest_path:
            merged.update(manifest_thresholds(Path(self.manifest_path)))
        for model_id, value in merged.items():
            _check_threshold(model_id, value)
        self._thresholds = merged
        return self

    @property
    def thresholds(self) -> dict[str, float]:
        """Match threshold per embedder model_id, fixed when the config was loaded."""
        return dict(self._thresholds)

    def threshold_for(self, model_id: str) -> float | None:
        """The match threshold of an embedder: the manifest's operating point, else config, else None."""
        return self._thresholds.get(model_id)

    def require_thresholds(self) -> None:
        """Fail closed at start: a bank with no valid face threshold would decline every customer."""
        if not self._thresholds:
            raise ConfigError(
                "no face threshold: set face.thresholds or manifest_path (models/manifest.json "
                "models[model_id].operating_point.threshold); the bank does not start without one"
            )


def _check_threshold(model_id: str, value: float) -> None:
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise ValueError(f"face threshold of {model_id!r} must be a cosine in (0, 1), not {value!r}")


def manifest_thresholds(path: Path) -> dict[str, float]:
    """models[*].operating_point.threshold from the vision manifest; ValueError when unreadable or bad.

    Models without an operating point (detectors, liveness) are skipped; an operating point without a
    numeric threshold is an error, so a half-written manifest stops the bank instead of disabling a model.
    """
    try:
        raw: object = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"manifest_path {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ValueError(f"manifest_path {path}: not JSON ({exc})") from exc
    models = raw.get("models") if isinstance(raw, dict) else None  # type: ignore[union-attr]
    if not isinstance(models, dict):
        raise ValueError(f'manifest_path {path}: no "models" object')
    found: dict[str, float] = {}
    for model_id, entry in models.items():  # type: ignore[union-attr]
        op = entry.get("operating_point") if isinstance(entry, dict) else None  # type: ignore[union-attr]
        if op is None:
            continue
        thr = op.get("threshold") if isinstance(op, dict) else None  # type: ignore[union-attr]
        if isinstance(thr, bool) or not isinstance(thr, int | float):
            raise ValueError(f"manifest_path {path}: models.{model_id}.operating_point.threshold missing")
        found[str(model_id)] = float(thr)  # type: ignore[arg-type]
    if not found:
        raise ValueError(f"manifest_path {path}: no model has an operating_point.threshold")
    return found


def load_config(path: Path | None) -> BankConfig:
    """Load and validate the bank config (JSON); None gives the defaults."""
    if path is None:
        return BankConfig()
    try:
        return BankConfig.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"bank config {path}: {exc}") from exc
    except ValidationError as exc:
        raise ConfigError(f"bank config {path} is invalid: {exc}") from exc
