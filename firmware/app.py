"""The firmware's main loop: link service, command dispatch (acknowledge, completion), events.

Commands arrive through atm_wire.link. A read-only command completes at once, and its completion is
its only answer (it says the command was taken). A motion command is acknowledged at once, queued
and run from the main loop, during which further motion commands are refused with BUSY while
read-only ones still complete. A refused command gets an acknowledge with the reason and no
completion. Nothing here touches a pin.
"""

import gc
import struct
import time

import dispenser as dsp
import journal as jn
import mech as mc
import security as sc
from atm_wire import PROTOCOL_VERSION
from atm_wire import messages as m
from atm_wire.frame import MAX_PAYLOAD
from atm_wire.link import Link
from micropython import const

FW_VERSION = (1, 0, 0)


def _ms() -> int:
    """Milliseconds in the wrapping ticks space the link uses (a small int: no allocation)."""
    return time.ticks_ms()  # pyright: ignore[reportReturnType]  (ticks are plain small ints at run time)


CAPABILITIES = (
    m.CAP_E2E_TOKEN | m.CAP_SHUTTER | m.CAP_RETRACT | m.CAP_DOUBLE_PICK_DETECT | m.CAP_POWER_SAFE_JOURNAL
)
READ_ONLY = ("hello", "status", "counters", "cassette_info", "get_report", "denominate")
_OUTQ_MAX = const(24)  # messages waiting for link window space; the oldest is dropped (and counted) beyond
_LINK_WINDOW = const(4)
_RX_CHUNK = const(256)  # bytes taken off the UART per read (the parser runs over them in one viper call)
# After a byte arrived the main loop naps 0.2 ms at a time for 10 ms (the host's next frame is due).
_BUSY_MS = const(10)
_BUSY_NAP_US = const(200)
_IDLE_NAP_MS = const(1)  # a quiet line: 1 ms naps (the unix-port sim board's CPU stays low)
DISPENSE_CODE = [e[1] for e in m.COMMANDS if e[0] == "dispense"][0]
# Dispense outcomes after which notes may be in the stacker: the completion reports the counts.
PARTIAL_DISPENSE = (m.INCOMPLETE_DISPENSE, m.JAMMED, m.CASH_UNIT_ERROR, m.DOOR_OPEN)


class App:
    def __init__(self, board):
        self.board = board
        board.motors_off()
        self._txb = bytearray(MAX_PAYLOAD)  # every message is packed here, then copied by the link
        self.c = {}
        for name in m.COUNTER_NAMES:
            self.c[name] = 0
        if board.watchdog_reset:
            self.c["watchdog_resets"] += 1
        self.jr = jn.Journal(board.raw)
        self.jr.load()  # the first boot formats the raw region: an empty machine until REPLENISH
        self.sec = sc.Security(board.device_id, self.jr)
        self.mech = mc.Mech(board, board.wdt.feed)
        self.disp = dsp.Dispenser(self.mech, self.jr, self.sec, self.emit, self.service, self.c)
        self.link = Link(self._write, self._deliver, _LINK_WINDOW, self._on_link_reset)
        self._rx = bytearray(_RX_CHUNK)
        self._outq = []
        self._pending = None
        self._busy = False
        self._boot_ms = _ms()
        self._rx_ms = self._boot_ms  # when the last bytes arrived
        self._tick_ms = self._boot_ms  # the millisecond of the last dispenser tick
        self._heap_peak = 0

    # ----- link plumbing ---------------------------------------------------------------------------
    def _write(self, buf, n):
        self.board.uart.write(memoryview(buf)[:n])

    def _on_link_reset(self):
        self._pending = None

    def _send(self, payload):
        if not self._outq and self.link.send(payload, len(payload), _ms()):
            return
        if len(self._outq) >= _OUTQ_MAX:
            self._outq.pop(0)  # the host re-reads state (STATUS, GET_REPORT): the journal is the truth
        self._outq.append(payload)

    def _send_buf(self, n):
        """Send self._txb[:n]. The link copies it into its own frame slot, so nothing is allocated,
        unless the window is full: then a copy waits in the queue."""
        if not self._outq and self.link.send(self._txb, n, _ms()):
            return
        self._send(bytes(self._txb[:n]))

    def _flush(self):
        now = _ms()
        while self._outq and self.link.send(self._outq[0], len(self._outq[0]), now):
            self._outq.pop(0)

    def service(self):
        """Keep the board alive: watchdog, UART in, retransmit timer, queued output. Allocation-light."""
        self.board.wdt.feed()
        uart = self.board.uart
        n = uart.any()
        if n:
            # Only what is there: readinto(buf) alone waits (timeout_char) for the buffer to fill,
            # 1.7-3 ms per call on the rp2 port at 115200 (docs/emulator.md).
            n = uart.readinto(self._rx, n if n < _RX_CHUNK else _RX_CHUNK)
        now = _ms()
        if n:
            self._rx_ms = now
            self.link.feed(self._rx, n, now)
        self.link.poll(now)
        if self._outq:
            self._flush()

    def emit(self, name, *fields):
        """Send an event (found by name in atm_wire's table: events are rare, a lookup table would only
        take heap)."""
        for ev_name, code, fmt in m.EVENTS:
            if ev_name == name:
                struct.pack_into(m.HDR, self._txb, 0, code, 0)
                struct.pack_into(fmt, self._txb, m.HDR_SIZE, *fields)
                self._send_buf(m.HDR_SIZE + struct.calcsize(fmt))
                return
        raise ValueError(name)

    # ----- commands --------------------------------------------------------------------------------
    def _ack(self, req_id, code, result):
        struct.pack_into(m.ACK_FMT, self._txb, 0, m.MSG_ACKNOWLEDGE, req_id, code, result)
        self._send_buf(m.ACK_SIZE)

    def _complete(self, req_id, code, result, fmt, fields):
        """Completion with its data on success; a failed DISPENSE still carries its note counts."""
        struct.pack_into(m.COMPLETION_FMT, self._txb, 0, m.MSG_COMPLETION, req_id, code, result)
        n = m.COMPLETION_SIZE
        partial = code == DISPENSE_CODE and result in PARTIAL_DISPENSE
        if (result == m.SUCCESS or partial) and fmt != "<":
            struct.pack_into(fmt, self._txb, n, *fields)
            n += struct.calcsize(fmt)
        self._send_buf(n)

    def _deliver(self, buf, start, end):
        if end - start < m.HDR_SIZE:
            self.c["malformed_commands"] += 1
            return
        code, req_id = struct.unpack_from(m.HDR, buf, start)
        entry = m.COMMAND_BY_CODE.get(code)
        if entry is None:
            self.c["unknown_commands"] += 1
            self._ack(req_id, code, m.UNSUPPORTED)
            return
        if end - start - m.HDR_SIZE != struct.calcsize(entry[2]):
            self.c["malformed_commands"] += 1
            self._ack(req_id, code, m.INVALID_DATA)
            return
        args = struct.unpack_from(entry[2], buf, start + m.HDR_SIZE)
        if entry[0] in READ_ONLY:
            self._execute(entry, req_id, args)  # the completion is the only answer (docs/protocol.md)
        elif self._pending is not None or self._busy:
            self._ack(req_id, code, m.BUSY)
        else:
            self._ack(req_id, code, m.SUCCESS)
            self._pending = (entry, req_id, args)

    def _execute(self, entry, req_id, args):
        name = entry[0]
        d = self.disp
        result = m.SUCCESS
        fields = ()
        try:
            # The commands a host polls come first: each test below costs a comparison on the chip.
            if name == "status":
                fields = self._status()
            elif name == "cassette_info":
                fields = d.cassette_info()
            elif name == "hello":
                fields = (
                    PROTOCOL_VERSION,
                    FW_VERSION[0],
                    FW_VERSION[1],
                    FW_VERSION[2],
                    self.sec.device_id,
                    CAPABILITIES,
                    self.sec.epoch,
                    m.N_CASSETTES,
                    MAX_PAYLOAD,
                    d.retract_timeout_ms,
                    dsp.MAX_NOTES,  # the one declaration of the presenter capacity: the host reads it here
                )
            elif name == "get_nonce":
                if not self.sec.provisioned:
                    result = m.NOT_PROVISIONED
                elif d.state not in (m.STATE_IDLE, m.STATE_STACKED):
                    result = m.SEQUENCE_ERROR  # STACKED: a maintenance REJECT needs one
                else:
                    fields = (self.sec.new_nonce(), sc.NONCE_LIFETIME_MS)
            elif name == "denominate":
                result, amount = d.denominate(args)
                fields = (amount,)
            elif name == "dispense":
                result, stacked, rejected, flags = d.dispense(args[0], args[1], args[2], args[3:7], args[7])
                fields = (args[2],) + tuple(stacked) + tuple(rejected) + (flags,)
            elif name == "present":
                result, n = d.present(args[0])
                fields = (n,)
            elif name == "retract":
                result, n = d.retract(args[0])
                fields = (n,)
            elif name == "reject":
                result, n = d.reject(entry[1], args[0], args[1], args[2])
                fields = (n,)
            elif name == "count":
                result, n = d.count(args[0], entry[1], args[1], args[2], args[3])
                fields = (n,)
            elif name == "reset":
                result, n = d.reset()
                fields = (n,)
            elif name == "open_shutter":
                result = d.open_shutter(entry[1], args[0], args[1], args[2])
            elif name == "close_shutter":
                result = d.shutter(False)
            elif name == "replenish":
                result = d.replenish(args[0], args[1], args[2:6], args[6:10], args[10])
                fields = d.cassette_info()
            elif name == "get_report":
                result, rep = d.report(args[0])
                if result == m.SUCCESS and rep is not None:
                    txb = self._txb
                    struct.pack_into(m.COMPLETION_FMT, txb, 0, m.MSG_COMPLETION, req_id, entry[1], result)
                    n = len(rep)
                    txb[m.COMPLETION_SIZE : m.COMPLETION_SIZE + n] = rep
                    self._send_buf(m.COMPLETION_SIZE + n)
                    return
            elif name == "provision":
                result = self.sec.provision(args[0])
            elif name == "counters":
                fields = self._counters()
            elif name == "set_config":
                result = d.set_retract_timeout(args[0])
            else:
                result = m.UNSUPPORTED
        except Exception as e:  # a bug or a hardware surprise: safe state, report, keep serving
            self.board.motors_off()
            d.state = m.STATE_FAULT
            d.fault = m.HARDWARE_ERROR
            result = m.HARDWARE_ERROR
            print("fault in", name, repr(e))
        self._complete(req_id, entry[1], result, entry[3], fields)

    def _status(self):
        d = self.disp
        mech = self.mech
        shutter = (
            m.SHUTTER_CLOSED
            if mech.shutter_closed()
            else (m.SHUTTER_OPEN if mech.shutter_open() else m.SHUTTER_JAMMED)
        )
        flags = 0
        if self.sec.provisioned:
            flags |= m.STATUS_FLAG_PROVISIONED
        if self.sec.nonce is not None:
            flags |= m.STATUS_FLAG_NONCE
        if self.sec.locked:
            flags |= m.STATUS_FLAG_LOCKED
        if mech.tampered():
            flags |= m.STATUS_FLAG_TAMPER
        tx = self.jr.open_tx
        presented = tx.presented if tx is not None and d.state == m.STATE_PRESENTED else 0
        uptime = time.ticks_diff(_ms(), self._boot_ms) // 1000
        return (
            d.state,
            shutter,
            1 if mech.door_open() else 0,
            d.fault,
            flags,
            d.stacked_total(),
            presented,
            uptime,
        )

    def _counters(self):
        c = self.c
        lk = self.link
        c["frames_rx"] = lk.rx_frames
        c["frames_tx"] = lk.tx_frames
        c["crc_errors"] = lk.parser.crc_errors
        c["bytes_dropped"] = lk.parser.bytes_dropped
        c["retransmits"] = lk.retransmits
        c["invalid_tokens"] = self.sec.invalid_tokens
        c["fraud_attempts"] = self.sec.fraud_attempts
        c["heap_peak"] = self._heap_peak
        c["heap_free"] = gc.mem_free()
        return tuple(c[name] for name in m.COUNTER_NAMES)

    def _sample_heap(self):
        """Live heap after a collection: what the firmware really needs (sampled after each command)."""
        gc.collect()
        alloc = gc.mem_alloc()
        if alloc > self._heap_peak:
            self._heap_peak = alloc

    # ----- main loop -------------------------------------------------------------------------------
    def run(self):
        self.disp.recover()
        self.link.start(_ms())
        cause = m.BOOT_WATCHDOG if self.board.watchdog_reset else m.BOOT_POWER_ON
        self.emit("boot", cause, self.sec.epoch, 1 if self.disp.recovered is not None else 0)
        if self.disp.recovered is not None:
            tx = self.jr.find(self.disp.recovered)
            self.emit("power_recovery", self.disp.recovered, tx.present_status if tx is not None else 0)
        while True:
            self.service()
            pending = self._pending
            if pending is not None:
                self._pending = None
                self._busy = True
                try:
                    self._execute(pending[0], pending[1], pending[2])
                finally:
                    self._busy = False
                self._sample_heap()
            now = _ms()
            if now != self._tick_ms:  # once per millisecond is often enough for timeouts and sensors
                self._tick_ms = now
                self.disp.tick()
            if not self.board.uart.any() and self._pending is None:
                if time.ticks_diff(now, self._rx_ms) < _BUSY_MS:
                    time.sleep_us(_BUSY_NAP_US)
                else:
                    time.sleep_ms(_IDLE_NAP_MS)
