"""One phone-token text format, generator to journey: issue -> QR on a phone -> decode -> parse."""

import re
import time
from pathlib import Path

from atm_bank import phone
from atm_host.journey.machine import QR_PREFIX
from atm_host.vision.evaluate import read_image
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


def test_the_phone_apps_png_reads_back_through_the_journey_path(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    text = phone.issue_token(key, key_id=1, customer_id=9, account_id=4, amount_yuan=300, ttl_s=60)
    info = phone.render(text, png=tmp_path / "qr.png", terminal=False)
    assert "alphanumeric" in info  # ATM1: + base32 fits the QR alphanumeric set
    img = read_image(tmp_path / "qr.png")
    read = [c.text.strip() for c in decode(img).codes if c.text.strip().startswith(QR_PREFIX)]
    assert read == [text]
    tok = qrtoken.verify(read[0], {1: key.public_key()}, time.time(), 30)
    assert (tok.customer_id, tok.amount_yuan) == (9, 300)
