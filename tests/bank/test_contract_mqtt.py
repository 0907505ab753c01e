"""The contract's one BrokerSettings and connect helper (atm_msg.settings, atm_msg.mqtt), on a real broker."""

import socket
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from atm_msg import mqtt as msg_mqtt
from atm_msg.errors import BrokerSettingsError
from atm_msg.settings import BrokerSettings
from atm_tools.mosquitto import Mosquitto
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"cert_file": "c.pem", "key_file": "k.pem"}, "cert_file without ca_file"),
        ({"ca_file": "ca.pem", "key_file": "k.pem"}, "key_file without cert_file"),
        ({"username": "u", "password": "p", "password_file": "f"}, "not both"),
        ({"password": "p"}, "needs a username"),
        ({"group": "bank"}, "Extra inputs are not permitted"),
        ({"port": 0}, "greater than or equal to 1"),
    ],
)
def test_inconsistent_settings_are_refused(fields: dict[str, object], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        BrokerSettings.model_validate(fields)


def test_password_comes_from_the_file_first_line(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt.pw"
    secret.write_text("s3cret\nignored\n")
    assert BrokerSettings(username="atm", password_file=secret).read_password() == "s3cret"
    assert BrokerSettings(username="atm", password="direct").read_password() == "direct"
    secret.write_text("")
    with pytest.raises(BrokerSettingsError, match="empty"):
        BrokerSettings(username="atm", password_file=secret).read_password()
    with pytest.raises(BrokerSettingsError, match="missing"):
        BrokerSettings(username="atm", password_file=tmp_path / "missing").read_password()


def test_connect_helper_reaches_the_broker_with_tcp_nodelay(broker: Mosquitto) -> None:
    settings = BrokerSettings(port=broker.port, client_id="contract-test")
    client = msg_mqtt.new_client(settings, "ignored-default")
    connected = threading.Event()
    nodelay: list[int] = []

    def on_connect(
        c: mqtt.Client, userdata: object, flags: object, rc: ReasonCode, props: Properties | None
    ) -> None:
        sock = c.socket()
        if isinstance(sock, socket.socket):
            nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        connected.set()

    client.on_connect = on_connect
    msg_mqtt.connect(settings, client, session_expiry_s=0)
    try:
        assert connected.wait(10), "the helper's client did not connect"
        assert nodelay == [1]
        assert client._client_id == b"contract-test"  # pyright: ignore[reportPrivateUsage]
    finally:
        client.disconnect()
        client.loop_stop()
