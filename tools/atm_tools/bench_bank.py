"""Load benchmark of the bank service: N simulated ATMs (MQTT connections) against 1, 2 and 4 workers."""

import argparse
import json
import os
import platform
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from atm_bank import signing
from atm_bank.config import BankConfig
from atm_bank.db import open_database
from atm_bank.registry import Template, enroll, provision_atm
from atm_msg import qrtoken, topics
from atm_msg.schemas import AuthRequest, Cassette, FaceProbe
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from atm_tools.benchrows import record
from atm_tools.mosquitto import Mosquitto
from atm_tools.postgres import Postgres

Row = dict[str, Any]

MODEL = "bench-model"
DENOMS = [100, 50, 20, 10]
DIM = 128


@dataclass(frozen=True)
class Outgoing:
    """One prepared authorization request."""

    client: mqtt.Client
    topic: str
    body: bytes
    props: Properties
    corr: bytes


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
                    max_notes=60,  # the presenter capacity a dispenser states in its hello
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
    """N ATM connections driven from one thread with a selector (no thread per ATM).

    Lean on purpose (it shares the 2 cores with the broker and the workers): requests are serialised and
    their MQTT properties built before the clock starts, sockets have TCP_NODELAY like the ATM host's.
    """

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
            if not isinstance(sock, socket.socket):
                raise RuntimeError(f"{atm}: no socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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

    def prepare(self, reqs: list[tuple[str, AuthRequest]]) -> list[Outgoing]:
        """Everything a publish needs, built before the measurement."""
        out: list[Outgoing] = []
        for atm, r in reqs:
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = topics.auth_response(atm)
            corr = bytes.fromhex(r.request_id)
            props.CorrelationData = corr
            props.MessageExpiryInterval = 30
            out.append(
                Outgoing(
                    self.clients[atm], topics.auth_request(atm), r.model_dump_json().encode(), props, corr
                )
            )
        return out

    def _send(self, o: Outgoing, t0: float) -> None:
        self.sent[o.corr] = t0
        o.client.publish(o.topic, o.body, qos=1, properties=o.props)
        self.dirty.add(o.client)

    def run(self, reqs: list[Outgoing], concurrency: int, rate: float = 0.0, timeout_s: float = 120) -> float:
        """Closed loop (rate 0: keep `concurrency` in flight) or open loop (rate/s on a fixed schedule).

        Open loop: latency counts from the scheduled send time, so a stalled bank cannot hide its own
        queueing by slowing the generator down (no coordinated omission).
        """
        i = 0
        start = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        last_misc = time.monotonic()
        while (i < len(reqs) or self.sent) and time.monotonic() < deadline:
            wait = 0.002
            if rate > 0:
                now = time.perf_counter()
                while i < len(reqs) and start + i / rate <= now:
                    self._send(reqs[i], start + i / rate)
                    i += 1
                if i < len(reqs):
                    wait = max(0.0, min(wait, start + i / rate - time.perf_counter()))
            else:
                while i < len(reqs) and len(self.sent) < concurrency:
                    self._send(reqs[i], time.perf_counter())
                    i += 1
            self.pump(wait)
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


def _phase(swarm: Swarm, reqs: list[Outgoing], concurrency: int, rate: float) -> dict[str, float]:
    """One measured load phase: throughput and latency percentiles."""
    swarm.latencies.clear()
    swarm.approved = 0
    elapsed = swarm.run(reqs, concurrency, rate)
    lat = swarm.latencies
    return {
        "answered": len(lat),
        "approved": swarm.approved,
        "auth_per_s": len(lat) / elapsed,
        "p50_ms": statistics.median(lat) * 1000 if lat else float("nan"),
        "p99_ms": percentile(lat, 0.99) * 1000,
        "elapsed_s": elapsed,
    }


def run_once(args: argparse.Namespace, workers: int, base: Path, backend: str, pg: Postgres | None) -> Row:
    """One row of the table: a fresh broker and database, `workers` worker processes, two load phases.

    Saturation: closed loop, `concurrency` requests kept in flight, the most the bank answers per second.
    Target rate: open loop at `rate` per second on a fixed schedule (how a fleet's traffic arrives),
    latency from each request's scheduled time, so queueing in the bank is never hidden (no coordinated
    omission). The target holds when the open loop keeps up and its p99 stays within 50 ms.
    """
    folder = base / f"{backend}-w{workers}"
    broker = Mosquitto(folder / "broker", persistence=True)
    broker.start()
    db_url = None
    if pg is not None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(f"w{workers}")))
        db_url = pg.url.rsplit("/", 1)[0] + f"/w{workers}"
    setup = prepare(folder, args.atms, args.customers, db_url)
    if backend == "sqlite" and args.sqlite_sync != "FULL":
        setup.db_url += f"?synchronous={args.sqlite_sync}"
    procs = start_workers(setup, broker.port, workers)
    try:
        n, w = args.requests, args.warmup
        reqs = make_requests(setup, w + 2 * n)
        swarm = Swarm(broker.port, [a for a, _ in setup.atms])
        prepared = swarm.prepare(reqs)
        swarm.run(prepared[:w], args.concurrency)
        server = pg.all_pids() if pg is not None else []
        cpu0 = {pid: cpu_seconds(pid) for pid in [p.pid for p in procs] + server}
        b0 = cpu_seconds(broker.pid or 0)
        me0 = sum(os.times()[:2])
        saturation = _phase(swarm, prepared[w : w + n], args.concurrency, 0.0)
        elapsed = saturation["elapsed_s"]
        wcpu = sum(cpu_seconds(p.pid) - cpu0[p.pid] for p in procs)
        dbcpu = sum(cpu_seconds(pid) - cpu0[pid] for pid in server)
        bcpu = cpu_seconds(broker.pid or 0) - b0
        mecpu = sum(os.times()[:2]) - me0
        target = _phase(swarm, prepared[w + n :], args.concurrency, args.rate)
        swarm.close()
        row: Row = {
            "backend": backend,
            "workers": workers,
            "atms": args.atms,
            "requests": n,
            "max_auth_per_s": saturation["auth_per_s"],
            "max_p50_ms": saturation["p50_ms"],
            "max_p99_ms": saturation["p99_ms"],
            "offered_per_s": args.rate,
            "auth_per_s": target["auth_per_s"],
            "p50_ms": target["p50_ms"],
            "p99_ms": target["p99_ms"],
            "answered": saturation["answered"] + target["answered"],
            "approved": saturation["approved"] + target["approved"],
            "broker_cpu_pct": 100 * bcpu / elapsed,
            "workers_cpu_pct": 100 * wcpu / elapsed,
            "db_cpu_pct": 100 * dbcpu / elapsed,
            "loadgen_cpu_pct": 100 * mecpu / elapsed,
        }
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        broker.stop()
    stats = worker_stats(folder)  # whole run, warm-up included
    row["mean_batch"] = stats.get("messages", 0) / max(1, stats.get("batches", 0))
    row["db_conflicts"] = stats.get("db_conflicts", 0)
    return row


def worker_stats(folder: Path) -> dict[str, int]:
    """Sum of the 'stats' lines the workers log when they stop (messages, batches, conflicts)."""
    total: dict[str, int] = {}
    for path in folder.glob("bench-worker-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            _, sep, tail = line.partition(": stats ")
            if sep:
                for k, v in json.loads(tail).items():
                    total[k] = max(total.get(k, 0), v) if k == "max_batch" else total.get(k, 0) + v
    return total


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table (CPU % is of one core; this box has os.cpu_count() cores)."""
    parser = argparse.ArgumentParser(prog="bench_bank", description=__doc__)
    parser.add_argument("--atms", type=int, default=1000, help="simulated ATMs (one MQTT connection each)")
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--requests", type=int, default=5000, help="measured authorizations per phase")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument(
        "--concurrency", type=int, default=32, help="saturation phase (closed loop): requests in flight"
    )
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="target phase (open loop): offered authorizations/s"
    )
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts")
    parser.add_argument(
        "--db", default="sqlite", help="comma-separated backends: sqlite, postgres (a private server)"
    )
    parser.add_argument(
        "--sqlite-sync",
        default="FULL",
        choices=["FULL", "NORMAL"],
        help="SQLite durability (FULL, the service's default: a commit survives power loss)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.db.split(",") if b.strip()]
    if any(b not in ("sqlite", "postgres") for b in backends):
        parser.error(f"--db: expected sqlite and/or postgres, got {args.db!r}")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="atm-bench-") as tmp:
        for backend in backends:
            pg = Postgres() if backend == "postgres" else None  # own temp dir: its owner must reach it
            if pg is not None:
                pg.start()
            try:
                for n in [int(x) for x in args.workers.split(",")]:
                    rows.append(run_once(args, n, Path(tmp), backend, pg))
                    r = rows[-1]
                    tag = f"{backend}, {n} worker{'s' if n > 1 else ''}"
                    durability = f"synchronous={args.sqlite_sync}" if backend == "sqlite" else "fsync=off"
                    record("bank", f"most authorizations/s, {tag}", r["max_auth_per_s"], None, "auth/s",
                           f"closed loop, {args.concurrency} in flight; {durability}")  # fmt: skip
                    note = f"p99 {r['p99_ms']:.1f} ms (target 50); {r['auth_per_s']:.0f}/s answered"
                    measure = f"latency at {args.rate:.0f}/s offered, {tag}"
                    record("bank", measure, r["p50_ms"], None, "ms", note)
                    if args.json:
                        print(json.dumps(rows[-1]), flush=True)
            finally:
                if pg is not None:
                    pg.stop()
    if not args.json:
        print(
            f"bank load benchmark: {args.atms} ATMs, {args.requests} authorizations per phase; saturation: "
            f"closed loop, {args.concurrency} in flight; target: open loop at {args.rate:.0f}/s offered; "
            f"SQLite synchronous={args.sqlite_sync}, PostgreSQL fsync=off; {platform.node()}, "
            f"{os.cpu_count()} CPUs (CPU % of one core, saturation phase)"
        )
        head = (
            f"{'db':>8} {'workers':>7} {'max/s':>6} {'p99':>6} | {'offered':>7} {'auth/s':>6} {'p50 ms':>6} "
            f"{'p99 ms':>6} | {'approved':>8} {'broker%':>7} {'workers%':>8} {'pg%':>4} {'loadgen%':>8} "
            f"{'batch':>5} {'retries':>7}"
        )
        print(head)
        for r in rows:
            print(
                f"{r['backend']:>8} {r['workers']:>7} {r['max_auth_per_s']:>6.0f} {r['max_p99_ms']:>6.1f} | "
                f"{r['offered_per_s']:>7.0f} {r['auth_per_s']:>6.0f} {r['p50_ms']:>6.1f} "
                f"{r['p99_ms']:>6.1f} | "
                f"{r['approved']:>8} {r['broker_cpu_pct']:>7.0f} {r['workers_cpu_pct']:>8.0f} "
                f"{r['db_cpu_pct']:>4.0f} {r['loadgen_cpu_pct']:>8.0f} {r['mean_batch']:>5.1f} "
                f"{r['db_conflicts']:>7}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
