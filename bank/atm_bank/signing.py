"""The bank's Ed25519 token-signing keys: generate, load, and the public half the fleet gets."""

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from .config import BankConfig
from .errors import ConfigError
from .qrtoken import public_key_hex
from .schemas import FleetConfig, FleetLimits


def generate(path: Path) -> Ed25519PrivateKey:
    """Create a new signing key file (mode 0600); refuses to overwrite."""
    if path.exists():
        raise ConfigError(f"signing key {path} exists; refusing to overwrite")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    path.touch(mode=0o600)
    path.write_bytes(pem)
    return key


def load(path: Path) -> Ed25519PrivateKey:
    """Read a PEM Ed25519 private key."""
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"signing key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"signing key {path}: not an Ed25519 key")
    return key


def fleet_config(cfg: BankConfig, keys: dict[int, Ed25519PublicKey]) -> FleetConfig:
    """The part of the rule set every ATM receives (retained on atm/v1/fleet/config)."""
    lim = cfg.limits
    return FleetConfig(
        config_version=cfg.config_version,
        limits=FleetLimits(
            per_withdrawal_yuan=lim.per_withdrawal_yuan,
            per_customer_day_yuan=lim.per_customer_day_yuan,
            per_account_total_yuan=lim.per_account_total_yuan,
            max_notes_per_dispense=lim.max_notes_per_dispense,
        ),
        denominations=list(cfg.default_denominations),
        token_keys={str(k): public_key_hex(v) for k, v in keys.items()},
        token_clock_skew_s=cfg.tokens.clock_skew_s,
        second_check_digits=cfg.tokens.second_check_digits,
    )
