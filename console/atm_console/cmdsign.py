"""Signed remote commands: Ed25519 over (domain, topic, payload), carried in MQTT 5 user properties.

Wire format (docs/console.md, "Command signing"). The `Command` JSON payload is unchanged (its schema
refuses extra fields); the signature travels beside it as MQTT 5 user properties:

    sig-alg = "ed25519"
    kid     = first 8 bytes of SHA-256(raw 32-byte public key), hex
    sig     = Ed25519 signature, hex, over  b"atm-cmd-v1\\n" + topic + b"\\n" + payload

Binding the topic means a command signed for ATM0001 cannot be replayed to ATM0002; the ATM still
runs each command_id once and refuses one past expires_ms. This module imports no MQTT library so the
ATM side can use `verify` as is.
"""

import hashlib
import hmac
from pathlib import Path

from atm_bank import signing
from atm_bank.errors import BankError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import ConfigError

DOMAIN = b"atm-cmd-v1\n"
ALG = "ed25519"


def signed_bytes(topic: str, payload: bytes) -> bytes:
    """The exact bytes the signature covers."""
    return DOMAIN + topic.encode() + b"\n" + payload


def key_id(public: Ed25519PublicKey) -> str:
    """Short id of a command-signing public key."""
    return hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).digest()[:8].hex()


def public_hex(public: Ed25519PublicKey) -> str:
    """Raw public key as hex: what an ATM is provisioned with."""
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


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
        sig = self._key.sign(signed_bytes(topic, payload)).hex()
        return [("sig-alg", ALG), ("kid", self.kid), ("sig", sig)]


def generate_key(path: Path) -> CommandSigner:
    """Create a command key file (mode 0600, never overwritten)."""
    try:
        return CommandSigner(signing.generate(path))
    except BankError as exc:
        raise ConfigError(f"command_key: {exc}") from exc


def verify(
    topic: str, payload: bytes, user_properties: list[tuple[str, str]], keys: dict[str, Ed25519PublicKey]
) -> bool:
    """ATM side: True only when a known key signed exactly this payload for exactly this topic."""
    props = dict(user_properties)
    if props.get("sig-alg") != ALG:
        return False
    kid = props.get("kid", "")
    public = next((k for i, k in keys.items() if hmac.compare_digest(i, kid)), None)
    if public is None:
        return False
    try:
        public.verify(bytes.fromhex(props.get("sig", "")), signed_bytes(topic, payload))
    except (InvalidSignature, ValueError):
        return False
    return True
