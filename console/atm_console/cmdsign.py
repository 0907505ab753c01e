"""The console's command key: signs outgoing remote commands (the format is atm_bank.cmdsign's)."""

from pathlib import Path

from atm_bank import signing
from atm_bank.cmdsign import ALG, DOMAIN, key_id, public_hex, sign_properties, signed_bytes, verify
from atm_bank.errors import BankError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .errors import ConfigError

__all__ = ["ALG", "DOMAIN", "CommandSigner", "generate_key", "key_id", "public_hex", "signed_bytes", "verify"]


class CommandSigner:
    """Holds the console's command key and signs outgoing commands."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public = key.public_key()
        self.kid = key_id(self.public)

    @classmethod
    def from_file(cls, path: Path) -> "CommandSigner":
        try:
            return cls(signing.load(path))
        except BankError as exc:
            raise ConfigError(f"command_key: {exc}") from exc

    def properties(self, topic: str, payload: bytes) -> list[tuple[str, str]]:
        """The MQTT 5 user properties to publish with `payload` on `topic`."""
        return sign_properties(self._key, topic, payload)


def generate_key(path: Path) -> CommandSigner:
    """Create a command key file (mode 0600, never overwritten)."""
    try:
        return CommandSigner(signing.generate(path))
    except BankError as exc:
        raise ConfigError(f"command_key: {exc}") from exc
