"""Terminal mode: print the fleet's alarms and events as they arrive (colour on a TTY)."""

import sys
import threading
import time
from typing import TextIO

from atm_msg.settings import BrokerSettings

from .fleet import Fleet, Json
from .mqtt import FleetLink

COLOURS = {"alarm": "\033[1;31m", "warning": "\033[33m", "info": "\033[36m", "ok": "\033[32m"}
RESET = "\033[0m"


def format_update(kind: str, data: Json, colour: bool) -> str | None:
    """One line for an update from Fleet.ingest, or None for updates tail does not show."""
    stamp = time.strftime("%H:%M:%S")
    if kind == "alarm":
        state = "RAISED" if data["active"] else "cleared"
        sev = str(data["severity"]) if data["active"] else "ok"
        text = f"{stamp} ALARM {state:7} {data['subject']:<12} {data['kind']:<16} {data['text']}"
    elif kind == "event":
        sev = str(data["severity"])
        detail = " ".join(f"{k}={v}" for k, v in dict(data["detail"]).items())
        text = f"{stamp} event {sev:7} {data['atm_id']:<12} {data['kind']:<16} {detail}"
    elif kind == "txn":
        sev = "info"
        amount = f"{data['amount_yuan']} yuan {data['txid'] or ''}"
        text = f"{stamp} txn   {data['stage']:7} {data['atm_id']:<12} {amount}"
    else:
        return None
    return f"{COLOURS.get(sev, '')}{text}{RESET}" if colour else text


def run(host: str, port: int, out: TextIO = sys.stdout, duration_s: float | None = None) -> int:
    """Follow the fleet until Ctrl-C (or duration_s); returns an exit code."""
    fleet = Fleet()
    colour = out.isatty()
    lock = threading.Lock()

    def on_message(topic: str, payload: bytes) -> None:
        for kind, data in fleet.ingest(topic, payload):
            line = format_update(kind, data, colour)
            if line is not None:
                with lock:
                    print(line, file=out, flush=True)

    settings = BrokerSettings(host=host, port=port)
    link = FleetLink(settings, on_message, client_id=f"atm-console-tail-{time.time_ns()}", persistent=False)
    link.start()
    if not link.wait_connected(10):
        print(f"error: no MQTT broker at {host}:{port} after 10 s; start mosquitto or pass --host/--port",
              file=sys.stderr)  # fmt: skip
        link.stop()
        return 2
    print(f"following the fleet on {host}:{port} (Ctrl-C to stop)", file=out, flush=True)
    try:
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        link.stop()
    return 0
