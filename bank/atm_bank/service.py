"""A bank worker: consumes auth requests and transaction reports over MQTT 5 shared subscriptions.

Malformed input is answered (when it names a response topic) with a MALFORMED decline, counted and
logged; no payload can crash the consumer. The worker uses a persistent session under a fixed client
id, so reports queued while it is down are delivered when it (or its restart) comes back.
"""

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import BaseModel, ValidationError

from . import topics
from .broker import BrokerSettings
from .core import Bank, decline
from .reasons import Reason
from .schemas import AuthRequest, FleetConfig, TxnReport
from .settle import Settler

log = logging.getLogger("atm_bank.service")

RESPONSE_EXPIRY_S = 30  # an answer older than this is useless to the ATM: its customer has gone
SESSION_EXPIRY_S = 3600


def _props(**values: Any) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(props, name, value)
    return props


class BankWorker:
    """One worker process's MQTT side: subscribe, validate, decide, answer."""

    def __init__(
        self,
        name: str,
        broker: BrokerSettings,
        bank: Bank,
        settler: Settler,
        fleet: FleetConfig | None = None,
    ) -> None:
        self.name = name
        self.broker = broker
        self.bank = bank
        self.settler = settler
        self.fleet = fleet
        self.counters: Counter[str] = Counter()
        self.connected = threading.Event()
        self.on_handled: Callable[[str], None] | None = None
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
        if broker.username:
            self.client.username_pw_set(broker.username, broker.password)
        if broker.ca_file:
            self.client.tls_set(  # pyright: ignore[reportUnknownMemberType]
                ca_certs=broker.ca_file, certfile=broker.cert_file, keyfile=broker.key_file
            )
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(1, 5)
        state = _props()
        self.client.will_set(f"{topics.BANK_STATE}/{name}", b"offline", qos=1, retain=True, properties=state)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # ----- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect_async(
            self.broker.host, self.broker.port, self.broker.keepalive_s, clean_start=False, properties=props
        )
        self.client.loop_start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Disconnect cleanly (the session stays on the broker for the next start under this name)."""
        self.client.disconnect()
        deadline = time.monotonic() + timeout_s
        while self.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.client.loop_stop()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        rc: ReasonCode,
        props: Properties | None,
    ) -> None:
        if rc.is_failure:
            log.error("%s: connect refused: %s", self.name, rc)
            return
        group = self.broker.group
        client.subscribe(
            [
                (topics.shared(topics.auth_request("+"), group), SubscribeOptions(qos=1)),
                (topics.shared(topics.txn_report("+"), group), SubscribeOptions(qos=1)),
            ]
        )
        client.publish(f"{topics.BANK_STATE}/{self.name}", b"online", qos=1, retain=True)
        if self.fleet is not None:
            client.publish(topics.FLEET_CONFIG, self.fleet.model_dump_json(), qos=1, retain=True)
        self.connected.set()
        log.info("%s: connected", self.name)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        rc: ReasonCode,
        props: Properties | None,
    ) -> None:
        self.connected.clear()
        log.warning("%s: disconnected: %s", self.name, rc)

    # ----- messages ---------------------------------------------------------------------------------
    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            self._dispatch(msg)
        except Exception:  # a consumer never dies on a message: count it, log it, go on
            self.counters["errors"] += 1
            log.exception("%s: error handling %s", self.name, msg.topic)

    def _dispatch(self, msg: mqtt.MQTTMessage) -> None:
        atm = topics.atm_of(msg.topic)
        if atm is None:
            self._malformed(msg, "topic")
            return
        if msg.topic == topics.auth_request(atm):
            self._auth(msg, atm)
        elif msg.topic == topics.txn_report(atm):
            self._report(msg, atm)
        else:
            self.counters["unexpected_topic"] += 1

    def _auth(self, msg: mqtt.MQTTMessage, atm: str) -> None:
        correlation = _correlation(msg)
        try:
            req = AuthRequest.model_validate_json(msg.payload)
        except ValidationError as exc:
            self._malformed(msg, exc)
            rid = correlation.hex() if len(correlation) == 16 else "0" * 32
            self._reply(msg, atm, topics.auth_response(atm), decline(rid, Reason.MALFORMED), correlation)
            return
        decision = self.bank.authorize(req, atm)
        self.counters["auth_" + decision.response.decision] += 1
        if not decision.fresh:
            self.counters["auth_duplicates"] += 1
        self._reply(msg, atm, topics.auth_response(atm), decision.response, correlation)
        for alarm in decision.alarms:
            self.client.publish(topics.CONSOLE_ALARM, alarm.model_dump_json(), qos=1)
        if self.on_handled is not None:
            self.on_handled(req.request_id)

    def _report(self, msg: mqtt.MQTTMessage, atm: str) -> None:
        try:
            rep = TxnReport.model_validate_json(msg.payload)
        except ValidationError as exc:
            self._malformed(msg, exc)
            return
        result = self.settler.settle(rep, atm)
        self.counters["report_" + result.outcome] += 1
        self._reply(msg, atm, topics.txn_result(atm), result, _correlation(msg))

    def _reply(
        self, msg: mqtt.MQTTMessage, atm: str, default_topic: str, body: BaseModel, corr: bytes
    ) -> None:
        topic = default_topic
        props_in = msg.properties
        wanted = getattr(props_in, "ResponseTopic", None) if props_in is not None else None
        # Answer only under the same ATM's own tree: a request cannot aim the bank at another topic.
        if (
            isinstance(wanted, str)
            and topics.atm_of(wanted) == atm
            and "+" not in wanted
            and "#" not in wanted
        ):
            topic = wanted
        props = _props(MessageExpiryInterval=RESPONSE_EXPIRY_S)
        if corr:
            props.CorrelationData = corr
        self.client.publish(topic, body.model_dump_json(), qos=1, properties=props)

    def _malformed(self, msg: mqtt.MQTTMessage, why: object) -> None:
        self.counters["malformed"] += 1
        log.warning(
            "%s: malformed message on %s (%d bytes): %s",
            self.name,
            msg.topic,
            len(msg.payload),
            str(why)[:300],
        )


def _correlation(msg: mqtt.MQTTMessage) -> bytes:
    props = msg.properties
    value = getattr(props, "CorrelationData", None) if props is not None else None
    return bytes(value) if isinstance(value, bytes | bytearray) else b""


def wait_connected(worker: BankWorker, timeout_s: float = 10.0) -> bool:
    """Block until the worker is connected and subscribed (best effort)."""
    ok = worker.connected.wait(timeout_s)
    time.sleep(0.05)
    return ok
