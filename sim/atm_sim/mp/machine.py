"""Simulated `machine` module for the unix port: the unchanged firmware's pins, ADC, UART, WDT.

It stands first on sys.path in the simulated board's interpreter. Pins and the ADC are forwarded over
a TCP "board bus" to the harness (atm_sim.board), which models the dispenser's mechanics; UART0 is a
pty master inherited from the harness; the watchdog is kept by the harness, outside the interpreter.
Bus request: 4 bytes [op, pin, value lo, value hi]; reply: 2 bytes [value lo, value hi].
Every call reuses preallocated buffers, so the firmware's no-allocation loops stay allocation-free.
"""

import os
import select
import socket

_OP_WRITE = 0x57  # 'W' set an output pin
_OP_READ = 0x52  # 'R' read an input pin
_OP_ADC = 0x41  # 'A' read an ADC channel
_OP_WDT_START = 0x53  # 'S' start the watchdog with a timeout (ms)
_OP_WDT_FEED = 0x44  # 'D' feed the watchdog
_OP_FLASH = 0x46  # 'F' a flash block is about to be written (a power-cut point)
_OP_RESET_CAUSE = 0x43  # 'C' why the board (re)started
_OP_TORN = 0x54  # 'T' a torn flash operation is done: the harness cuts the power now

PWRON_RESET = 1
WDT_RESET = 3
SOFT_RESET = 5

_bus = None
_req = bytearray(4)
_resp = bytearray(2)


def _connect():
    global _bus
    port = int(os.getenv("ATM_SIM_BUS_PORT") or "0")
    if not port:
        raise OSError("ATM_SIM_BUS_PORT not set: not running under the simulated board harness")
    s = socket.socket()
    s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    _bus = s


def bus_call(op, pin, value):
    """One synchronous exchange with the harness (no allocation after the first call)."""
    if _bus is None:
        _connect()
    bus = _bus
    assert bus is not None
    _req[0] = op
    _req[1] = pin
    _req[2] = value & 0xFF
    _req[3] = (value >> 8) & 0xFF
    bus.write(_req)
    got = 0
    while got < 2:
        got += bus.readinto(_resp) or 0
    return _resp[0] | (_resp[1] << 8)


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 4
    IRQ_FALLING = 8

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self._id = id
        self._mode = mode
        self._value = 0
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            if self._mode == Pin.OUT:
                return self._value
            return bus_call(_OP_READ, self._id, 0)
        self._value = 1 if v else 0
        bus_call(_OP_WRITE, self._id, self._value)
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class ADC:
    def __init__(self, pin):
        self._ch = pin._id if isinstance(pin, Pin) else pin

    def read_u16(self):
        return bus_call(_OP_ADC, self._ch, 0)


class UART:
    """UART over the pty master fd the harness passed in ATM_SIM_UART_FD (set non-blocking there)."""

    def __init__(self, id, baudrate=115200, tx=None, rx=None, timeout=0, rxbuf=256, txbuf=256):
        fd = int(os.getenv("ATM_SIM_UART_FD") or "-1")
        if fd < 0:
            raise OSError("ATM_SIM_UART_FD not set")
        self._f = open(fd, "r+b")
        self._poll = select.poll()
        self._poll.register(self._f, select.POLLIN)
        self.baudrate = baudrate

    def any(self):
        return 1 if self._poll.poll(0) else 0

    def readinto(self, buf, nbytes=-1):
        n = self._f.readinto(buf)
        return n

    def write(self, buf):
        mv = memoryview(buf)
        total = len(buf)
        done = 0
        while done < total:
            try:
                n = self._f.write(mv[done:])
            except OSError:
                n = 0  # EAGAIN: the line's buffer is full; the wire drains it
            if n:
                done += n
        return total


class WDT:
    def __init__(self, id=0, timeout=5000):
        bus_call(_OP_WDT_START, 0, timeout)

    def feed(self):
        bus_call(_OP_WDT_FEED, 0, 0)


_unique = None


def unique_id():
    global _unique
    if _unique is None:
        h = os.getenv("ATM_SIM_UNIQUE_ID") or "e66038b7134f2a2f"
        b = bytearray(len(h) // 2)
        for i in range(len(b)):
            b[i] = int(h[2 * i : 2 * i + 2], 16)
        _unique = bytes(b)
    return _unique


def reset_cause():
    return bus_call(_OP_RESET_CAUSE, 0, 0)


def freq():
    return 125_000_000


def idle():
    pass


def reset():
    raise SystemExit(75)


def flash_write_hook(block):
    """Called by the simulated littlefs flash before each block write or erase."""
    bus_call(_OP_FLASH, 0, block)


def flash_op(kind, block):
    """Called by rp2.Flash before a raw program (kind 1) or erase (kind 2). Returns 0 to go on, or
    1 + the number of bytes to program or erase before the power fails (then call flash_torn())."""
    return bus_call(_OP_FLASH, kind, block)


def flash_torn():
    """The torn operation wrote what it could: the harness cuts the power and never answers."""
    bus_call(_OP_TORN, 0, 0)
    while True:
        pass
