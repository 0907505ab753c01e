"""Maintenance tokens over the real broker with the deployed rules: an operator's signed console command,
relayed by the ATM it names, becomes one token for that MCU nonce; anything else is refused and audited."""

import json
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from atm_bank.config import BankConfig
from atm_bank.db import Cursor, SqliteDatabase
from atm_msg import topics
from atm_msg.cmdsign import CommandSigner, public_hex
from atm_msg.schemas import Command, MaintResponse
from atm_tools.mosquitto import find_mosquitto
from atm_wire.auth import maint_mac  # pyright: ignore[reportUnknownVariableType]
from atm_wire.messages import MAINT_TOKEN_FMT
from atm_wire.names import COMMAND_BY_NAME
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .helpers import MODEL, World, make_world
from .mqtt_helpers import start_link, start_worker, wait_for
from .scenarios import A1, A2
from .test_acl_tls import TlsEnv, raw_client

OPERATOR = CommandSigner(Ed25519PrivateKey.generate())
STRANGER = CommandSigner(Ed25519PrivateKey.generate())


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[TlsEnv]:
    if find_mosquitto() is None:
        pytest.fail("mosquitto binary not installed (apt-get install mosquitto)")
    cfg = BankConfig.model_validate(
        {"face": {"thresholds": {MODEL: 0.6}}, "operator_keys": [public_hex(OPERATOR.public)]}
    )
    world: World = make_world(SqliteDatabase(tmp_path / "bank.db"), cfg, live=True)
    env = TlsEnv(tmp_path, world)
    yield env
    env.broker.stop()


def _signed(
    atm: str, op: str, args: bytes, signer: CommandSigner = OPERATOR, ttl_s: int = 60
) -> tuple[bytes, list[tuple[str, str]]]:
    cmd = Command(
        command_id=os.urandom(16).hex(),
        name="maint",
        args={"op": op, "args": args.hex()},
        expires_ms=int(time.time() * 1000) + ttl_s * 1000,
    )
    payload = cmd.model_dump_json().encode()
    return payload, signer.properties(topics.command(atm), payload)


def test_maintenance_token_for_a_signed_operator_command(tls: TlsEnv) -> None:
    w = tls.world
    worker = start_worker(w, tls.broker, **tls.client_files("bank"))
    link = start_link(w, tls.broker, A1, tls.tmp, **tls.client_files(A1))
    device_id, key = w.atms[A1]
    nonce = os.urandom(16)
    payload, props = _signed(A1, "count", bytes([2]))
    r = link.request_maint(payload, props, nonce.hex())
    assert r.ok and r.token, r.reason
    dev, got_nonce, mac = struct.unpack(MAINT_TOKEN_FMT, bytes.fromhex(r.token))
    assert dev == device_id and got_nonce == nonce
    assert mac == maint_mac(key, device_id, nonce, COMMAND_BY_NAME["count"][1], bytes([2]))

    def refused(payload: bytes, props: list[tuple[str, str]]) -> str:
        resp: MaintResponse = link.request_maint(payload, props, os.urandom(16).hex())
        assert not resp.ok and resp.token is None
        return resp.reason

    assert "already used" in refused(payload, props)  # one command, one token
    assert "signature" in refused(*_signed(A1, "reject", b"", signer=STRANGER))  # not an operator key
    assert "signature" in refused(*_signed(A2, "reject", b""))  # signed for ATM0002, relayed by ATM0001
    p2, pr2 = _signed(A1, "open_shutter", b"")
    assert "signature" in refused(p2.replace(b"open_shutter", b"reject"), pr2)  # altered after signing
    assert "expired" in refused(*_signed(A1, "reject", b"", ttl_s=-5))
    assert "malformed" in refused(*_signed(A1, "count", b"\x01\x02"))  # count takes one byte
    bad = Command(command_id=os.urandom(16).hex(), name="reboot", expires_ms=int(time.time() * 1000) + 60000)
    body = bad.model_dump_json().encode()
    assert "not a maintenance" in refused(body, OPERATOR.properties(topics.command(A1), body))

    def audit(cur: Cursor) -> list[tuple[str, int]]:
        return [(str(r[0]), int(r[1])) for r in cur.q("SELECT op, granted FROM maint_audit ORDER BY at_ms")]

    rows = w.db.run(audit)
    assert len(rows) == 8 and sum(g for _, g in rows) == 1
    assert worker.counters["maint_granted"] == 1 and worker.counters["maint_refused"] == 7
    link.stop()
    worker.stop()


def test_another_atm_cannot_read_or_request_for_an_atm(tls: TlsEnv) -> None:
    """ATM0002's certificate can neither subscribe to ATM0001's maint/res nor publish its maint/req."""
    worker = start_worker(tls.world, tls.broker, **tls.client_files("bank"))
    client, codes, connected = raw_client(tls, A2)
    client.connect("127.0.0.1", tls.broker.port)
    client.loop_start()
    assert connected.wait(10)
    client.subscribe(topics.maint_response(A1), qos=1)
    client.subscribe(topics.maint_response(A2), qos=1)
    deadline = time.monotonic() + 10
    while len(codes) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert codes[0].is_failure and not codes[1].is_failure
    info = client.publish(topics.maint_request(A1), json.dumps({"v": 1}), qos=1)
    info.wait_for_publish(5)
    # A barrier, not a sleep: a genuine request ATM0002 may send, published after the forged one, is
    # decided; the broker hands one client's messages to the bank in order, so the forged one, had it
    # been let through, would have been counted first.
    c = next(iter(tls.world.customers.values()))
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = topics.auth_response(A2)
    props.CorrelationData = b"\x02" * 16
    req = tls.world.request(A2, c, 100).model_dump_json()
    client.publish(topics.auth_request(A2), req, qos=1, properties=props).wait_for_publish(5)
    wait_for(
        lambda: worker.counters["auth_approve"] + worker.counters["auth_decline"] == 1, what="the barrier"
    )
    decided = worker.counters["auth_approve"] + worker.counters["auth_decline"]
    assert sum(worker.counters.values()) == decided  # the broker refused it: the bank never saw it
    client.loop_stop()
    client.disconnect()
    worker.stop()
