"""Signed remote commands, both ends: Ed25519 over (domain, topic, payload) in MQTT 5 user properties.

The `Command` JSON payload is unchanged (its schema refuses extra fields); the signature travels beside
it as MQTT 5 user properties (docs/mqtt.md and docs/console.md, "Command signing"):

    sig-alg = "ed25519"
    kid     = first 8 bytes of SHA-256(raw 32-byte public key), hex
    sig     = Ed25519 signature, hex, over  b"atm-cmd-v1\\n" + topic + b"\\n" + payload

Binding the topic means a command signed for ATM0001 cannot be replayed to ATM0002; the ATM still runs
each command_id once and refuses one past expires_ms. No MQTT library here: the console signs with it
(CommandSigner, its key in a PEM file) and the ATM's bank link verifies with it.
"""

import hashlib
import hmac
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from . import keyfile

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


def keys_from_hex(hex_keys: "list[str] | tuple[str, ...]") -> dict[str, Ed25519PublicKey]:
    """The ATM's trusted command keys, by key id (ValueError on a malformed key)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for h in hex_keys:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(h))
        keys[key_id(public)] = public
    return keys


def sign_properties(key: Ed25519PrivateKey, topic: str, payload: bytes) -> list[tuple[str, str]]:
    """The MQTT 5 user properties that carry the signature of `payload` on `topic`."""
    sig = key.sign(signed_bytes(topic, payload)).hex()
    return [("sig-alg", ALG), ("kid", key_id(key.public_key())), ("sig", sig)]


def verify(
    topic: str, payload: bytes, user_properties: list[tuple[str, str]], keys: dict[str, Ed25519PublicKey]
) -> bool:
    """ATM side: True only when a trusted key signed exactly this payload for exactly this topic."""
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


class CommandSigner:
    """Holds a command key (the console's) and signs outgoing commands."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public = key.public_key()
        self.kid = key_id(self.public)

    @classmethod
    def from_file(cls, path: Path) -> "CommandSigner":
        """Load the key from a PEM file (KeyFileError when missing or not Ed25519)."""
        return cls(keyfile.load(path))

    def properties(self, topic: str, payload: bytes) -> list[tuple[str, str]]:
        """The MQTT 5 user properties to publish with `payload` on `topic`."""
        return sign_properties(self._key, topic, payload)


def generate_key(path: Path) -> CommandSigner:
    """Create a command key file (mode 0600, never overwritten: KeyFileError)."""
    return CommandSigner(keyfile.generate(path))
