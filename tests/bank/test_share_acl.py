"""`$share` hijack: no certificate but the bank's may join a shared subscription (refused at SUBACK).

Under mosquitto's acl_file every SUBSCRIBE was granted; a shared subscriber the ACL then refused to
deliver to made the broker drop about a third of the bank's requests. The deployed rules
(deploy/mosquitto/dynamic-security.json) refuse the subscription itself.
"""

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from atm_msg import topics
from atm_tools.mosquitto import find_mosquitto
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from .mqtt_helpers import start_worker, wait_for
from .scenarios import A1, A2
from .test_acl_tls import TlsEnv, raw_client

HIJACKS = [
    "$share/bank/atm/v1/+/auth/req",
    "$share/bank/atm/v1/+/txn/report",
    "$share/bank/atm/v1/+/txn/abandon",
    "$share/bank/atm/v1/#",
    "$share/bank/#",
    "$share/evil/atm/v1/+/auth/req",
    "$share/evil/#",
    "$share/+/atm/v1/+/auth/req",
]


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[TlsEnv]:
    if find_mosquitto() is None:
        pytest.fail("mosquitto binary not installed (apt-get install mosquitto)")
    env = TlsEnv(tmp_path)
    yield env
    env.broker.stop()


def _connect(env: TlsEnv, cn: str, client_id: str | None = None) -> tuple[mqtt.Client, list[ReasonCode]]:
    client, codes, connected = raw_client(env, cn)
    if client_id is not None:
        client._client_id = client_id.encode()  # pyright: ignore[reportPrivateUsage]
    client.connect("127.0.0.1", env.broker.port)
    client.loop_start()
    assert connected.wait(10), f"{cn} did not connect"
    return client, codes


@pytest.mark.parametrize("who", [A2, "console"])
def test_share_subscriptions_refused_and_no_request_lost(tls: TlsEnv, who: str) -> None:
    w = tls.world
    worker = start_worker(w, tls.broker, **tls.client_files("bank"))
    thief, codes = _connect(tls, who, client_id=f"thief-{who}")
    stolen: list[str] = []
    thief.on_message = lambda c, u, m: stolen.append(m.topic)
    for pattern in HIJACKS:
        thief.subscribe(pattern, qos=1)
    wait_for(lambda: len(codes) == len(HIJACKS), what="SUBACKs")
    assert all(rc.is_failure for rc in codes), [str(rc) for rc in codes]
    assert all(rc.value == 0x87 for rc in codes)  # Not authorized

    # A1 publishes each request exactly once (no retry): every one must reach the bank and be answered.
    atm, atm_codes = _connect(tls, A1, client_id="raw-atm1-once")
    answers: list[bytes] = []
    lock = threading.Lock()

    def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        with lock:
            answers.append(bytes(m.payload))

    atm.on_message = on_message
    sub = atm.subscribe(topics.auth_response(A1), qos=1)
    assert sub[0] == mqtt.MQTT_ERR_SUCCESS
    wait_for(lambda: len(atm_codes) == 1, what="SUBACK")  # subscribed before the first request goes out
    assert not atm_codes[0].is_failure, atm_codes
    customers = list(w.customers.values())
    n = 24
    for i in range(n):
        req = w.request(A1, customers[i % len(customers)], 100)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = topics.auth_response(A1)
        props.CorrelationData = bytes.fromhex(req.request_id)
        info = atm.publish(topics.auth_request(A1), req.model_dump_json(), qos=1, properties=props)
        info.wait_for_publish(5)
    wait_for(lambda: len(answers) == n, timeout_s=15, what=f"{n} answers (got {len(answers)})")
    handled = sum(v for k, v in worker.counters.items() if k in ("auth_approve", "auth_decline"))
    assert handled == n
    assert stolen == []
    for c in (thief, atm):
        c.loop_stop()
        c.disconnect()
    worker.stop()


def test_bank_may_share_only_its_own_group(tls: TlsEnv) -> None:
    bank, codes = _connect(tls, "bank", client_id=f"bank-probe-{os.getpid()}")
    bank.subscribe(topics.shared(topics.auth_request("+")), qos=1)
    bank.subscribe("$share/evil/atm/v1/+/auth/req", qos=1)
    wait_for(lambda: len(codes) == 2, what="SUBACKs")
    assert not codes[0].is_failure and codes[1].is_failure, [str(rc) for rc in codes]
    bank.loop_stop()
    bank.disconnect()


def test_unprovisioned_certificate_gets_nothing(tls: TlsEnv) -> None:
    """A valid certificate whose CN the broker does not know is refused every subscription and publish."""
    stranger, codes = _connect(tls, "ATM9999")
    stranger.subscribe(topics.shared(topics.auth_request("+")), qos=1)
    stranger.subscribe(topics.auth_response("ATM9999"), qos=1)
    wait_for(lambda: len(codes) == 2, what="SUBACKs")
    assert all(rc.is_failure for rc in codes)
    stranger.loop_stop()
    stranger.disconnect()
