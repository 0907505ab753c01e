"""Phone-app simulator: asks the bank for a withdrawal token and shows it as a QR code (terminal and PNG)."""

import time
from pathlib import Path

import segno
from atm_msg import qrtoken
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def issue_token(
    key: Ed25519PrivateKey, *, key_id: int, customer_id: int, account_id: int, amount_yuan: int, ttl_s: int
) -> str:
    """What the bank's app backend does when the logged-in customer taps "withdraw cash"."""
    return qrtoken.issue(
        key,
        key_id=key_id,
        customer_id=customer_id,
        account_id=account_id,
        amount_yuan=amount_yuan,
        now_s=int(time.time()),
        ttl_s=ttl_s,
    )


def render(token: str, png: Path | None = None, terminal: bool = True) -> str:
    """Encode as a QR (alphanumeric mode, error correction M); write a PNG and/or print to the terminal."""
    qr = segno.make_qr(token, error="m", boost_error=False)
    if png is not None:
        qr.save(str(png), scale=8, border=4)
    if terminal:
        qr.terminal(compact=True)
    return f"QR version {qr.version}, {qr.mode} mode, {len(token)} characters"
