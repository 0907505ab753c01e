"""TLS with client certificates and the deployed ACL (dynamic security) on a real broker.

ATMs stay under their own id; nobody but the bank's workers may take a `$share` subscription.
"""

import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from atm_bank.db import SqliteDatabase
from atm_msg import topics
from atm_tools.mosquitto import Mosquitto, TlsFiles, dynsec_config, find_mosquitto
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from .certs import Ca
from .helpers import World, make_world
from .mqtt_helpers import start_link, start_worker, wait_for
from .scenarios import A1, A2

REPO = Path(__file__).resolve().parents[2]


class TlsEnv:
    """A TLS broker with the deployed rules (deploy/mosquitto/dynamic-security.json) and ATMs provisioned."""

    def __init__(self, tmp: Path, world: World | None = None) -> None:
        self.ca = Ca(tmp / "pki")
        self.rogue = Ca(tmp / "rogue", cn="Rogue CA")
        cert, key = self.ca.issue("localhost", server=True)
        self.world: World = world or make_world(SqliteDatabase(tmp / "bank.db"), live=True)
        (tmp / "broker").mkdir(parents=True, exist_ok=True)
        template = REPO / "deploy/mosquitto/dynamic-security.json"
        rules = dynsec_config(template, tmp / "broker" / "dynsec.json", [*self.world.atms])
        self.broker = Mosquitto(tmp / "broker", tls=TlsFiles(self.ca.path, cert, key), dynsec_file=rules)
        self.broker.start()
        self.tmp = tmp

    def client_files(self, cn: str, ca: Ca | None = None) -> dict[str, str]:
        cert, key = (ca or self.ca).issue(cn)
        return {"ca_file": str(self.ca.path), "cert_file": str(cert), "key_file": str(key)}


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[TlsEnv]:
    if find_mosquitto() is None:
        pytest.skip("mosquitto binary not installed")
    env = TlsEnv(tmp_path)
    yield env
    env.broker.stop()


def raw_client(
    env: TlsEnv, cn: str, ca: Ca | None = None
) -> tuple[mqtt.Client, list[ReasonCode], threading.Event]:
    files = env.client_files(cn, ca)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{cn}", protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=files["ca_file"], certfile=files["cert_file"], keyfile=files["key_file"])  # pyright: ignore[reportUnknownMemberType]
    codes: list[ReasonCode] = []
    connected = threading.Event()

    def on_connect(c: mqtt.Client, u: object, f: object, rc: ReasonCode, p: Properties | None) -> None:
        if not rc.is_failure:
            connected.set()

    def on_subscribe(
        c: mqtt.Client, u: object, mid: int, rcs: list[ReasonCode], p: Properties | None
    ) -> None:
        codes.extend(rcs)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    return client, codes, connected


def test_tls_approve_and_acl_refusals(tls: TlsEnv) -> None:
    w = tls.world
    worker = start_worker(w, tls.broker, **tls.client_files("bank"))
    link = start_link(w, tls.broker, A1, tls.tmp, **tls.client_files(A1))
    c = next(iter(w.customers.values()))
    assert link.authorize(w.request(A1, c, 100)).decision == "approve"
    # The ACL lets an ATM tell the bank it gave up (its own tree only): the worker closes the request.
    link.send_abandon(request_id="ab" * 16, txid=None, reason="auth_timeout", detail="test")
    wait_for(lambda: worker.counters["abandon_closed"] == 1, what="abandon handled")

    # ATM0001 tries to act as ATM0002 and to read ATM0002's answers.
    client, codes, connected = raw_client(tls, A1)
    client.connect("127.0.0.1", tls.broker.port)
    client.loop_start()
    assert connected.wait(10)
    seen: list[str] = []
    client.on_message = lambda c, u, m: seen.append(m.topic)
    client.subscribe(topics.auth_response(A2), qos=1)
    client.subscribe("atm/v1/#", qos=1)
    wait_for(lambda: len(codes) == 2, what="SUBACKs")
    # The per-ATM rules refuse both at SUBACK time (mosquitto's acl_file could not: it granted every
    # SUBSCRIBE and only filtered deliveries). Nothing arrives either way.
    assert codes[0].is_failure and codes[1].is_failure, codes
    link2 = start_link(w, tls.broker, A2, tls.tmp, **tls.client_files(A2))
    c2 = list(w.customers.values())[1]
    assert link2.authorize(w.request(A2, c2, 100)).decision == "approve"
    before = worker.counters["auth_approve"] + worker.counters["auth_decline"] + worker.counters["malformed"]
    req = w.request(A2, c, 100)
    client.publish(topics.auth_request(A2), req.model_dump_json(), qos=1).wait_for_publish(5)
    # A barrier instead of a sleep: a genuine A2 request sent after the forged one is answered, and the
    # worker takes the broker's messages in order, so a forged request let through would be counted too.
    c3 = list(w.customers.values())[2]
    assert link2.authorize(w.request(A2, c3, 100)).decision == "approve"
    after = worker.counters["auth_approve"] + worker.counters["auth_decline"] + worker.counters["malformed"]
    assert after == before + 1  # only the genuine one: the broker dropped the forged request
    assert not [t for t in seen if not t.startswith(f"atm/v1/{A1}/") and t != topics.FLEET_CONFIG], seen
    client.loop_stop()
    client.disconnect()
    link.stop()
    link2.stop()
    worker.stop()


@pytest.mark.parametrize("how", ["rogue_ca", "no_cert"])
def test_connection_without_a_valid_client_certificate_is_refused(tls: TlsEnv, how: str) -> None:
    if how == "rogue_ca":
        client, _, connected = raw_client(tls, A1, tls.rogue)
    else:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="nocert", protocol=mqtt.MQTTv5)
        client.tls_set(ca_certs=str(tls.ca.path))  # pyright: ignore[reportUnknownMemberType]
        connected = threading.Event()
    with pytest.raises(OSError):
        client.connect("127.0.0.1", tls.broker.port)
        client.loop_start()
        if not connected.wait(2):
            raise OSError("not connected")
    client.loop_stop()
    assert not connected.is_set()


def test_plaintext_is_refused(tls: TlsEnv) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="plain", protocol=mqtt.MQTTv5)
    with pytest.raises(OSError):
        client.connect("127.0.0.1", tls.broker.port)
        client.loop(2)
        if not client.is_connected():
            raise OSError("not connected")
