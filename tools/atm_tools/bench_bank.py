"""Load benchmark of the bank service: N simulated ATMs (MQTT connections) against 1, 2 and 4 workers."""

import argparse
import json
import os
import selectors
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from atm_bank import qrtoken, signing, topics
from atm_bank.config import BankConfig
from atm_bank.db import open_database
from atm_bank.registry import Template, enroll, provision_atm
from atm_bank.schemas import AuthRequest, Cassette, FaceProbe
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from atm_tools.mosquitto import Mosquitto

MODEL = "bench-model"
DENOMS = [100, 50, 20, 10]
DIM = 128


@dataclass
class Setup:
    """A provisioned bank in a folder: database URL, config, signing key, ATMs and customers."""

    folder: Path
    db_url: str
    config_path: Path
    key_path: Path
    atms: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])
    customers: list[tuple[int, int, str, str]] = field(default_factory=list[tuple[int, int, str, str]])


def _embedding() -> list[float]:
    v = [1.0] + [0.0] * (DIM - 1)
    return v


def load_config() -> BankConfig:
    """Rules for load: the same code paths, with attempt limits opened so repeated customers pass."""
    return BankConfig.model_validate(
        {
            "face": {"thresholds": {MODEL: 0.6}},
            "abuse": {
                "max_attempts_customer_day": 10**9,
                "max_attempts_account_day": 10**9,
                "max_attempts_atm_day": 10**9,
                "min_interval_s": 0,
            },
            "limits": {"per_customer_day_yuan": 10**9, "per_account_total_yuan": 10**9},
        }
    )


def prepare(folder: Path, n_atms: int, n_customers: int, db_url: str | None = None) -> Setup:
    """Create the key, config, database, ATMs and customers."""
    folder.mkdir(parents=True, exist_ok=True)
    url = db_url or f"sqlite:///{folder / 'bank.db'}"
    setup = Setup(folder, url, folder / "bank.json", folder / "signing.pem")
    setup.config_path.write_text(load_config().model_dump_json())
    signing.generate(setup.key_path)
    db = open_database(url)
    for i in range(n_atms):
        atm, dev = f"B{i:05d}", os.urandom(8)
        provision_atm(db, atm, dev, DENOMS)
        setup.atms.append((atm, dev.hex()))
    for i in range(n_customers):
        cid, aid, acct, mobile = 10_000 + i, 20_000 + i, f"6222{i:015d}", f"139{i:08d}"
        enroll(
            db,
            customer_id=cid,
            account_id=aid,
            account_number=acct,
            mobile=mobile,
            template=Template(MODEL, 1, _embedding(), 0.9),
        )
        setup.customers.append((cid, aid, acct, mobile))
    db.close()
    return setup


def make_requests(setup: Setup, count: int, amount: int = 100) -> list[tuple[str, AuthRequest]]:
    """Pre-signed requests (the phone's token included), spread over ATMs and customers."""
    key = signing.load(setup.key_path)
    out: list[tuple[str, AuthRequest]] = []
    now = int(time.time())
    cassettes = [Cassette(denomination=d, count=60000) for d in DENOMS]
    for i in range(count):
        atm, dev = setup.atms[i % len(setup.atms)]
        cid, aid, acct, mobile = setup.customers[i % len(setup.customers)]
        tok = qrtoken.issue(
            key, key_id=1, customer_id=cid, account_id=aid, amount_yuan=0, now_s=now, ttl_s=120
        )
        out.append(
            (
                atm,
                AuthRequest(
                    request_id=os.urandom(16).hex(),
                    atm_id=atm,
                    device_id=dev,
                    command_nonce=os.urandom(16).hex(),
                    qr_token=tok,
                    amount_yuan=amount,
                    face=FaceProbe(
                        model_id=MODEL, template_version=1, embedding=_embedding(), liveness=0.99, quality=0.9
                    ),
                    account_digits=acct[-4:],
                    mobile_digits=mobile[-4:],
                    cassettes=cassettes,
                    ts_ms=int(time.time() * 1000),
                ),
            )
        )
    return out


def start_workers(
    setup: Setup, port: int, n: int, name: str = "bench-worker"
) -> list[subprocess.Popen[bytes]]:
    """Start n worker processes (python -m atm_bank worker) and wait until each is online."""
    procs: list[subprocess.Popen[bytes]] = []
    for i in range(n):
        procs.append(start_worker(setup, port, i, name))
    wait_online(port, [f"{name}-{i}" for i in range(n)])
    return procs


def start_worker(setup: Setup, port: int, index: int, name: str = "bench-worker") -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "atm_bank",
        "--db",
        setup.db_url,
        "--config",
        str(setup.config_path),
        "--signing-key",
        str(setup.key_path),
        "worker",
        "--index",
        str(index),
        "--port",
        str(port),
        "--name",
        name,
    ]
    log = (setup.folder / f"{name}-{index}.log").open("ab")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def wait_online(port: int, names: list[str], timeout_s: float = 30.0) -> None:
    """Block until every named worker has published its retained 'online' state."""
    online: set[str] = set()
    done = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"wait-{os.getpid()}-{time.monotonic_ns()}",
        protocol=mqtt.MQTTv5,
    )

    def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        name = m.topic.rsplit("/", 1)[-1]
        if m.payload == b"online":
            online.add(name)
        else:
            online.discard(name)
        if set(names) <= online:
            done.set()

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe(f"{topics.BANK_STATE}/#", qos=1)
    client.loop_start()
    ok = done.wait(timeout_s)
    client.loop_stop()
    client.disconnect()
    if not ok:
        raise RuntimeError(f"workers not online: {sorted(set(names) - online)}")


class Swarm:
    """N ATM connections driven from one thread with a selector (no thread per ATM)."""

    def __init__(self, port: int, atms: list[str]) -> None:
        self.sel = selectors.DefaultSelector()
        self.clients: dict[str, mqtt.Client] = {}
        self.sent: dict[bytes, float] = {}
        self.latencies: list[float] = []
        self.approved = 0
        self.dirty: set[mqtt.Client] = set()
        for atm in atms:
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=atm, protocol=mqtt.MQTTv5)
            c.on_message = self._on_message
            c.on_connect = self._on_connect
            c.connect("127.0.0.1", port, keepalive=120)
            sock = c.socket()
            if sock is None:
                raise RuntimeError(f"{atm}: no socket")
            self.sel.register(sock, selectors.EVENT_READ, c)
            self.clients[atm] = c
            self.dirty.add(c)
        self.subscribed = 0
        deadline = time.monotonic() + 30
        while self.subscribed < len(atms) and time.monotonic() < deadline:
            self.pump(0.01)

    def _on_connect(self, c: mqtt.Client, u: object, f: object, rc: ReasonCode, p: Properties | None) -> None:
        cid = c._client_id.decode()  # pyright: ignore[reportPrivateUsage]
        c.subscribe(topics.auth_response(cid), qos=1)
        self.subscribed += 1
        self.dirty.add(c)

    def _on_message(self, c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        corr = getattr(m.properties, "CorrelationData", None)
        if not isinstance(corr, bytes):
            return
        t0 = self.sent.pop(corr, None)
        if t0 is None:
            return
        self.latencies.append(time.perf_counter() - t0)
        if b'"approve"' in m.payload:
            self.approved += 1

    def pump(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout):
            client: mqtt.Client = key.data
            client.loop_read()
            self.dirty.add(client)
        for client in list(self.dirty):
            if client.want_write():
                client.loop_write()
        self.dirty = {c for c in self.dirty if c.want_write()}

    def run(self, reqs: list[tuple[str, AuthRequest]], concurrency: int, timeout_s: float = 120) -> float:
        payloads = [(atm, r.request_id, r.model_dump_json().encode()) for atm, r in reqs]
        i = 0
        start = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        last_misc = time.monotonic()
        while (i < len(payloads) or self.sent) and time.monotonic() < deadline:
            while i < len(payloads) and len(self.sent) < concurrency:
                atm, rid, body = payloads[i]
                props = Properties(PacketTypes.PUBLISH)
                props.ResponseTopic = topics.auth_response(atm)
                props.CorrelationData = bytes.fromhex(rid)
                props.MessageExpiryInterval = 30
                c = self.clients[atm]
                self.sent[bytes.fromhex(rid)] = time.perf_counter()
                c.publish(topics.auth_request(atm), body, qos=1, properties=props)
                self.dirty.add(c)
                i += 1
            self.pump(0.002)
            if time.monotonic() - last_misc > 1:
                for c in self.clients.values():
                    c.loop_misc()
                last_misc = time.monotonic()
        return time.perf_counter() - start

    def close(self) -> None:
        for c in self.clients.values():
            c.disconnect()
            self.dirty.add(c)
        self.pump(0.1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_once(args: argparse.Namespace, workers: int, base: Path) -> dict[str, float]:
    folder = base / f"w{workers}"
    broker = Mosquitto(folder / "broker", persistence=True)
    broker.start()
    setup = prepare(folder, args.atms, args.customers)
    if args.sqlite_sync != "FULL":
        setup.db_url += f"?synchronous={args.sqlite_sync}"
    procs = start_workers(setup, broker.port, workers)
    try:
        reqs = make_requests(setup, args.requests + args.warmup)
        swarm = Swarm(broker.port, [a for a, _ in setup.atms])
        swarm.run(reqs[: args.warmup], args.concurrency)
        swarm.latencies.clear()
        swarm.approved = 0
        cpu0 = {p.pid: cpu_seconds(p.pid) for p in procs}
        b0 = cpu_seconds(broker.pid or 0)
        me0 = sum(os.times()[:2])
        elapsed = swarm.run(reqs[args.warmup :], args.concurrency)
        wcpu = sum(cpu_seconds(p.pid) - cpu0[p.pid] for p in procs)
        bcpu = cpu_seconds(broker.pid or 0) - b0
        mecpu = sum(os.times()[:2]) - me0
        done = len(swarm.latencies)
        swarm.close()
        return {
            "workers": workers,
            "atms": args.atms,
            "requests": args.requests,
            "answered": done,
            "approved": swarm.approved,
            "auth_per_s": done / elapsed,
            "p50_ms": statistics.median(swarm.latencies) * 1000 if done else float("nan"),
            "p99_ms": percentile(swarm.latencies, 0.99) * 1000,
            "broker_cpu_pct": 100 * bcpu / elapsed,
            "workers_cpu_pct": 100 * wcpu / elapsed,
            "loadgen_cpu_pct": 100 * mecpu / elapsed,
        }
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        broker.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table (CPU % is of one core; this box has os.cpu_count() cores)."""
    parser = argparse.ArgumentParser(prog="bench_bank", description=__doc__)
    parser.add_argument("--atms", type=int, default=1000, help="simulated ATMs (one MQTT connection each)")
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--requests", type=int, default=5000, help="measured authorizations per run")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight at once")
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts")
    parser.add_argument(
        "--sqlite-sync", default="NORMAL", choices=["FULL", "NORMAL"], help="bank DB durability"
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    args = parser.parse_args(argv)
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="atm-bench-") as tmp:
        for n in [int(x) for x in args.workers.split(",")]:
            rows.append(run_once(args, n, Path(tmp)))
            if args.json:
                print(json.dumps(rows[-1]), flush=True)
    if not args.json:
        print(
            f"bank load benchmark: {args.atms} ATMs, {args.requests} authorizations per run, "
            f"{args.concurrency} in flight, SQLite synchronous={args.sqlite_sync}, {os.cpu_count()} CPUs "
            "(CPU % of one core)"
        )
        head = (
            f"{'workers':>7} {'auth/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'answered':>8} {'approved':>8} "
            f"{'broker%':>7} {'workers%':>8} {'loadgen%':>8}"
        )
        print(head)
        for r in rows:
            print(
                f"{r['workers']:>7.0f} {r['auth_per_s']:>8.0f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} "
                f"{r['answered']:>8.0f} {r['approved']:>8.0f} {r['broker_cpu_pct']:>7.0f} "
                f"{r['workers_cpu_pct']:>8.0f} {r['loadgen_cpu_pct']:>8.0f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
