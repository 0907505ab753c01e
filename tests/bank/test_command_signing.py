"""An ATM obeys only remote commands a trusted key signed for it; everything else is refused and counted."""

import json
import secrets
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from atm_msg import topics
from atm_msg.cmdsign import public_hex, sign_properties
from atm_msg.schemas import Command
from atm_tools.mosquitto import Mosquitto
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .helpers import World
from .mqtt_helpers import Listener, start_link, wait_for

ATM = "ATM0001"


def _command(name: str = "out_of_service") -> bytes:
    cmd = Command.model_validate(
        {"command_id": secrets.token_hex(16), "name": name, "expires_ms": int(time.time() * 1000) + 60_000}
    )
    return cmd.model_dump_json().encode()


def _publish(port: int, topic: str, payload: bytes, props: list[tuple[str, str]]) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"console-{secrets.token_hex(4)}",
                    protocol=mqtt.MQTTv5)  # fmt: skip
    c.connect("127.0.0.1", port)
    c.loop_start()
    p = Properties(PacketTypes.PUBLISH)
    if props:
        p.UserProperty = props
    c.publish(topic, payload, qos=1, properties=p).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()


def test_only_signed_commands_run(world: World, broker: Mosquitto, tmp_path: Path) -> None:
    console_key = Ed25519PrivateKey.generate()
    stranger = Ed25519PrivateKey.generate()
    link = start_link(world, broker, ATM, tmp_path, command_keys=[public_hex(console_key.public_key())])
    ran: list[str] = []
    link.on_command = lambda cmd: (ran.append(cmd.command_id), (True, "done"))[1]
    results = Listener(broker.port, [topics.command_result(ATM)])
    try:
        topic = topics.command(ATM)
        unsigned = _command()
        _publish(broker.port, topic, unsigned, [])
        foreign = _command()
        _publish(broker.port, topic, foreign, sign_properties(stranger, topic, foreign))
        replayed = _command()  # signed for another ATM, sent to this one
        _publish(
            broker.port, topic, replayed, sign_properties(console_key, topics.command("ATM0002"), replayed)
        )
        tampered = _command()
        props = sign_properties(console_key, topic, tampered)
        _publish(broker.port, topic, tampered.replace(b"out_of_service", b"in_service"), props)
        good = _command()
        _publish(broker.port, topic, good, sign_properties(console_key, topic, good))
        wait_for(lambda: len(results.messages) >= 5, what="five command results")
        answers = {json.loads(p)["command_id"]: json.loads(p) for _, p in results.messages}
        good_id = json.loads(good)["command_id"]
        assert ran == [good_id]
        assert answers[good_id]["ok"] is True
        refused = [a for cid, a in answers.items() if cid != good_id]
        assert len(refused) == 4 and all(not a["ok"] and "signature" in a["detail"] for a in refused)
        assert link.counters["unsigned_commands"] == 4
    finally:
        results.close()
        link.stop()


def test_an_atm_with_no_trusted_key_obeys_nothing(world: World, broker: Mosquitto, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    link = start_link(world, broker, ATM, tmp_path)
    ran: list[str] = []
    link.on_command = lambda cmd: (ran.append(cmd.command_id), (True, "done"))[1]
    try:
        topic = topics.command(ATM)
        cmd = _command("reboot")
        _publish(broker.port, topic, cmd, sign_properties(key, topic, cmd))
        wait_for(lambda: link.counters["unsigned_commands"] == 1, what="the refusal")
        assert ran == []
    finally:
        link.stop()
