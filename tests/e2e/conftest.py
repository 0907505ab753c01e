"""One local system for the e2e suite: mosquitto, the bank service, the real firmware on a board, the host."""

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from atm_host.journey.config import JourneyConfig
from atm_tools.demo import ATM_ID, LocalStack, StackOptions
from atm_tools.mosquitto import find_mosquitto
from paho.mqtt.enums import CallbackAPIVersion

RETRACT_MS = 2000  # the MCU retracts untaken notes after this (30 s in service; short to keep the suite fast)


class FleetListener:
    """What the console sees: every message on the ATM's topic tree and the console alarms."""

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[str, dict[str, object]]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="e2e-console", protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(10)

    def _on_connect(self, client: mqtt.Client, *_: object) -> None:
        client.subscribe([(f"atm/v1/{ATM_ID}/#", 1), ("atm/v1/console/alarm", 1)])
        self.ready.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        body: dict[str, object]
        try:
            parsed: object = json.loads(msg.payload)
            body = parsed if isinstance(parsed, dict) else {"raw": parsed}  # type: ignore[assignment]
        except ValueError:
            body = {"raw": msg.payload.decode(errors="replace")}
        with self.lock:
            self.messages.append((msg.topic, body))

    def events(self, kind: str) -> list[dict[str, object]]:
        with self.lock:
            return [b for t, b in self.messages if t.endswith("/event") and b.get("kind") == kind]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    if find_mosquitto() is None:
        pytest.fail("mosquitto not installed (apt-get install mosquitto): the end-to-end tests need it")
    workdir: Path = tmp_path_factory.mktemp("e2e")
    opts = StackOptions(
        journey=JourneyConfig.model_validate(
            {
                "retract_timeout_ms": RETRACT_MS,
                "reset_retry_s": 0.5,
                "timeouts": {"outcome_s": 0.0, "authorize_s": 3.0, "idle_check_s": 0.3},
            }
        ),
        bank_config={"abuse": {"min_interval_s": 0}},
        customers=8,
    )
    with LocalStack(workdir, opts, log=lambda _: None) as s:
        yield s


@pytest.fixture(scope="session")
def fleet(stack: LocalStack) -> Iterator[FleetListener]:
    assert stack.broker is not None
    listener = FleetListener(stack.broker.port)
    yield listener
    listener.close()
