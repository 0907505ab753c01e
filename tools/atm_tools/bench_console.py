"""Scale benchmark of the operator console: 10,000 simulated ATMs, telemetry every 10 s plus events.

A real mosquitto, the real console process (`python -m atm_console serve`), a few MQTT connections
publishing real schema payloads on behalf of many ATM ids, and an SSE client standing in for the
browser. Reports messages/s ingested, page update latency (publish -> SSE delivery) and backend RSS.
"""

import argparse
import contextlib
import http.client
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from atm_msg import topics
from atm_msg.schemas import Birth, Cassette, Event, Telemetry
from paho.mqtt.enums import CallbackAPIVersion

from atm_tools.benchrows import record
from atm_tools.mosquitto import Mosquitto, free_port

DENOMS = (100, 50, 20, 10)
PASSWORD = "bench-password-1"
EVENT_MIX = (("items_taken", "info"), ("items_taken", "info"), ("retract", "warning"), ("jam", "alarm"))


def _machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.1f} GiB RAM"
    cpu = f"{platform.machine()} {model or platform.processor()}, {os.cpu_count()} CPUs{mem}"
    return f"{cpu}, Python {platform.python_version()}"


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class Browser:
    """An SSE client holding the operator's session: measures publish -> delivery latency."""

    def __init__(self, port: int) -> None:
        self.port = port
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        body = json.dumps({"username": "bench", "password": PASSWORD})
        conn.request("POST", "/api/login", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        cookie = resp.getheader("set-cookie") or ""
        self.cookie = cookie.split(";", 1)[0]
        self.row_latency: list[float] = []
        self.event_latency: list[float] = []
        self.snapshot_s = 0.0
        self.snapshot_atms = 0
        self.measure = False
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def get(self, path: str) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", path, headers={"Cookie": self.cookie})
        return json.loads(conn.getresponse().read())

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        t0 = time.monotonic()
        conn.request("GET", "/api/stream", headers={"Cookie": self.cookie})
        resp = conn.getresponse()
        event = ""
        while not self.stop:
            line = resp.readline()
            if not line:
                return
            text = line.decode().rstrip("\n")
            if text.startswith("event: "):
                event = text[7:]
            elif text.startswith("data: "):
                now_ms = time.time() * 1000
                data = json.loads(text[6:])
                if event == "snapshot":
                    self.snapshot_s = time.monotonic() - t0
                    self.snapshot_atms = len(data["atms"])
                elif self.measure:
                    self.row_latency += [now_ms - a["ts_ms"] for a in data.get("atms", [])]
                    self.event_latency += [now_ms - e["ts_ms"] for e in data.get("events", [])]


class Fleet:
    """A few MQTT connections publishing for many ATM ids."""

    def __init__(self, port: int, n_atms: int, n_clients: int) -> None:
        self.atms = [f"B{i:05d}" for i in range(n_atms)]
        self.seq = dict.fromkeys(self.atms, 0)
        self.clients: list[mqtt.Client] = []
        for i in range(n_clients):
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-fleet-{i}", protocol=mqtt.MQTTv5)
            c.max_queued_messages_set(0)
            c.max_inflight_messages_set(1000)
            c.connect("127.0.0.1", port)
            c.loop_start()
            self.clients.append(c)
        self.cassettes = [Cassette(denomination=d, count=2000) for d in DENOMS]
        self.published = 0

    def client(self, i: int) -> mqtt.Client:
        return self.clients[i % len(self.clients)]

    def _next(self, atm: str) -> int:
        self.seq[atm] = (self.seq[atm] + 1) % 256
        return self.seq[atm]

    def births(self) -> None:
        for i, atm in enumerate(self.atms):
            b = Birth(atm_id=atm, bd_seq=1, seq=0, ts_ms=int(time.time() * 1000), device_id=f"{i:016x}",
                      host_version="0.1.0", config_version=1, cassettes=self.cassettes)  # fmt: skip
            self.client(i).publish(topics.birth(atm), b.model_dump_json(), qos=1)
            self.published += 1

    def telemetry(self, i: int) -> None:
        atm = self.atms[i]
        t = Telemetry(atm_id=atm, seq=self._next(atm), ts_ms=int(time.time() * 1000), state="in_service",
                      cassettes=self.cassettes, counters={"jams": 0, "dispenses": i % 97})  # fmt: skip
        self.client(i).publish(topics.telemetry(atm), t.model_dump_json(), qos=0)
        self.published += 1

    def event(self, rng: random.Random) -> None:
        i = rng.randrange(len(self.atms))
        atm = self.atms[i]
        kind, sev = rng.choice(EVENT_MIX)
        e = Event.model_validate({"atm_id": atm, "event_id": os.urandom(16).hex(), "seq": self._next(atm),
                                  "ts_ms": int(time.time() * 1000), "kind": kind, "severity": sev,
                                  "detail": {"bench": 1}})  # fmt: skip
        self.client(i).publish(topics.event(atm), e.model_dump_json(), qos=1)
        self.published += 1

    def close(self) -> None:
        for c in self.clients:
            c.disconnect()
            c.loop_stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--atms", type=int, default=10_000)
    p.add_argument("--period-s", type=float, default=10.0, help="telemetry period of each ATM")
    p.add_argument("--events-per-s", type=float, default=20.0)
    p.add_argument("--duration-s", type=float, default=60.0, help="steady-state measurement time")
    p.add_argument("--clients", type=int, default=4, help="MQTT connections publishing for the fleet")
    p.add_argument(
        "--burst", type=int, default=30_000, help="telemetry messages in the burst phase (0: none)"
    )
    p.add_argument("--out", type=Path, default=Path("reports/console/bench.json"))
    a = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-console-"))
    broker = Mosquitto(work / "broker", persistence=False)
    broker.start()
    db = work / "console.db"
    adduser = [sys.executable, "-m", "atm_console", "adduser", "--db", str(db), "--username", "bench"]
    subprocess.run([*adduser, "--password-stdin"], input=PASSWORD, text=True, check=True, capture_output=True)
    http_port = free_port()
    console = subprocess.Popen(
        [sys.executable, "-m", "atm_console", "serve", "--broker-port", str(broker.port), "--http-port",
         str(http_port), "--db", str(db), "--bucket-s", "60"], stdout=subprocess.DEVNULL,
    )  # fmt: skip
    fleet: Fleet | None = None
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", http_port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        rss_idle = _rss_mb(console.pid)
        fleet = Fleet(broker.port, a.atms, a.clients)
        t0 = time.monotonic()
        fleet.births()
        browser = Browser(http_port)
        while browser.get("/api/stats")["atms"] < a.atms and time.monotonic() - t0 < 60:
            time.sleep(0.2)
        births_s = time.monotonic() - t0
        browser.thread.start()
        rng = random.Random(5)
        rate = a.atms / a.period_s
        ingest: list[float] = []
        rss: list[float] = []
        stats0 = browser.get("/api/stats")["stats"]["messages"]
        last_n, last_t = stats0, time.monotonic()
        start = time.monotonic()
        next_sample = start + 1.0
        sent = 0
        ev_credit = 0.0
        browser.measure = True
        while (now := time.monotonic()) - start < a.duration_s:
            due = int((now - start) * rate)
            while sent < due:
                fleet.telemetry(sent % a.atms)
                sent += 1
            want_events = int((now - start) * a.events_per_s)
            while ev_credit < want_events:
                fleet.event(rng)
                ev_credit += 1
            if now >= next_sample:
                n = browser.get("/api/stats")["stats"]["messages"]
                ingest.append((n - last_n) / (now - last_t))
                last_n, last_t = n, now
                rss.append(_rss_mb(console.pid))
                next_sample += 1.0
            time.sleep(0.002)
        browser.measure = False
        steady_pub = (sent + ev_credit) / a.duration_s
        burst_rate = float("nan")
        if a.burst:
            n0 = browser.get("/api/stats")["stats"]["messages"]
            tb = time.monotonic()
            for i in range(a.burst):
                fleet.telemetry(i % a.atms)
            while browser.get("/api/stats")["stats"]["messages"] < n0 + a.burst * 0.99:
                if time.monotonic() - tb > 120:
                    break
                time.sleep(0.05)
            burst_rate = (browser.get("/api/stats")["stats"]["messages"] - n0) / (time.monotonic() - tb)
            rss.append(_rss_mb(console.pid))
        totals = browser.get("/api/stats")
        browser.stop = True
        rows = [
            ("ingest, steady (msg/s)", ingest[2:] or ingest, f"published {steady_pub:.0f} msg/s"),
            ("page update latency, ATM rows (ms)", browser.row_latency, f"{len(browser.row_latency)} rows"),
            (
                "page update latency, events (ms)",
                browser.event_latency,
                f"{len(browser.event_latency)} events",
            ),
            ("backend RSS (MiB)", rss, f"idle {rss_idle:.0f} MiB before the fleet"),
        ]
        print(f"machine: {_machine()}")
        print(f"fleet: {a.atms} ATMs over {a.clients} MQTT connections, telemetry every {a.period_s:g} s, "
              f"{a.events_per_s:g} events/s, {a.duration_s:g} s steady")  # fmt: skip
        print(f"{'metric':<38}{'median':>10}{'p95':>10}{'max':>10}  note")
        for name, vals, note in rows:
            med, p95, mx = (
                statistics.median(vals) if vals else float("nan"),
                _pct(vals, 0.95),
                max(vals or [0]),
            )
            print(f"{name:<38}{med:>10.1f}{p95:>10.1f}{mx:>10.1f}  {note}")
            record("console", name, med, p95, "", note)
        record("console", "burst ingest", burst_rate, None, "msg/s", f"{a.burst} telemetry messages")
        print(
            f"burst ingest: {burst_rate:.0f} msg/s ({a.burst} telemetry messages as fast as 4 publishers go)"
        )
        print(f"births of {a.atms} ATMs ingested in {births_s:.1f} s; first page snapshot "
              f"({browser.snapshot_atms} ATMs) in {browser.snapshot_s:.2f} s; "
              f"malformed {totals['stats']['malformed']}")  # fmt: skip
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps({
            "machine": _machine(), "atms": a.atms, "period_s": a.period_s, "events_per_s": a.events_per_s,
            "ingest_msg_s": ingest, "row_latency_ms_p50": statistics.median(browser.row_latency or [0]),
            "row_latency_ms_p95": _pct(browser.row_latency, 0.95),
            "event_latency_ms_p50": statistics.median(browser.event_latency or [0]),
            "event_latency_ms_p95": _pct(browser.event_latency, 0.95), "rss_mb": rss,
            "burst_msg_s": burst_rate, "births_s": births_s, "snapshot_s": browser.snapshot_s,
        }, indent=1))  # fmt: skip
        return 0
    finally:
        if fleet is not None:
            fleet.close()
        console.terminate()
        try:
            console.wait(10)
        except subprocess.TimeoutExpired:
            console.kill()
        broker.stop()


if __name__ == "__main__":
    raise SystemExit(main())
