"""Ed25519-signed compact QR withdrawal tokens: issue (bank), verify signature and expiry (ATM and bank).

Binary layout, little-endian, 103 bytes, then base32 without padding behind the prefix "ATM1:" so the
whole text stays in the QR alphanumeric set (about 170 characters: a version 8-9 QR at level M):

    ver u8 | key_id u8 | customer_id u64 | account_id u64 | amount_yuan u32 (0 = chosen at the ATM)
    | nonce 12 bytes (single use) | issued_at u32 (unix s) | ttl_s u8 (<= 120) | Ed25519 signature 64
"""

import base64
import os
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import TokenError

MAX_TOKEN_TTL_S = 120  # MISSION: a phone token lives at most 120 s
PREFIX = "ATM1:"
VERSION = 1
_BODY_FMT = "<BBQQI12sIB"
_BODY_SIZE = struct.calcsize(_BODY_FMT)
_SIG_SIZE = 64
TOKEN_SIZE = _BODY_SIZE + _SIG_SIZE
NONCE_LEN = 12
_DOMAIN = b"ATM-QR-TOKEN-1"  # signatures over QR tokens can never be confused with other signatures

_B32_CHARS = re.compile(r"[A-Z2-7]+")
# base64.b32decode is pure Python (about 30 us for a token); int(..., 32) does the same work in C.
_B32_TO_INT32 = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789abcdefghijklmnopqrstuv")
_TOKEN_B32_LEN = (TOKEN_SIZE * 8 + 4) // 5
_TOKEN_PAD_BITS = _TOKEN_B32_LEN * 5 - TOKEN_SIZE * 8

MALFORMED = "TOKEN_MALFORMED"
FORGED = "TOKEN_FORGED"
EXPIRED = "TOKEN_EXPIRED"


@dataclass(frozen=True)
class WithdrawalToken:
    """The decoded, verified contents of a phone token."""

    key_id: int
    customer_id: int
    account_id: int
    amount_yuan: int
    nonce: bytes
    issued_at: int
    ttl_s: int

    @property
    def expires_at(self) -> int:
        return self.issued_at + self.ttl_s


def issue(
    key: Ed25519PrivateKey,
    *,
    key_id: int,
    customer_id: int,
    account_id: int,
    amount_yuan: int,
    now_s: int,
    ttl_s: int,
    nonce: bytes | None = None,
) -> str:
    """Sign a new single-use token; ttl_s is capped at 120 s by refusing more."""
    if not 1 <= ttl_s <= MAX_TOKEN_TTL_S:
        raise TokenError(MALFORMED, f"ttl_s {ttl_s} outside 1..{MAX_TOKEN_TTL_S}")
    nonce = os.urandom(NONCE_LEN) if nonce is None else nonce
    if len(nonce) != NONCE_LEN:
        raise TokenError(MALFORMED, "nonce must be 12 bytes")
    body = struct.pack(_BODY_FMT, VERSION, key_id, customer_id, account_id, amount_yuan, nonce, now_s, ttl_s)
    sig = key.sign(_DOMAIN + body)
    return PREFIX + base64.b32encode(body + sig).decode().rstrip("=")


def decode(text: str) -> tuple[WithdrawalToken, bytes, bytes]:
    """Parse without verifying: the token, the signed body and the signature."""
    if not text.startswith(PREFIX):
        raise TokenError(MALFORMED, "missing ATM1: prefix")
    b32 = text[len(PREFIX) :]
    if len(b32) == _TOKEN_B32_LEN and _B32_CHARS.fullmatch(b32):
        raw = (int(b32.translate(_B32_TO_INT32), 32) >> _TOKEN_PAD_BITS).to_bytes(TOKEN_SIZE, "big")
    else:
        try:
            raw = base64.b32decode(b32 + "=" * (-len(b32) % 8))
        except ValueError as exc:
            raise TokenError(MALFORMED, "not base32") from exc
    if len(raw) != TOKEN_SIZE:
        raise TokenError(MALFORMED, f"length {len(raw)} != {TOKEN_SIZE}")
    body, sig = raw[:_BODY_SIZE], raw[_BODY_SIZE:]
    ver, key_id, customer, account, amount, nonce, issued, ttl = struct.unpack(_BODY_FMT, body)
    if ver != VERSION:
        raise TokenError(MALFORMED, f"version {ver}")
    if not 1 <= ttl <= MAX_TOKEN_TTL_S:
        raise TokenError(FORGED, f"ttl {ttl} outside 1..{MAX_TOKEN_TTL_S}")
    return WithdrawalToken(key_id, customer, account, amount, nonce, issued, ttl), body, sig


def verify(text: str, public_keys: dict[int, Ed25519PublicKey], now_s: float, skew_s: int) -> WithdrawalToken:
    """Check format, signature (known key id) and expiry; raise TokenError with a reason code."""
    return check(*decode(text), public_keys, now_s, skew_s)


def check(
    token: WithdrawalToken,
    body: bytes,
    sig: bytes,
    public_keys: dict[int, Ed25519PublicKey],
    now_s: float,
    skew_s: int,
) -> WithdrawalToken:
    """verify() for what decode() returned: signature (known key id) and expiry."""
    key = public_keys.get(token.key_id)
    if key is None:
        raise TokenError(FORGED, f"unknown key id {token.key_id}")
    try:
        key.verify(sig, _DOMAIN + body)
    except InvalidSignature as exc:
        raise TokenError(FORGED, "bad signature") from exc
    if now_s > token.expires_at + skew_s:
        raise TokenError(EXPIRED, f"expired {now_s - token.expires_at:.0f} s ago")
    if now_s < token.issued_at - skew_s:
        raise TokenError(FORGED, "issued in the future")
    return token


def public_key_hex(key: Ed25519PublicKey) -> str:
    """Raw 32-byte public key as hex (what the fleet config carries)."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def public_key_from_hex(text: str) -> Ed25519PublicKey:
    """Inverse of public_key_hex."""
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))
    except ValueError as exc:
        raise TokenError(MALFORMED, "bad public key") from exc
