"""How a bank worker reaches the broker: address, credentials and TLS client certificate."""

from pydantic import BaseModel, ConfigDict, Field


class BrokerSettings(BaseModel):
    """MQTT connection settings of one bank worker."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    host: str = Field(default="127.0.0.1", description="Broker host name.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port.")
    username: str | None = Field(default=None, description="MQTT user name (None with client certificates).")
    password: str | None = Field(default=None, description="MQTT password.")
    ca_file: str | None = Field(
        default=None, description="CA that signed the broker's certificate (enables TLS)."
    )
    cert_file: str | None = Field(
        default=None, description="Client certificate (PEM); its CN is the identity."
    )
    key_file: str | None = Field(default=None, description="Client private key (PEM).")
    keepalive_s: int = Field(default=15, ge=5, le=600, description="MQTT keepalive.")
    group: str = Field(default="bank", pattern=r"^[A-Za-z0-9_-]+$", description="Shared-subscription group.")
