"""Dispenser link benchmark: command round trip, throughput vs the wire rate, time per note, heap."""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from atm_host.link import DispenserClient
from atm_host.link.signing import sign_dispense, sign_replenish
from atm_sim.board import SimBoard

from atm_tools.benchrows import record

KEY = bytes(range(7, 39))
DENOMS = (100, 50, 20, 10)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    system = f"{platform.system()} {platform.machine()}"
    return f"{cpu}; {os.cpu_count()} cores; {system}; Python {platform.python_version()}"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _setup(client: DispenserClient, load: int) -> None:
    info = client.hello()
    if not client.status().provisioned:
        client.provision(KEY)
    nonce = client.get_nonce().nonce
    client.replenish(sign_replenish(KEY, info.device_id, nonce, DENOMS, [load] * 4))


def round_trips(client: DispenserClient, n: int) -> list[float]:
    out: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.status()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def throughput(client: DispenserClient, board: SimBoard, seconds: float) -> tuple[float, float]:
    """Eight threads keep the window full of cassette_info commands; returns (commands/s, wire share)."""
    assert board.wire is not None
    stop = time.monotonic() + seconds
    done = [0] * 8

    def worker(i: int) -> None:
        while time.monotonic() < stop:
            client.cassette_info()
            done[i] += 1

    b0 = board.wire.bytes_to_host
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    wire_bytes = board.wire.bytes_to_host - b0
    return sum(done) / elapsed, wire_bytes / elapsed / (board.wire.baud / 10)


def per_note(client: DispenserClient, notes: int, runs: int) -> list[float]:
    out: list[float] = []
    dev = client.info.device_id
    for _ in range(runs):
        txid = secrets.token_bytes(16)
        nonce = client.get_nonce().nonce
        token = sign_dispense(KEY, dev, nonce, txid, (notes, 0, 0, 0))
        t0 = time.perf_counter()
        client.dispense(token)
        out.append((time.perf_counter() - t0) * 1000 / notes)
        client.reject(token=client.maint_token(KEY, "reject"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_link", description=__doc__)
    ap.add_argument("--round-trips", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=3.0, help="throughput run length per baud rate")
    ap.add_argument("--notes", type=int, default=40, help="notes per dispense for the time-per-note row")
    args = ap.parse_args(argv)
    rows: list[tuple[str, str, str, str]] = []

    def add(measure: str, median: float, p95: float | None, unit: str, note: str = "") -> None:
        shown_p95 = note if p95 is None else f"{p95:.2f}"
        rows.append((measure, f"{median:.2f}", shown_p95, unit))
        record("link", measure, median, p95, unit, note)

    heap_peak = 0
    with tempfile.TemporaryDirectory() as tmp:
        for baud in (None, 115200, 921600):
            label = "pty (no wire limit)" if baud is None else f"{baud} baud"
            with SimBoard(workdir=Path(tmp) / f"b{baud}", baud=baud) as board:
                board.mech.load([2000] * 4)
                with DispenserClient.connect(board.port, timeout=10) as client:
                    _setup(client, 2000)
                    rt = round_trips(client, args.round_trips)
                    add(f"status round trip, {label}", statistics.median(rt), _pct(rt, 0.95), "ms")
                    if baud is not None:
                        cps, share = throughput(client, board, args.seconds)
                        add(f"throughput, {label}", cps, None, "cmd/s", f"{share * 100:.0f}% of wire")
                    else:
                        pn = per_note(client, args.notes, 5)
                        add(f"dispense, per note ({args.notes}-note bundles)", statistics.median(pn),
                            _pct(pn, 0.95), "ms")  # fmt: skip
                    heap_peak = max(heap_peak, client.counters()["heap_peak"])
    print(f"dispenser link benchmark — machine: {machine()}")
    print("firmware: real MicroPython unix port, -X heapsize=192K, simulated board (mechanics in sim time)")
    print(f"{'measure':<44} {'median':>14} {'p95':>16} unit")
    for name, med, p95, unit in rows:
        print(f"{name:<44} {med:>14} {p95:>16} {unit}")
    print(f"{'firmware live heap peak (after gc)':<44} {heap_peak:>14} {'of 196608':>16} bytes")
    record("link", "firmware live heap peak (after gc)", heap_peak, None, "bytes", "of a 192 KiB heap")
    return 0


if __name__ == "__main__":
    sys.exit(main())
