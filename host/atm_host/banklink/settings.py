"""Bank-link settings of one ATM (validated, extra="forbid", every option described)."""

from pydantic import BaseModel, ConfigDict, Field, field_validator


class LinkSettings(BaseModel):
    """Where and how the ATM reaches the bank's broker."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    atm_id: str = Field(
        pattern=r"^[A-Za-z0-9_-]{1,32}$", description="This ATM's id (its topic level and CN)."
    )
    device_id: str = Field(pattern=r"^[0-9a-f]{16}$", description="The dispenser MCU's unique id (hex).")
    host: str = Field(default="127.0.0.1", description="Broker host name.")
    port: int = Field(default=8883, ge=1, le=65535, description="Broker port.")
    ca_file: str | None = Field(default=None, description="CA of the broker certificate (enables TLS).")
    cert_file: str | None = Field(default=None, description="This ATM's client certificate (CN = atm_id).")
    key_file: str | None = Field(default=None, description="This ATM's client key.")
    username: str | None = Field(default=None, description="MQTT user name when not using certificates.")
    password: str | None = Field(default=None, description="MQTT password when not using certificates.")
    keepalive_s: int = Field(
        default=10, ge=2, le=600, description="MQTT keepalive; the Will fires after 1.5x."
    )
    outbox_window: int = Field(default=20, ge=1, le=1000, description="Outbox records in flight at once.")
    request_expiry_s: int = Field(
        default=30, ge=1, le=120, description="MQTT message expiry of auth requests."
    )
    retry_s: float = Field(
        default=2.0, gt=0, le=30, description="Re-send an unanswered auth request after this."
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
