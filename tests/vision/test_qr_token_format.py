"""One phone-token text format, generator to journey: issue -> QR on a phone -> decode -> parse."""

import re

from atm_host.journey.machine import QR_PREFIX
from atm_host.vision.qr import decode
from atm_host.vision.qr_conditions import token_payload
from atm_host.vision.scene import Optics, PhoneScene, render_phone
from atm_msg import qrtoken
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

TOKEN_TEXT = re.compile(r"ATM1:[A-Z2-7]+")


def test_issued_token_survives_the_camera_and_the_journey_parser() -> None:
    key = Ed25519PrivateKey.generate()
    now = 1_795_320_000
    text = qrtoken.issue(key, key_id=3, customer_id=42, account_id=7, amount_yuan=500, now_s=now, ttl_s=120)
    assert TOKEN_TEXT.fullmatch(text) and text.startswith(QR_PREFIX)
    assert len(text) == len(QR_PREFIX) + (qrtoken.TOKEN_SIZE * 8 + 4) // 5
    frame, _ = render_phone(PhoneScene(text, qr_side_cm=4.0, distance_cm=25.0), Optics(1280, 720, seed=1))
    codes = [c.text.strip() for c in decode(frame).codes]
    read = [c for c in codes if c.startswith(QR_PREFIX)]  # what the journey's QR step keeps
    assert read == [text]
    tok = qrtoken.verify(read[0], {3: key.public_key()}, now + 5, 30)  # what CHECK_TOKEN runs
    assert (tok.customer_id, tok.account_id, tok.amount_yuan) == (42, 7, 500)


def test_bench_payloads_use_the_same_format() -> None:
    for n in (64, 96, qrtoken.TOKEN_SIZE):
        text = token_payload(n, seed=n)
        assert TOKEN_TEXT.fullmatch(text) and text.startswith(QR_PREFIX)
        assert len(text) == len(QR_PREFIX) + (n * 8 + 4) // 5
    assert len(token_payload(qrtoken.TOKEN_SIZE, 0)) == 170
