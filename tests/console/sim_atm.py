"""Simulated ATMs for the console's fleet views: the real host BankLink, which obeys only signed commands.

They answer commands as the real host does (tests/console/test_real_host.py drives a real one).

Run as a process (so killing it fires the MQTT Will):
    python tests/console/sim_atm.py --port P --dir D --pubkey HEX ATM0001 ATM0002 ...
Lines on stdin steer it: `event ATM kind severity k=v ...`, `state ATM in_service`, `cassette ATM n count`,
`telemetry`. Every command result goes back through the host outbox on atm/v1/{atm}/cmd/result.
"""

import argparse
import sys
import threading
import time
from pathlib import Path

from atm_host.banklink.client import BankLink
from atm_host.banklink.outbox import Outbox
from atm_host.banklink.settings import LinkSettings
from atm_msg.schemas import Cassette, Command

DENOMS = (100, 50, 20, 10)


class SimAtm:
    """One simulated ATM: state, cassettes, command handling."""

    def __init__(self, atm: str, port: int, workdir: Path, pubkey_hex: str, n: int) -> None:
        self.state = "in_service"
        self.cassettes = [Cassette(denomination=d, count=1500) for d in DENOMS]
        settings = LinkSettings(
            atm_id=atm, device_id=f"{n:016x}", port=port, keepalive_s=5, command_keys=(pubkey_hex,)
        )
        self.link = BankLink(settings, Outbox(workdir / f"outbox-{atm}.db"), self.cassettes)
        self.link.on_command = self.on_command
        self.counters = {"jams": 0, "retracts": 0, "dispenses": 0}

    def telemetry(self) -> None:
        self.link.cassettes = self.cassettes
        self.link.send_telemetry(self.state, self.counters)

    def on_command(self, cmd: Command) -> tuple[bool, str]:
        if cmd.name in ("in_service", "out_of_service"):
            self.state = cmd.name
            self.telemetry()
            return True, cmd.name.replace("_", " ")
        if cmd.name == "send_counters":
            self.telemetry()
            return True, f"state {self.state}, counters {self.counters}"
        # Exactly what the real host obeys (atm_host.journey `_on_command`): nothing else.
        return False, f"{cmd.name} not supported by the journey"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--pubkey", required=True)
    p.add_argument("--telemetry-s", type=float, default=1.0)
    p.add_argument("atms", nargs="+")
    a = p.parse_args()
    a.dir.mkdir(parents=True, exist_ok=True)
    sims = {atm: SimAtm(atm, a.port, a.dir, a.pubkey, i + 1) for i, atm in enumerate(a.atms)}
    for s in sims.values():
        s.link.start()
    for s in sims.values():
        s.link.wait_connected(10)
        s.link.send_event("versions", "info", {"firmware": "fw-1.4.2", "model": "sface-int8"})
    print("ready", flush=True)

    def ticker() -> None:
        while True:
            for s in sims.values():
                s.telemetry()
            time.sleep(a.telemetry_s)

    threading.Thread(target=ticker, daemon=True).start()
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "event":
            detail: dict[str, str | int] = dict(kv.split("=", 1) for kv in parts[4:])  # type: ignore[misc]
            sims[parts[1]].link.send_event(parts[2], parts[3], detail)
        elif parts[0] == "state":
            sims[parts[1]].state = parts[2]
            sims[parts[1]].telemetry()
        elif parts[0] == "cassette":
            s = sims[parts[1]]
            i = int(parts[2]) - 1
            s.cassettes[i] = Cassette(denomination=s.cassettes[i].denomination, count=int(parts[3]))
            s.telemetry()
        print("ok", flush=True)
    for s in sims.values():
        s.link.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
