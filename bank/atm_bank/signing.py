"""The bank's Ed25519 token-signing keys: generate, load, and the public half the fleet gets."""

from pathlib import Path

from atm_msg import keyfile
from atm_msg.errors import KeyFileError
from atm_msg.qrtoken import public_key_hex
from atm_msg.schemas import FleetConfig, FleetLimits
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .config import BankConfig
from .errors import ConfigError


def generate(path: Path) -> Ed25519PrivateKey:
    """Create a new signing key file (mode 0600); refuses to overwrite."""
    try:
        return keyfile.generate(path)
    except KeyFileError as exc:
        raise ConfigError(str(exc)) from exc


def load(path: Path) -> Ed25519PrivateKey:
    """Read a PEM Ed25519 private key."""
    try:
        return keyfile.load(path)
    except KeyFileError as exc:
        raise ConfigError(str(exc)) from exc


def fleet_config(cfg: BankConfig, keys: dict[int, Ed25519PublicKey]) -> FleetConfig:
    """The part of the rule set every ATM receives (retained on atm/v1/fleet/config)."""
    lim = cfg.limits
    return FleetConfig(
        config_version=cfg.config_version,
        limits=FleetLimits(
            per_withdrawal_yuan=lim.per_withdrawal_yuan,
            per_customer_day_yuan=lim.per_customer_day_yuan,
            per_account_total_yuan=lim.per_account_total_yuan,
        ),
        denominations=list(cfg.default_denominations),
        token_keys={str(k): public_key_hex(v) for k, v in keys.items()},
        token_clock_skew_s=cfg.tokens.clock_skew_s,
        second_check_digits=cfg.tokens.second_check_digits,
    )
