"""Bank-link settings of one ATM: the broker settings of the contract plus this ATM's own options."""

from atm_msg.settings import BrokerSettings
from pydantic import ConfigDict, Field, field_validator


class LinkSettings(BrokerSettings):
    """Where and how the ATM reaches the bank's broker (the contract's BrokerSettings) and this ATM's ids.

    The MQTT client id is atm_id unless client_id is set; the broker's ACL expects atm_id.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    atm_id: str = Field(
        pattern=r"^[A-Za-z0-9_-]{1,32}$", description="This ATM's id (its topic level and CN)."
    )
    device_id: str = Field(pattern=r"^[0-9a-f]{16}$", description="The dispenser MCU's unique id (hex).")
    outbox_window: int = Field(default=20, ge=1, le=1000, description="Outbox records in flight at once.")
    request_expiry_s: int = Field(
        default=30, ge=1, le=120, description="MQTT message expiry of auth requests."
    )
    retry_s: float = Field(
        default=2.0, gt=0, le=30, description="Re-send an unanswered auth request after this."
    )
    answer_retry_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="Re-send a report/abandon the bank has not answered after this (doubling per try).",
    )
    answer_retry_max_s: float = Field(
        default=120.0, gt=0, le=3600, description="Longest wait between re-sends of an unanswered record."
    )
    host_version: str = Field(default="0.1.0", description="Host software version in the birth message.")
    command_keys: tuple[str, ...] = Field(
        default=(),
        description="Raw Ed25519 public keys (64 hex digits) whose signed remote commands this ATM obeys "
        "(the console's `keygen` prints one). None configured: the ATM obeys no remote command.",
    )

    @field_validator("command_keys")
    @classmethod
    def _keys_are_ed25519(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        for k in keys:
            if len(k) != 64 or any(c not in "0123456789abcdef" for c in k):
                raise ValueError(f"command_keys: {k[:16]}... is not 32 bytes of lower-case hex")
        return keys
