"""Firmware benchmark on the emulated RP2040 in emulated time: boot, command cost, per note, wire, heap.

Every time here is emulated time of rp2040js 1.4.1 (125 MHz model, no XIP cache model), measured from
the board's clock around each host call; flash erase/program take a W25Q16-class part's typical times
(sector erase 45 ms, page program 0.7 ms; docs/emulator.md) with the core stalled. A command's CPU
cost shows as its service time on an otherwise idle link, and at saturation as emulated time per
command. The host's link timers are scaled by the chip's measured slowdown (RP2040Board.host_timers).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from atm_host.link import DispenserClient
from atm_host.link.signing import sign_dispense
from atm_sim import mechanics as mc
from atm_sim.rp2040.board import SLICE_NS, RP2040Board

from atm_tools.bench_link import KEY, percentile, provision_and_load
from atm_tools.benchrows import record

RECENT_MAX = 16  # finished transactions the firmware keeps (firmware/journal.py)
NOTE = "emulated RP2040 (rp2040js 1.4.1, 125 MHz model, no XIP cache model)"
# Motor-on time the mechanics model needs per note (pick to sensor, dwell, to gate, into the stacker).
MECH_MS_PER_NOTE = mc.TO_SENSOR_MS + mc.SENSOR_DWELL_MS + mc.TO_GATE_MS + mc.TO_BIN_MS


def _emu_ms(board: RP2040Board) -> float:
    return board.emu_ns / 1e6


def round_trips(client: DispenserClient, board: RP2040Board, n: int) -> list[float]:
    """Emulated ms per status command on an idle link (wire time both ways + firmware service)."""
    out: list[float] = []
    for _ in range(n):
        t0 = _emu_ms(board)
        client.status()
        out.append(_emu_ms(board) - t0)
    return out


def wire_bytes(board: RP2040Board) -> tuple[int, int]:
    s = board.bridge_stats()
    return int(s["rxBytes"]), int(s["txBytes"])


def parse_cost(client: DispenserClient, board: RP2040Board, n: int, runs: int) -> list[float]:
    """Emulated us per received byte: `n` bytes of line noise (0x55, no frame in it) written just ahead
    of a status command delay its answer by the time the firmware takes to scan them (when that is
    slower than the wire; else the figure is the wire's own byte time, a bound)."""
    base = statistics.median(round_trips(client, board, 10))
    fd = os.open(board.port, os.O_WRONLY | os.O_NOCTTY)  # a second writer on the same line
    out: list[float] = []
    try:
        for _ in range(runs):
            t0 = _emu_ms(board)
            os.write(fd, b"\x55" * n)
            client.status()
            out.append((_emu_ms(board) - t0 - base) * 1000 / n)
    finally:
        os.close(fd)
    return out


def throughput(client: DispenserClient, board: RP2040Board, commands: int, baud: int) -> tuple[float, float]:
    """Four threads keep the window full of cassette_info; (commands per emulated s, share of the wire)."""
    left = [commands]
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            client.cassette_info()

    s0 = board.bridge_stats()
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s1 = board.bridge_stats()
    elapsed_s = (int(s1["t"]) - int(s0["t"])) / 1e9
    tx = int(s1["txBytes"]) - int(s0["txBytes"])
    return commands / elapsed_s, tx * 10 / baud / elapsed_s


def chip_costs(workdir: Path, script_path: Path | None = None) -> dict[str, tuple[float, float]]:
    """CPU the firmware's link and command path take on the chip, timed there with time.ticks_us
    (tools/atm_tools/mp/chip_cost.py over the USB REPL of a board running the 921600 image): free of
    the host's latency and of the lockstep slices that the round trips above include."""
    from mpremote.transport_serial import SerialTransport  # pyright: ignore[reportMissingTypeStubs]

    script = (script_path or Path(__file__).resolve().parent / "mp" / "chip_cost.py").read_text()
    board = RP2040Board(workdir=workdir, uart_baud=921600, usb=True)
    board.mech.load([2000] * 4)
    with board:
        deadline = time.monotonic() + 120
        while not board.boot_emu_ns and time.monotonic() < deadline:
            time.sleep(0.1)  # the firmware is up (its SYN left the UART)
        t: Any = SerialTransport(board.usb_port, baudrate=115200)  # mpremote is untyped
        try:
            t.serial.write(b"\r\x03")  # main.py catches the first Ctrl-C, the second reaches the REPL
            time.sleep(0.3)
            t.serial.write(b"\x03")
            time.sleep(0.3)
            t.enter_raw_repl(soft_reset=True)
            out, err = t.exec_raw(script, timeout=600)  # timeout: seconds with no output
            if err:
                raise RuntimeError(f"chip_cost.py failed on the chip: {err.decode()[-500:]}")
        finally:
            t.close()
    costs: dict[str, tuple[float, float]] = {}  # key: (median, p95) in us
    for line in bytes(out).decode().splitlines():
        key, *values = line.split()
        if values:
            costs[key] = (float(values[0]), float(values[-1]))
    if "done" not in costs:
        raise RuntimeError(f"chip_cost.py did not finish: {bytes(out).decode()[-500:]}")
    return costs


def per_note(client: DispenserClient, board: RP2040Board, notes: int, runs: int) -> dict[str, list[float]]:
    """Per note of a dispense: emulated ms, flash erases+programs, modelled flash ms, RX bytes lost."""
    out: dict[str, list[float]] = {"ms": [], "flash_ops": [], "flash_ms": [], "rx_lost": []}
    dev = client.info.device_id
    for _ in range(runs):
        txid = secrets.token_bytes(16)
        nonce = client.get_nonce().nonce
        token = sign_dispense(KEY, dev, nonce, txid, (notes, 0, 0, 0))
        s0 = board.bridge_stats()
        t0 = _emu_ms(board)
        client.dispense(token)
        t1 = _emu_ms(board)
        s1 = board.bridge_stats()
        out["ms"].append((t1 - t0) / notes)
        ops = (int(s1["erases"]) + int(s1["programs"])) - (int(s0["erases"]) + int(s0["programs"]))
        out["flash_ops"].append(ops / notes)
        out["flash_ms"].append((float(s1["flashNs"]) - float(s0["flashNs"])) / 1e6 / notes)
        out["rx_lost"].append(float(int(s1["rxOverruns"]) - int(s0["rxOverruns"])))
        client.reject(token=client.maint_token(KEY, "reject"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_rp2040", description=__doc__)
    ap.add_argument("--round-trips", type=int, default=30)
    ap.add_argument("--commands", type=int, default=40, help="commands per throughput run")
    ap.add_argument("--notes", type=int, default=5, help="notes per dispense for the per-note rows")
    ap.add_argument("--runs", type=int, default=3, help="dispenses for the per-note rows")
    args = ap.parse_args(argv)
    rows: list[tuple[str, str, str, str]] = []

    def add(measure: str, median: float, p95: float | None, unit: str, note: str = NOTE) -> None:
        shown = unit if note == NOTE else f"{unit}  ({note.split(';', maxsplit=1)[0]})"
        rows.append((measure, f"{median:.2f}", "" if p95 is None else f"{p95:.2f}", shown))
        record("rp2040", measure, median, p95, unit, note)

    heap_peak = 0
    wall0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for baud in (115200, 921600):
            variant = None if baud == 115200 else baud
            board = RP2040Board(workdir=Path(tmp) / f"b{baud}", uart_baud=variant)
            board.mech.load([2000] * 4)
            with board, DispenserClient.connect(board.port, timeout=60) as client:
                if baud == 115200:
                    add("boot to first byte on the UART", board.boot_emu_ns[0] / 1e6, None, "ms")
                provision_and_load(client, 2000)
                timers = board.host_timers()  # the host's RTO floor in chip time (docs/emulator.md)
                timers.__enter__()
                rx0, tx0 = wire_bytes(board)
                rt = round_trips(client, board, args.round_trips)
                rx1, tx1 = wire_bytes(board)
                add(f"status round trip, {baud} baud", statistics.median(rt), percentile(rt, 0.95), "ms")
                wire_ms = ((rx1 - rx0) + (tx1 - tx0)) / args.round_trips * 10 / baud * 1000
                service = [r - wire_ms for r in rt]
                add(
                    f"firmware time per command, {baud} baud",
                    statistics.median(service),
                    percentile(service, 0.95),
                    "ms",
                    f"status round trip minus {wire_ms:.2f} ms of wire time; {NOTE}",
                )
                pc = parse_cost(client, board, 512, 5)
                byte_note = f"wire byte time {1e7 / baud:.1f} us; {NOTE}"
                add(
                    f"CPU per byte of line noise, {baud} baud",
                    statistics.median(pc),
                    percentile(pc, 0.95),
                    "us",
                    byte_note,
                )
                cps, share = throughput(client, board, args.commands, baud)
                add(f"throughput, {baud} baud", cps, None, "cmd/s", f"{share * 100:.0f}% of wire; {NOTE}")
                if baud == 115200:
                    # Sensor edges reach the chip at the next lockstep slice: 0.1 ms slices here, so the
                    # per-note rows carry at most 0.1 ms of that per edge (0.5 ms elsewhere).
                    board.slice_ns = 100_000
                    pn = per_note(client, board, args.notes, args.runs)
                    ms = pn["ms"]
                    add(
                        f"dispense, per note ({args.notes}-note bundles)",
                        statistics.median(ms),
                        percentile(ms, 0.95),
                        "ms",
                    )
                    fw = [m - MECH_MS_PER_NOTE for m in ms]
                    add(
                        "firmware time per note (beyond the motors)",
                        statistics.median(fw),
                        percentile(fw, 0.95),
                        "ms",
                        f"per note minus {MECH_MS_PER_NOTE:.0f} ms of belt travel; {NOTE}",
                    )
                    # The slope between 1-note and n-note dispenses: what each further note costs,
                    # without the fixed work of a dispense (token check, journal begin/end, report).
                    one = per_note(client, board, 1, args.runs)["ms"]
                    slope = (statistics.median(ms) * args.notes - statistics.median(one)) / (args.notes - 1)
                    add("dispense of one note", statistics.median(one), percentile(one, 0.95), "ms")
                    add(
                        "firmware time per further note (beyond the motors)",
                        slope - MECH_MS_PER_NOTE,
                        None,
                        "ms",
                        f"({args.notes}-note minus 1-note dispense) / {args.notes - 1} minus "
                        f"{MECH_MS_PER_NOTE:.0f} ms of belt travel; {NOTE}",
                    )
                    add("flash erases+programs per note", statistics.median(pn["flash_ops"]), None, "ops")
                    add("modelled flash time per note", statistics.median(pn["flash_ms"]), None, "ms",
                        f"W25Q16 typical times, core stalled; {NOTE}")  # fmt: skip
                    add("UART bytes lost during dispenses", sum(pn["rx_lost"]), None, "bytes")
                    board.slice_ns = SLICE_NS
                if baud != 115200:
                    # The heap is read with the firmware's list of finished transactions full (16,
                    # firmware/journal.py RECENT_MAX): the steady state of a machine in service.
                    per_note(client, board, 1, RECENT_MAX)
                heap_peak = max(heap_peak, client.counters()["heap_peak"])
                timers.__exit__(None, None, None)
    add("firmware live heap peak (after gc)", heap_peak, None, "bytes", f"rp2 port, ~224 KB heap; {NOTE}")
    with tempfile.TemporaryDirectory() as tmp:
        costs = chip_costs(Path(tmp) / "chip")
    byte_us = 1e7 / 921600
    for key, label in (
        ("rx_full_frames_64", "link receive CPU per byte, 125-byte frames in 64-byte reads"),
        ("rx_full_frames_256", "link receive CPU per byte, 125-byte frames in 256-byte reads"),
        ("rx_command_frames_64", "link receive CPU per byte, 10-byte command frames"),
        ("rx_noise_55", "link receive CPU per byte, line noise (0x55)"),
    ):
        us, us95 = costs[key]
        share = byte_us / us * 100
        note = f"median keeps up with {share:.0f}% of 921600 (byte time {byte_us:.2f} us); timed on the chip"
        add(label, us, us95, "us", note)
    for key, label in (
        ("cmd_status", "firmware CPU per command on the chip, status"),
        ("cmd_cassette_info", "firmware CPU per command on the chip, cassette_info"),
        ("cmd_get_report", "firmware CPU per command on the chip, get_report (unknown txid)"),
    ):
        med, p95 = costs[key]
        add(label, med / 1000, p95 / 1000, "ms", "frame in to answer queued on the UART; timed on the chip")
    for key, label, note in (
        ("ack_frame", "firmware CPU per ACK frame from the host", "frame in to acknowledgements applied"),
        ("loop_idle", "firmware CPU per idle main-loop pass", "service() and the dispenser's tick, no nap"),
    ):
        med, p95 = costs[key]
        add(label, med / 1000, p95 / 1000, "ms", f"{note}; timed on the chip")
    print(f"firmware benchmark on the {NOTE}; wall {time.monotonic() - wall0:.0f} s")
    print(f"{'measure':<46} {'median':>12} {'p95':>10} unit")
    for name, med, p95, unit in rows:
        print(f"{name:<46} {med:>12} {p95:>10} {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
