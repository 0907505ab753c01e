"""The console's configuration (validated, extra="forbid", every option described)."""

from pathlib import Path

from atm_msg.settings import BrokerSettings
from pydantic import BaseModel, ConfigDict, Field

BENCHMARK_AVAILABILITY = 0.9825  # industry benchmark for ATM availability (REFERENCE.md, Operations)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Thresholds(_Strict):
    """When the console calls a cassette low or empty (on top of the status the ATM reports)."""

    low_fraction: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="Low at or below this fraction of the count the cassette was last loaded with (a "
        "freshly loaded ATM is never low, however many notes it was given).",
    )
    low_notes: dict[int, int] = Field(
        default_factory=dict[int, int],
        description="Per cassette (1-4) a fixed low count instead of the fraction, e.g. {1: 300}.",
    )
    empty_notes: int = Field(default=20, ge=0, le=65535, description="At or below this count: empty.")
    silent_s: float = Field(
        default=35.0, gt=0, description="An online ATM with no message for this long is shown as silent."
    )


class LimitCaps(_Strict):
    """The loosest limits an operator may push: one rule set everywhere (MISSION), never looser."""

    per_withdrawal_yuan: int = Field(default=1000, ge=1, description="Cap of per_withdrawal_yuan.")
    per_customer_day_yuan: int = Field(default=2000, ge=1, description="Cap of per_customer_day_yuan.")
    per_account_total_yuan: int = Field(default=50000, ge=1, description="Cap of per_account_total_yuan.")


class ConsoleConfig(_Strict):
    """Everything `python -m atm_console serve` needs."""

    broker: BrokerSettings = Field(
        default_factory=lambda: BrokerSettings(client_id="atm-console"),
        description="The broker (the ACL's `console` user or CN=console certificate); client id "
        "atm-console, one console per id.",
    )
    http_host: str = Field(default="127.0.0.1", description="Address the web console listens on.")
    http_port: int = Field(default=8080, ge=0, le=65535, description="Port of the web console.")
    db_path: Path = Field(default=Path("var/console.db"), description="SQLite: operators and audit trail.")
    command_key: Path | None = Field(
        default=None, description="Ed25519 PEM key that signs commands; without it commands are refused."
    )
    command_ttl_s: int = Field(default=60, ge=5, le=3600, description="A command expires after this.")
    cookie_secure: bool = Field(
        default=False, description="Mark the session cookie Secure (set it when served over HTTPS)."
    )
    session_idle_s: int = Field(default=1800, ge=60, description="A session ends after this idle time.")
    thresholds: Thresholds = Field(default_factory=Thresholds, description="Cash thresholds.")
    limit_caps: LimitCaps = Field(default_factory=LimitCaps, description="Loosest pushable limits.")
    availability_bucket_s: int = Field(
        default=3600, ge=1, description="Width of one availability bar (1 h; tests use seconds)."
    )
    availability_buckets: int = Field(default=48, ge=1, le=24 * 31, description="Bars kept per ATM.")
    flush_s: float = Field(
        default=0.1, gt=0, le=5, description="Browser updates are batched this often (coalesces telemetry)."
    )
