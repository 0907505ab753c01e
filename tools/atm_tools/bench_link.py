"""Dispenser link benchmark: command round trip, throughput vs the wire rate, time per note, heap."""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import statistics
import subprocess
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
REPO = Path(__file__).resolve().parents[2]
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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def provision_and_load(client: DispenserClient, load: int) -> None:
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


def per_note(
    client: DispenserClient, board: SimBoard, notes: int, runs: int
) -> tuple[list[float], float, float, float]:
    """Time per note of a dispense; flash page programs and erases per note of the dispense, and
    programs per transaction (dispense, then a maintenance reject) over all runs."""
    out: list[float] = []
    dev = client.info.device_id
    programs = erases = tx_programs = 0
    for _ in range(runs):
        txid = secrets.token_bytes(16)
        nonce = client.get_nonce().nonce
        token = sign_dispense(KEY, dev, nonce, txid, (notes, 0, 0, 0))
        p0, e0 = board.flash_programs, board.flash_erases
        t0 = time.perf_counter()
        client.dispense(token)
        out.append((time.perf_counter() - t0) * 1000 / notes)
        programs += board.flash_programs - p0
        erases += board.flash_erases - e0
        client.reject(token=client.maint_token(KEY, "reject"))
        tx_programs += board.flash_programs - p0
    n = runs * notes
    return out, programs / n, erases / n, tx_programs / runs


def parse_cost(frames: int = 3000) -> tuple[float, float]:
    """MicroPython unix port on this machine: microseconds per byte through FrameParser.feed and
    through crc16 alone (script mp/parse_cost.py)."""
    mp = Path(sys.executable).parent / "micropython"
    script = Path(__file__).resolve().parent / "mp" / "parse_cost.py"
    res = subprocess.run(
        [str(mp), "-X", "heapsize=192K", str(script), str(REPO), str(frames)],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    feed_us, crc_us = (float(x) for x in res.stdout.split())
    return feed_us, crc_us


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
                    provision_and_load(client, 2000)
                    rt = round_trips(client, args.round_trips)
                    add(f"status round trip, {label}", statistics.median(rt), percentile(rt, 0.95), "ms")
                    if baud is not None:
                        cps, share = throughput(client, board, args.seconds)
                        add(f"throughput, {label}", cps, None, "cmd/s", f"{share * 100:.0f}% of wire")
                    else:
                        pn, progs, erases, tx_progs = per_note(client, board, args.notes, 5)
                        add(f"dispense, per note ({args.notes}-note bundles)", statistics.median(pn),
                            percentile(pn, 0.95), "ms")  # fmt: skip
                        add("journal flash programs per note (dispense)", progs, None, "pages",
                            f"{tx_progs:.0f} per transaction with its reject")  # fmt: skip
                        add("journal flash erases per note (dispense)", erases, None, "blocks",
                            "4 KiB erase blocks, amortised")  # fmt: skip
                    heap_peak = max(heap_peak, client.counters()["heap_peak"])
    feed_us, crc_us = parse_cost()
    add("frame parse, unix-port MicroPython", feed_us, None, "us/byte", f"crc16 alone {crc_us:.3f} us/byte")
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
