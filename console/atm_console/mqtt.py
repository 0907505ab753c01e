"""The console's one MQTT client (paho-mqtt 2, MQTT 5): one subscription set for the whole fleet.

No other console module imports paho. The console subscribes once (per connection) to the fleet's
birth, death, telemetry, events, authorization answers, transaction results, command results and the
bank's alarms; never to auth requests (they carry face embeddings an operator has no need to see).
"""

import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from atm_msg import mqtt as msg_mqtt
from atm_msg import topics
from atm_msg.settings import BrokerSettings
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

log = logging.getLogger("atm_console.mqtt")

SESSION_EXPIRY_S = 3600  # command results that arrive while the console restarts are kept for it
LEAVES = ("birth", "death", "telemetry", "event", "auth/res", "txn/result", "cmd/result")
FILTERS = (*(f"{topics.ROOT}/+/{leaf}" for leaf in LEAVES), topics.CONSOLE_ALARM)

OnMessage = Callable[[str, bytes], None]


class FleetLink:
    """Subscribes to the fleet and publishes signed commands."""

    def __init__(
        self,
        settings: BrokerSettings,
        on_message: OnMessage,
        *,
        client_id: str = "atm-console",
        persistent: bool = True,
        on_connection: Callable[[bool], None] | None = None,
    ) -> None:
        self.settings = settings
        self.on_message = on_message
        self.on_connection = on_connection
        self.persistent = persistent
        self.connected = threading.Event()
        self.client = msg_mqtt.new_client(settings, client_id, max_inflight=100)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self) -> None:
        expiry = SESSION_EXPIRY_S if self.persistent else 0
        msg_mqtt.connect(self.settings, self.client, session_expiry_s=expiry)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def wait_connected(self, timeout_s: float = 10.0) -> bool:
        return self.connected.wait(timeout_s)

    def publish_signed(
        self, topic: str, payload: bytes, user_properties: list[tuple[str, str]], timeout_s: float = 5.0
    ) -> bool:
        """QoS 1 publish with MQTT 5 user properties; True once the broker acknowledged it."""
        if not self.connected.is_set():
            return False
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = user_properties
        info = self.client.publish(topic, payload, qos=1, properties=props)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        info.wait_for_publish(timeout_s)
        return info.is_published()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        rc: ReasonCode,
        props: Properties | None,
    ) -> None:
        if rc.is_failure:
            log.error("console: connect refused: %s", rc)
            return
        client.subscribe([(f, SubscribeOptions(qos=1)) for f in FILTERS])
        self.connected.set()
        if self.on_connection is not None:
            self.on_connection(True)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        rc: ReasonCode,
        props: Properties | None,
    ) -> None:
        self.connected.clear()
        log.warning("console: disconnected from the broker: %s", rc)
        if self.on_connection is not None:
            self.on_connection(False)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            self.on_message(msg.topic, bytes(msg.payload))
        except Exception:  # the network thread must survive any handler bug
            log.exception("console: error handling %s", msg.topic)
