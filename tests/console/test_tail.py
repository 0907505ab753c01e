"""Terminal mode against a real broker: alarms and events are printed as they come."""

import io
import os
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from atm_console.tail import format_update, run
from atm_msg import topics
from atm_msg.schemas import Event
from atm_tools.mosquitto import Mosquitto, find_mosquitto
from paho.mqtt.enums import CallbackAPIVersion


def test_format_update_colours_only_when_asked() -> None:
    alarm = {"active": True, "severity": "alarm", "subject": "ATM0001", "kind": "dispenser_jam", "text": "x"}
    assert format_update("alarm", alarm, colour=False) is not None
    assert "\033[1;31m" in (format_update("alarm", alarm, colour=True) or "")
    assert "\033" not in (format_update("alarm", alarm, colour=False) or "")
    assert format_update("cmd", {}, colour=False) is None


def test_tail_prints_events_and_alarms(tmp_path: Path) -> None:
    if find_mosquitto() is None:
        pytest.skip("mosquitto not installed")
    with Mosquitto(tmp_path / "broker") as broker:
        out = io.StringIO()
        t = threading.Thread(target=run, args=("127.0.0.1", broker.port, out, 2.5))
        t.start()
        deadline = time.monotonic() + 5
        while "following" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="tail-pub", protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        body = {"atm_id": "ATM0009", "event_id": os.urandom(16).hex(), "seq": 1, "ts_ms": 1}
        ev = Event.model_validate({**body, "kind": "tamper", "severity": "alarm", "detail": {"door": "top"}})
        pub.publish(topics.event("ATM0009"), ev.model_dump_json(), qos=1).wait_for_publish(5)
        t.join(10)
        pub.disconnect()
        pub.loop_stop()
    text = out.getvalue()
    assert "event alarm   ATM0009" in text and "door=top" in text
    assert "ALARM RAISED  ATM0009" in text and "tamper" in text
