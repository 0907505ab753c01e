"""Seeded random phone-QR capture conditions shared by the benchmark, the guidance sweep and the tests."""

import base64
import hashlib

import numpy as np

from .scene import Optics, PhoneScene


def token_payload(n_bytes: int, seed: int) -> str:
    """A token-shaped payload: `n_bytes` of pseudo-random data in the phone token's text format.

    The format is atm_msg.qrtoken's: "ATM1:" + base32 without padding (upper case, all in the QR
    alphanumeric set); a real token is 103 bytes -> 170 characters.
    """
    raw = hashlib.shake_256(seed.to_bytes(8, "little")).digest(n_bytes)
    return "ATM1:" + base64.b32encode(raw).decode("ascii").rstrip("=")


def sample_conditions(
    seed: int, width: int, height: int, *, qr_side_cm: float | None = None, payload_bytes: int = 96
) -> tuple[PhoneScene, Optics]:
    """A phone held 18-35 cm from the camera, turned up to 30 degrees, in varied light, blur and noise.

    30% of the codes are dark mode; half have glare on the screen.
    """
    rng = np.random.default_rng(seed)
    scene = PhoneScene(
        payload=token_payload(payload_bytes, seed),
        qr_side_cm=float(rng.uniform(3.5, 5.0)) if qr_side_cm is None else qr_side_cm,
        distance_cm=float(rng.uniform(18.0, 35.0)),
        yaw_deg=float(rng.uniform(-30, 30)),
        pitch_deg=float(rng.uniform(-30, 30)),
        roll_deg=float(rng.uniform(-25, 25)),
        offset_cm=(float(rng.uniform(-3, 3)), float(rng.uniform(-2, 2))),
        dark_mode=bool(rng.random() < 0.3),
        glare=float(rng.uniform(0.2, 0.6)) if rng.random() < 0.5 else 0.0,
        glare_pos=(float(rng.uniform(-0.8, 0.8)), float(rng.uniform(-0.8, 0.8))),
    )
    optics = Optics(
        width=width,
        height=height,
        gain=float(rng.uniform(0.55, 1.25)),
        blur_sigma=float(rng.uniform(0.0, 1.0)),
        noise_sigma=float(rng.uniform(1.0, 6.0)),
        seed=seed,
    )
    return scene, optics
