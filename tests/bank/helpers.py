"""Test helpers: a provisioned bank on a database, customers, requests and simulated MCU reports."""

import math
import os
import random
import struct
import time
from dataclasses import dataclass, field

from atm_bank.config import BankConfig
from atm_bank.core import Bank
from atm_bank.db import Database
from atm_bank.registry import Template, enroll, provision_atm
from atm_bank.settle import Settler
from atm_msg import qrtoken
from atm_msg.schemas import AuthRequest, Cassette, FaceProbe
from atm_wire.auth import report_mac  # pyright: ignore[reportUnknownVariableType]
from atm_wire.messages import PRESENT_PRESENTED, REPORT_FLAG_FINAL, REPORT_FMT
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

MODEL = "sface-test"
DENOMS = [100, 50, 20, 10]


def unit(vec: list[float]) -> list[float]:
    n = math.sqrt(sum(x * x for x in vec))
    return [x / n for x in vec]


def embedding(seed: int, dim: int = 128) -> list[float]:
    rng = random.Random(seed)
    return unit([rng.gauss(0, 1) for _ in range(dim)])


def noisy(vec: list[float], noise: float, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    return unit([x + rng.gauss(0, noise) for x in vec])


class Clock:
    """A settable clock for the decision core."""

    def __init__(self, t: float = 1_800_000_000.0, live: bool = False) -> None:
        self.t = t
        self.live = live  # live: real time plus whatever advance() added

    def __call__(self) -> float:
        return time.time() + self.t if self.live else self.t

    def advance(self, s: float) -> None:
        self.t += s


@dataclass
class Customer:
    customer_id: int
    account_id: int
    account_number: str
    mobile: str
    face: list[float]


@dataclass
class World:
    """A bank with ATMs and customers, and everything a test needs to act as phone, ATM and MCU."""

    db: Database
    cfg: BankConfig
    clock: Clock
    signing_key: Ed25519PrivateKey
    bank: Bank
    settler: Settler
    atms: dict[str, tuple[bytes, bytes]] = field(default_factory=dict[str, tuple[bytes, bytes]])
    customers: dict[int, Customer] = field(default_factory=dict[int, Customer])

    def token(
        self, c: Customer, amount: int = 0, *, ttl: int = 90, key: Ed25519PrivateKey | None = None
    ) -> str:
        return qrtoken.issue(
            key or self.signing_key,
            key_id=1,
            customer_id=c.customer_id,
            account_id=c.account_id,
            amount_yuan=amount,
            now_s=int(self.clock()),
            ttl_s=ttl,
        )

    def request(
        self,
        atm: str,
        c: Customer,
        amount: int,
        *,
        token: str | None = None,
        face: list[float] | None = None,
        liveness: float = 0.99,
        quality: float = 0.9,
        model: str = MODEL,
        account_digits: str | None = None,
        mobile_digits: str | None = None,
        counts: list[int] | None = None,
        device_id: bytes | None = None,
        atm_field: str | None = None,
        max_notes: int = 60,
    ) -> AuthRequest:
        dev = self.atms[atm][0] if atm in self.atms else b"\0" * 8
        return AuthRequest(
            request_id=os.urandom(16).hex(),
            atm_id=atm_field or atm,
            device_id=(device_id or dev).hex(),
            command_nonce=os.urandom(16).hex(),
            qr_token=token or self.token(c),
            amount_yuan=amount,
            face=FaceProbe(
                model_id=model,
                template_version=1,
                embedding=face or noisy(c.face, 0.02),
                liveness=liveness,
                quality=quality,
            ),
            account_digits=account_digits or c.account_number[-4:],
            mobile_digits=mobile_digits or c.mobile[-4:],
            cassettes=[
                Cassette(denomination=d, count=n) for d, n in zip(DENOMS, counts or [500] * 4, strict=True)
            ],
            max_notes=max_notes,
            ts_ms=int(self.clock() * 1000),
        )

    def report(
        self,
        atm: str,
        txid: str,
        nonce: str,
        stacked: list[int],
        *,
        presented: int | None = None,
        retracted: int = 0,
        status: int = PRESENT_PRESENTED,
        flags: int = REPORT_FLAG_FINAL,
        key: bytes | None = None,
    ) -> bytes:
        """What the MCU signs at the end of a transaction."""
        device_id, dev_key = self.atms[atm]
        body = struct.pack(
            REPORT_FMT[:-3],
            device_id,
            bytes.fromhex(txid),
            bytes.fromhex(nonce),
            *stacked,
            sum(stacked) if presented is None else presented,
            retracted,
            0,
            status,
            flags,
        )
        mac: bytes = report_mac(key or dev_key, body)
        return body + mac


def make_world(
    db: Database, cfg: BankConfig | None = None, n_atms: int = 2, n_customers: int = 3, live: bool = False
) -> World:
    cfg = cfg or BankConfig.model_validate({"face": {"thresholds": {MODEL: 0.6}}})
    clock = Clock(0.0, live=True) if live else Clock()
    sk = Ed25519PrivateKey.generate()
    world = World(db, cfg, clock, sk, Bank(db, cfg, {1: sk.public_key()}, clock), Settler(db, clock))
    for i in range(n_atms):
        atm = f"ATM{i + 1:04d}"
        device_id = os.urandom(8)
        key = provision_atm(db, atm, device_id, DENOMS)
        world.atms[atm] = (device_id, key)
    for i in range(n_customers):
        c = Customer(1000 + i, 5000 + i, f"62220200000000{i:05d}", f"1380000{i:04d}", embedding(i))
        enroll(
            db,
            customer_id=c.customer_id,
            account_id=c.account_id,
            account_number=c.account_number,
            mobile=c.mobile,
            template=Template(MODEL, 1, c.face, 0.9),
        )
        world.customers[c.customer_id] = c
    return world
