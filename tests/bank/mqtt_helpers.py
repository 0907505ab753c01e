"""Test plumbing over the real broker: a bank worker in a thread, ATM links, a raw listener."""

import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from atm_bank import signing
from atm_bank.service import BankWorker, wait_connected
from atm_host.banklink.client import BankLink
from atm_host.banklink.outbox import Outbox
from atm_host.banklink.settings import LinkSettings
from atm_msg.schemas import Cassette
from atm_msg.settings import BrokerSettings
from atm_tools.mosquitto import Mosquitto
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from .helpers import DENOMS, World


def start_worker(world: World, broker: Mosquitto, name: str = "bank-worker-t", **kw: object) -> BankWorker:
    fleet = signing.fleet_config(world.cfg, {1: world.signing_key.public_key()})
    settings = BrokerSettings.model_validate({"host": "127.0.0.1", "port": broker.port, **kw})
    worker = BankWorker(name, settings, world.bank, world.settler, fleet=fleet)
    worker.start()
    assert wait_connected(worker), "bank worker did not connect"
    return worker


def start_link(world: World, broker: Mosquitto, atm: str, tmp: Path, **kw: object) -> BankLink:
    device = world.atms[atm][0].hex() if atm in world.atms else "00" * 8
    settings = LinkSettings.model_validate(
        {"atm_id": atm, "device_id": device, "port": broker.port, "retry_s": 0.5, **kw}
    )
    cassettes = [Cassette(denomination=d, count=500) for d in DENOMS]
    link = BankLink(settings, Outbox(tmp / f"outbox-{atm}.db"), cassettes)
    link.start()
    assert link.wait_connected(10), "ATM link did not connect"
    return link


def wait_for(cond: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Listener:
    """A raw MQTT client that records what it receives (re-subscribing after every reconnect)."""

    def __init__(self, port: int, topics: list[str], client_id: str = "test-listener") -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.topics = topics
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.reconnect_delay_set(1, 2)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = (
            3600  # like the console: the broker keeps what arrives while it reconnects
        )
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, rc: ReasonCode, props: Properties | None
    ) -> None:
        for t in self.topics:
            client.subscribe(t, qos=1)
        client.publish("test/ready", b"", qos=1).wait_for_publish(5)
        self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def received(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
