"""How any MQTT client of the system (bank worker, ATM host, console) reaches the broker."""

from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .errors import BrokerSettingsError


class BrokerSettings(BaseModel):
    """Broker address, identity, credentials and TLS files of one MQTT client.

    TLS is on exactly when ca_file is set; a client certificate without a CA is refused (it would
    silently not be used). A password comes from password_file (one line) or, for tests and old
    command lines, password; never both.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    host: str = Field(default="127.0.0.1", min_length=1, description="Broker host name or address.")
    port: int = Field(
        default=8883, ge=1, le=65535, description="Broker port (8883: the TLS listener of deploy/mosquitto)."
    )
    ca_file: str | None = Field(
        default=None, description="CA that signed the broker's certificate (PEM); set, TLS is on."
    )
    cert_file: str | None = Field(
        default=None, description="Client certificate (PEM); its CN is the identity the broker ACL checks."
    )
    key_file: str | None = Field(default=None, description="Private key of cert_file (PEM).")
    client_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="MQTT client id; None: the program's own (bank: worker name, ATM: atm_id, console: "
        "atm-console). Fixed, because sessions persist under it.",
    )
    keepalive_s: int = Field(
        default=10, ge=2, le=600, description="MQTT keepalive; the Will fires after 1.5x this silence."
    )
    username: str | None = Field(
        default=None, min_length=1, description="MQTT user name (None with client certificates)."
    )
    password_file: Path | None = Field(
        default=None, description="File whose first line is the MQTT password (kept out of `ps`)."
    )
    password: str | None = Field(
        default=None, description="MQTT password given directly (prefer password_file)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        if (self.password is not None or self.password_file is not None) and self.username is None:
            raise ValueError("a password needs a username")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file without cert_file")
        if self.cert_file is not None and self.ca_file is None:
            raise ValueError("cert_file without ca_file: TLS is off, the certificate would not be used")
        return self

    def read_password(self) -> str | None:
        """The password: password, else password_file's first line, else None."""
        if self.password_file is None:
            return self.password
        try:
            text = self.password_file.read_text()
        except OSError as exc:
            raise BrokerSettingsError(f"password_file {self.password_file}: {exc.strerror}") from exc
        lines = text.splitlines()
        if not lines or not lines[0]:
            raise BrokerSettingsError(f"password_file {self.password_file} is empty")
        return lines[0]

    @property
    def address(self) -> str:
        """host:port, and whether TLS is on, for log lines and error messages."""
        return f"{self.host}:{self.port}" + (" (TLS)" if self.ca_file else "")
