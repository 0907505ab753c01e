"""Runs on the chip (the emulated RP2040's USB REPL, after the board image's modules were copied):
what the firmware's link and command path cost in CPU, measured with time.ticks_us (emulated time).

Prints one "<key> <median us> <p95 us>" line per measure (tools/atm_tools/bench_rp2040.py reads them):
- rx_<kind>: us per received byte through atm_wire's Link (parser, CRC, link rules, acknowledgements)
  for line noise, full frames and command frames, fed in the read sizes the UART hands over;
- cmd_<name>: us from a command frame's arrival to its answer written to the UART (921600 image):
  parse, link, dispatch, the command itself, the completion framed and queued;
- ack_frame: us for one of the host's ACK frames; loop_idle: one main-loop pass with nothing to do.
"""

# pyright: basic, reportMissingImports=false, reportAttributeAccessIssue=false, reportMissingModuleSource=false

import gc
import struct
import time

import app
import hwconfig
from atm_wire import messages as m
from atm_wire.frame import FLAG_DATA, encode
from atm_wire.link import Link

board = hwconfig.Board()
got = [0]


def nop(*_args):
    pass


def sink(buf, start, end):
    got[0] += 1


def frames(plen, count, first):
    out = bytearray()
    for k in range(count):
        out += encode((first + k) & 0xFF, 0, FLAG_DATA, bytes(plen))
    return bytes(out)


def report(key, samples):
    """Median and p95 (nearest rank) of the samples, in microseconds."""
    samples.sort()
    n = len(samples)
    print(key, samples[(n - 1) // 2], samples[min(n - 1, (95 * n + 99) // 100 - 1)])


def rx(key, stream, read, expect, runs=7):
    """us per byte of the stream through a fresh Link, one sample per run over the whole stream."""
    chunks = [stream[i : i + read] for i in range(0, len(stream), read)]
    samples = []
    for _ in range(runs):
        link = Link(nop, sink, 4, None)
        link.connected = True
        got[0] = 0
        gc.collect()
        board.wdt.feed()
        t0 = time.ticks_us()
        for now, chunk in enumerate(chunks):
            link.feed(chunk, len(chunk), now)
        dt = time.ticks_diff(time.ticks_us(), t0)
        if got[0] != expect:
            raise SystemExit(f"{key}: {got[0]} frames delivered, {expect} expected")
        samples.append(dt / len(stream))
    report(key, samples)


rx("rx_noise_55", bytes([0x55]) * 2048, 64, 0)
rx("rx_full_frames_64", b"".join(frames(118, 2, 2 * i) for i in range(8)), 64, 16)
rx("rx_full_frames_256", b"".join(frames(118, 2, 2 * i) for i in range(8)), 256, 16)
rx("rx_command_frames_64", frames(3, 100, 0), 64, 100)

a = app.App(board)
lk = a.link
lk.connected = True


def command(key, code, args=b"", n=20):
    samples = []
    for i in range(n):
        lk._base = lk._next  # the host acknowledged everything (its ACKs are measured on their own)
        f = encode(lk._expect, lk._next, FLAG_DATA, struct.pack(m.HDR, code, i + 1) + args)
        board.wdt.feed()
        t0 = time.ticks_us()
        lk.feed(f, len(f), time.ticks_ms())
        samples.append(time.ticks_diff(time.ticks_us(), t0))
        time.sleep_ms(2)  # the answer leaves the UART's buffer before the next command
    report(key, samples)


command("cmd_status", 0x02)
command("cmd_cassette_info", 0x0D)
command("cmd_get_report", 0x0F, bytes(16))
samples = []
for _ in range(20):
    f = encode(0, lk._next, 0)
    t0 = time.ticks_us()
    lk.feed(f, len(f), time.ticks_ms())
    samples.append(time.ticks_diff(time.ticks_us(), t0))
report("ack_frame", samples)
samples = []
for _ in range(20):
    t0 = time.ticks_us()
    a.service()
    a.disp.tick()
    samples.append(time.ticks_diff(time.ticks_us(), t0))
report("loop_idle", samples)
print("done 0")
