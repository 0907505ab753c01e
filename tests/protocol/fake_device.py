"""A tiny CPython stand-in for the dispenser firmware, built on atm_wire.Link, for the driver's tests."""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from atm_host.link import signing as auth
from atm_wire import PROTOCOL_VERSION, names
from atm_wire import messages as _m
from atm_wire.link import TICKS_PERIOD, Link

m: Any = cast(Any, _m)  # dict lookups in atm_wire.messages are untyped (MicroPython code)

KEY = bytes(range(32))
DEVICE_ID = b"FAKEDEV1"

Reply = tuple[int, int, bytes] | None  # (ack result, completion code, completion data); None: no answer


def _now() -> int:
    return int(time.monotonic() * 1000) & (TICKS_PERIOD - 1)


class FakeDevice:
    """Listens on 127.0.0.1, accepts the host, answers commands; `url` is what the host opens."""

    def __init__(self, corrupt: float = 0.0, protocol_version: int = PROTOCOL_VERSION, seed: int = 1) -> None:
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(1)
        self.url = f"socket://127.0.0.1:{self._server.getsockname()[1]}"
        self.corrupt = corrupt
        self.protocol_version = protocol_version
        self.boot_count = 1
        self.rng = random.Random(seed)
        self.lock = threading.RLock()
        self.received: list[tuple[str, int, bytes]] = []
        self.nonce = b""
        self.reports: dict[bytes, bytes] = {}
        self.stacked: dict[bytes, tuple[int, ...]] = {}
        self.link: Any = Link(self._write, self._deliver)
        self.conn: socket.socket | None = None
        self.stop = False
        self.handlers: dict[str, Callable[[int, bytes], Reply]] = {
            "hello": self._hello,
            "status": lambda rid, a: (0, 0, struct.pack("<BBBBBHHI", 0, 0, 0, 0, 1, 0, 0, 42)),
            "get_nonce": self._get_nonce,
            "dispense": self._dispense,
            "present": self._present,
            "get_report": self._get_report,
            "counters": lambda rid, a: (0, 0, struct.pack(m.COUNTERS_FMT, *range(len(m.COUNTER_NAMES)))),
            "reject": lambda rid, a: (m.BUSY, 0, b""),
            "count": lambda rid, a: (0, m.JAMMED, b""),
            "reset": lambda rid, a: None,  # acknowledged, never completed: the host's timeout fires
            "open_shutter": lambda rid, a: (0, 0, b"\x00"),  # one byte too many: malformed
        }
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    # ----- wire ---------------------------------------------------------------------------------
    def _write(self, buf: Any, n: int) -> None:
        data = bytearray(buf[:n])
        if self.corrupt and self.rng.random() < self.corrupt * n:
            data[self.rng.randrange(n)] ^= 1 << self.rng.randrange(8)
        if self.conn is not None:
            try:
                self.conn.sendall(bytes(data))
            except OSError:
                pass

    def _run(self) -> None:
        self.conn, _ = self._server.accept()
        self.conn.settimeout(0.005)
        with self.lock:
            self.link.start(_now())  # the firmware sends SYN when it boots
        while not self.stop:
            try:
                data = self.conn.recv(4096)
                if not data:
                    return
            except TimeoutError:
                data = b""
            except OSError:
                return
            with self.lock:
                if data:
                    self.link.feed(data, len(data), _now())
                self.link.poll(_now())

    def reboot(self) -> None:
        """Model a board reset: new boot count, SYN to the host."""
        with self.lock:
            self.boot_count += 1
            self.link.start(_now())

    def send(self, payload: bytes) -> None:
        with self.lock:
            deadline = time.monotonic() + 5
            while not self.link.send(payload, len(payload), _now()):
                if time.monotonic() > deadline:
                    raise RuntimeError("fake device could not send")
                self.lock.release()
                time.sleep(0.002)
                self.lock.acquire()

    def event(self, name: str, req_id: int, *fields: Any) -> None:
        _, code, fmt = names.EVENT_BY_NAME[name]
        self.send(struct.pack("<BH", code, req_id) + struct.pack(fmt, *fields))

    def _deliver(self, buf: Any, start: int, end: int) -> None:
        payload = bytes(buf[start:end])
        code, rid = struct.unpack_from("<BH", payload)
        name = m.COMMAND_BY_CODE[code][0] if code in m.COMMAND_BY_CODE else "?"
        self.received.append((name, rid, payload[3:]))
        handler = self.handlers.get(name)
        reply = handler(rid, payload[3:]) if handler else (m.UNSUPPORTED, 0, b"")
        if reply is None:
            self._send_now(struct.pack("<BHBB", m.MSG_ACKNOWLEDGE, rid, code, 0))
            return
        result, ccode, data = reply
        # Runs on the reader thread inside Link.feed: queue the answers without blocking it.
        self._send_now(struct.pack("<BHBB", m.MSG_ACKNOWLEDGE, rid, code, result))
        if result == 0:
            self._send_now(struct.pack("<BHBB", m.MSG_COMPLETION, rid, code, ccode) + data)
        if name == "present" and ccode == 0:
            txid = payload[3:19]
            self._send_now(struct.pack("<BH16sH", 0x82, rid, txid, sum(self.stacked.get(txid, (0,)))))

    def _send_now(self, payload: bytes) -> None:
        if not self.link.send(payload, len(payload), _now()):
            raise RuntimeError("fake device window full")

    # ----- commands -----------------------------------------------------------------------------
    def _hello(self, rid: int, args: bytes) -> Reply:
        data = struct.pack(
            "<BBBB8sHIBBIH",
            self.protocol_version,
            0,
            3,
            1,
            DEVICE_ID,
            0x1F,
            self.boot_count,
            4,
            118,
            30000,
            60,
        )
        return (0, 0, data)

    def _get_nonce(self, rid: int, args: bytes) -> Reply:
        self.nonce = bytes(self.rng.randrange(256) for _ in range(16))
        return (0, 0, struct.pack("<16sI", self.nonce, 60000))

    def _dispense(self, rid: int, args: bytes) -> Reply:
        dev, nonce, txid, a, b, c, d, mac = struct.unpack(m.DISPENSE_TOKEN_FMT, args)
        if nonce != self.nonce:
            return (0, m.INVALID_TOKEN_NONCE, b"")
        if not auth.equal_ct(mac, auth.dispense_mac(KEY, dev, nonce, txid, (a, b, c, d))):
            return (0, m.INVALID_TOKEN_HMAC, b"")
        self.nonce = b""
        self.stacked[txid] = (a, b, c, d)
        return (0, 0, struct.pack("<16s4H4HB", txid, a, b, c, d, 0, 0, 0, 0, 0))

    def _present(self, rid: int, args: bytes) -> Reply:
        txid = args[:16]
        if txid not in self.stacked:
            return (0, m.UNKNOWN_TRANSACTION, b"")
        n = sum(self.stacked[txid])
        body = struct.pack(
            "<8s16s16s4HHHHBB", DEVICE_ID, txid, b"\0" * 16, *self.stacked[txid], n, 0, 0, 1, 3
        )
        self.reports[txid] = body + auth.report_mac(KEY, body)
        return (0, 0, struct.pack("<H", n))

    def _get_report(self, rid: int, args: bytes) -> Reply:
        report = self.reports.get(args[:16])
        return (0, 0, report) if report else (0, m.UNKNOWN_TRANSACTION, b"")

    def close(self) -> None:
        self.stop = True
        self.thread.join(timeout=1)
        if self.conn is not None:
            self.conn.close()
        self._server.close()
