"""The ATM's own checks before it asks the bank: token signature and expiry, and the fleet's limits."""

from atm_msg import qrtoken
from atm_msg.denominate import representable
from atm_msg.errors import TokenError
from atm_msg.schemas import FleetConfig
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import OfflineCheckError


def token_keys(fleet: FleetConfig) -> dict[int, Ed25519PublicKey]:
    """The bank's token public keys from the pushed fleet config."""
    return {int(k): qrtoken.public_key_from_hex(v) for k, v in fleet.token_keys.items()}


def check_token(text: str, fleet: FleetConfig, now_s: float) -> qrtoken.WithdrawalToken:
    """Reject a forged or expired phone token at once, without the bank (single use is the bank's check)."""
    try:
        return qrtoken.verify(text, token_keys(fleet), now_s, fleet.token_clock_skew_s)
    except TokenError as exc:
        raise OfflineCheckError(exc.reason, str(exc)) from exc


def check_amount(
    amount_yuan: int, token: qrtoken.WithdrawalToken, fleet: FleetConfig, denominations: list[int]
) -> None:
    """Re-check the amount against the fleet limits and the ATM's denominations (the bank decides)."""
    if token.amount_yuan and token.amount_yuan != amount_yuan:
        raise OfflineCheckError("AMOUNT_MISMATCH", f"token fixes {token.amount_yuan} yuan")
    if not representable(amount_yuan, denominations):
        raise OfflineCheckError("AMOUNT_INVALID", f"{amount_yuan} yuan is not payable in {denominations}")
    if amount_yuan > fleet.limits.per_withdrawal_yuan:
        raise OfflineCheckError("LIMIT_PER_WITHDRAWAL", f"{amount_yuan} > {fleet.limits.per_withdrawal_yuan}")
    if amount_yuan > fleet.limits.per_customer_day_yuan:
        raise OfflineCheckError("LIMIT_DAILY", f"{amount_yuan} > {fleet.limits.per_customer_day_yuan}")
