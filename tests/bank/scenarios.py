"""Decline scenarios shared by the direct decision-core tests and the tests over the real broker."""

import os
from collections.abc import Callable

from atm_msg.reasons import Reason
from atm_msg.schemas import AuthRequest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .helpers import World, embedding

Scenario = Callable[[World], tuple[str, AuthRequest]]
A1, A2 = "ATM0001", "ATM0002"


def _c(w: World, i: int = 0):
    return list(w.customers.values())[i]


def forged(w: World) -> tuple[str, AuthRequest]:
    c = _c(w)
    return A1, w.request(A1, c, 100, token=w.token(c, key=Ed25519PrivateKey.generate()))


def tampered(w: World) -> tuple[str, AuthRequest]:
    c = _c(w)
    tok = w.token(c)
    flipped = tok[:20] + ("A" if tok[20] != "A" else "B") + tok[21:]
    return A1, w.request(A1, c, 100, token=flipped)


def expired(w: World) -> tuple[str, AuthRequest]:
    c = _c(w)
    tok = w.token(c, ttl=60)
    w.clock.advance(60 + w.cfg.tokens.clock_skew_s + 1)
    return A1, w.request(A1, c, 100, token=tok)


def replayed(w: World) -> tuple[str, AuthRequest]:
    c = _c(w)
    tok = w.token(c)
    first = w.bank.authorize(w.request(A1, c, 100, token=tok), A1)
    assert first.response.decision == "approve"
    w.clock.advance(w.cfg.abuse.min_interval_s + 1)
    return A1, w.request(A1, c, 100, token=tok)


def wrong_atm(w: World) -> tuple[str, AuthRequest]:
    return A1, w.request(A2, _c(w), 100)  # ATM0002's payload published under ATM0001


def wrong_device(w: World) -> tuple[str, AuthRequest]:
    return A1, w.request(A1, _c(w), 100, device_id=os.urandom(8))


def unknown_atm(w: World) -> tuple[str, AuthRequest]:
    return "ATM9999", w.request("ATM9999", _c(w), 100)


def face_mismatch(w: World) -> tuple[str, AuthRequest]:
    return A1, w.request(A1, _c(w), 100, face=embedding(999))


def model_mismatch(w: World) -> tuple[str, AuthRequest]:
    return A1, w.request(A1, _c(w), 100, model="other-model")


def liveness(w: World) -> tuple[str, AuthRequest]:
    return A1, w.request(A1, _c(w), 100, liveness=0.2)


def quality(w: World) -> tuple[str, AuthRequest]:
    return A1, w.request(A1, _c(w), 100, quality=0.1)


def second_check_account(w: World) -> tuple[str, AuthRequest]:
    c = _c(w)
    wrong = f"{(int(c.account_number[-4:]) + 1) % 10000:04d}"
    return A1, w.request(A1, c, 100, account_digits=wrong)


def second_check_mobile(w: World) -> tuple[str, AuthRequest]:
    c = _c(w)
    wrong = f"{(int(c.mobile[-4:]) + 1) % 10000:04d}"
    return A1, w.request(A1, c, 100, mobile_digits=wrong)


def amount_mismatch(w: World) -> tuple[str, AuthRequest]:
    c = _c(w)
    return A1, w.request(A1, c, 200, token=w.token(c, amount=100))


def amount_invalid(w: World) -> tuple[str, AuthRequest]:
    return A1, w.request(A1, _c(w), 105)


def cannot_dispense(w: World) -> tuple[str, AuthRequest]:
    return A1, w.request(A1, _c(w), 300, counts=[1, 1, 0, 0])


def over_withdrawal(w: World) -> tuple[str, AuthRequest]:
    return A1, w.request(A1, _c(w), w.cfg.limits.per_withdrawal_yuan + 10)


def too_frequent(w: World) -> tuple[str, AuthRequest]:
    c = _c(w)
    assert w.bank.authorize(w.request(A1, c, 100), A1).response.decision == "approve"
    w.clock.advance(1)
    return A1, w.request(A1, c, 100)


def stale(w: World) -> tuple[str, AuthRequest]:
    c = _c(w)
    req = w.request(A1, c, 100)
    w.clock.advance(w.cfg.tokens.request_ttl_s + 1)
    return A1, req.model_copy(update={"qr_token": w.token(c)})


def locked_out(w: World) -> tuple[str, AuthRequest]:
    c = _c(w)
    for _ in range(w.cfg.abuse.failures_before_lockout):
        assert (
            w.bank.authorize(w.request(A1, c, 100, face=embedding(999)), A1).response.reason
            == Reason.FACE_MISMATCH
        )
        w.clock.advance(w.cfg.abuse.min_interval_s + 1)
    return A1, w.request(A1, c, 100)


DECLINES: dict[str, tuple[Scenario, Reason]] = {
    "forged": (forged, Reason.TOKEN_FORGED),
    "tampered": (tampered, Reason.TOKEN_FORGED),
    "expired": (expired, Reason.TOKEN_EXPIRED),
    "replayed": (replayed, Reason.TOKEN_REPLAYED),
    "wrong_atm": (wrong_atm, Reason.WRONG_ATM),
    "wrong_device": (wrong_device, Reason.WRONG_ATM),
    "unknown_atm": (unknown_atm, Reason.UNKNOWN_ATM),
    "face_mismatch": (face_mismatch, Reason.FACE_MISMATCH),
    "model_mismatch": (model_mismatch, Reason.FACE_MODEL_MISMATCH),
    "liveness": (liveness, Reason.LIVENESS_FAILED),
    "quality": (quality, Reason.FACE_QUALITY_LOW),
    "second_check_account": (second_check_account, Reason.SECOND_CHECK_FAILED),
    "second_check_mobile": (second_check_mobile, Reason.SECOND_CHECK_FAILED),
    "amount_mismatch": (amount_mismatch, Reason.AMOUNT_MISMATCH),
    "amount_invalid": (amount_invalid, Reason.AMOUNT_INVALID),
    "cannot_dispense": (cannot_dispense, Reason.CANNOT_DISPENSE),
    "over_withdrawal": (over_withdrawal, Reason.LIMIT_PER_WITHDRAWAL),
    "too_frequent": (too_frequent, Reason.TOO_FREQUENT),
    "stale": (stale, Reason.STALE_REQUEST),
    "locked_out": (locked_out, Reason.LOCKED_OUT),
}
