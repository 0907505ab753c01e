"""Bank records the decisions read: per-ATM device keys (the key store) and enrolled customers."""

import json
import os
import time
from dataclasses import dataclass

from atm_wire.messages import ID_LEN, KEY_LEN

from .db import Cursor, Database
from .errors import KeyStoreError


@dataclass(frozen=True)
class Atm:
    """One provisioned ATM: its dispenser id, its 32-byte key and its cassette denominations."""

    atm_id: str
    device_id: bytes
    key: bytes
    denominations: list[int]


@dataclass(frozen=True)
class Template:
    """An enrolled face template."""

    model_id: str
    template_version: int
    embedding: list[float]
    quality: float


def provision_atm(
    db: Database, atm_id: str, device_id: bytes, denominations: list[int], key: bytes | None = None
) -> bytes:
    """Create the ATM's device key (32 random bytes) once; return it to be written into the MCU."""
    if len(device_id) != ID_LEN:
        raise KeyStoreError(f"device_id must be {ID_LEN} bytes")
    key = os.urandom(KEY_LEN) if key is None else key
    if len(key) != KEY_LEN:
        raise KeyStoreError(f"device key must be {KEY_LEN} bytes")
    now_ms = int(time.time() * 1000)

    def fn(cur: Cursor) -> bytes:
        if cur.one("SELECT 1 FROM atms WHERE atm_id=?", (atm_id,)):
            raise KeyStoreError(f"ATM {atm_id} already provisioned (keys are written once)")
        cur.x(
            "INSERT INTO atms (atm_id, device_id, device_key, denominations, provisioned_ms) "
            "VALUES (?,?,?,?,?)",
            (atm_id, device_id.hex(), key.hex(), json.dumps(denominations), now_ms),
        )
        return key

    return db.run(fn)


def load_atm(cur: Cursor, atm_id: str) -> Atm | None:
    row = cur.one("SELECT device_id, device_key, denominations FROM atms WHERE atm_id=?", (atm_id,))
    if row is None:
        return None
    denoms: list[int] = [int(d) for d in json.loads(str(row[2]))]
    return Atm(atm_id, bytes.fromhex(str(row[0])), bytes.fromhex(str(row[1])), denoms)


def enroll(
    db: Database,
    *,
    customer_id: int,
    account_id: int,
    account_number: str,
    mobile: str,
    template: Template,
) -> None:
    """Create or replace a customer, their account and their face template."""

    def fn(cur: Cursor) -> None:
        cur.x(
            "INSERT INTO customers (customer_id, mobile) VALUES (?,?) "
            "ON CONFLICT (customer_id) DO UPDATE SET mobile = excluded.mobile",
            (customer_id, mobile),
        )
        cur.x(
            "INSERT INTO accounts (account_id, customer_id, account_number) VALUES (?,?,?) "
            "ON CONFLICT (account_id) DO UPDATE SET customer_id = excluded.customer_id, "
            "account_number = excluded.account_number",
            (account_id, customer_id, account_number),
        )
        cur.x(
            "INSERT INTO templates (customer_id, model_id, template_version, embedding, quality) "
            "VALUES (?,?,?,?,?) ON CONFLICT (customer_id) DO UPDATE SET model_id = excluded.model_id, "
            "template_version = excluded.template_version, embedding = excluded.embedding, "
            "quality = excluded.quality",
            (
                customer_id,
                template.model_id,
                template.template_version,
                json.dumps(template.embedding),
                template.quality,
            ),
        )

    db.run(fn)
