"""Dispenser mechanics: pick, measure, hold at the escrow gate, deliver, present, retract, purge.

Each primitive drives the board's motors and polls its sensors until the mechanism reaches the next
rest point or a time limit passes. The motion loops run with the heap locked (any allocation would raise),
so they allocate nothing; they return a result code instead of raising, and leave the motors off.
Times are milliseconds. Every limit is the real mechanism's worst case plus margin.
"""

import time

import micropython
from micropython import const

OK = const(0)
NO_NOTE = const(1)  # the pick motor ran and no note reached the sensor: cassette empty or pick failure
JAM_SENSOR = const(2)  # a note stayed on the counting sensor
JAM_TRANSPORT = const(3)  # a released note never reached its bin
JAM_PRESENTER = const(4)  # the bundle did not reach the presenter
_SHUTTER_FAIL = const(5)  # the shutter did not reach its end switch
_BAD_THICKNESS = const(6)  # the thickness reading is not a whole number of notes

_PICK_ARRIVE_MS = const(120)  # pick roller to counting sensor
_NOTE_PASS_MS = const(80)  # longest a single note or double pick may cover the sensor
_GATE_TRAVEL_MS = const(3)  # sensor to escrow gate, at belt speed
_DELIVER_MS = const(200)  # gate to bin entry sensor, per note
QUIET_MS = const(60)  # no sensor activity this long means the path is empty
_SHUTTER_MS = const(1500)  # shutter end to end
PRESENT_MS = const(1500)  # stacker to presenter
BUNDLE_MS = const(5000)  # retract or dump a whole bundle of up to 60 notes
_THICKNESS_ONE = const(20000)  # ADC reading for one note (calibrated per note type at install)
_THICKNESS_MIN = const(12000)  # below this the reading is not a note


class Mech:
    def __init__(self, board, tick):
        self.b = board
        self._tick = tick  # feeds the watchdog; called inside motion loops (allocation-free)
        self.notes = 0  # result of the last primitive: notes measured, delivered or counted
        self.thickness = 0

    # ----- sensors ---------------------------------------------------------------------------------
    def stacker_has_notes(self):
        return self.b.stacker_sensor.value() == 1

    def presenter_has_notes(self):
        return self.b.presenter_sensor.value() == 1

    def note_on_sensor(self):
        return self.b.note_sensor.value() == 1

    def shutter_closed(self):
        return self.b.shutter_closed_sw.value() == 1

    def shutter_open(self):
        return self.b.shutter_open_sw.value() == 1

    def door_open(self):
        return self.b.door_sw.value() == 1

    def tampered(self):
        return self.b.tamper_sw.value() == 1

    def all_off(self):
        self.b.motors_off()

    # ----- picking ---------------------------------------------------------------------------------
    def pick_to_gate(self, cassette):
        """Pick from a cassette; the note(s) stop at the escrow gate. self.notes = notes measured."""
        micropython.heap_lock()
        try:
            return self._pick_locked(cassette)
        finally:
            micropython.heap_unlock()
            # Off whatever this primitive may have started (the per-note path: two pin writes, not
            # the twelve of all_off, which the dispenser's fault paths still use).
            b = self.b
            b.pick[cassette].value(0)
            b.transport.value(0)

    def _pick_locked(self, cassette):
        b = self.b
        sensor = b.note_sensor
        self.notes = 0
        self.thickness = 0
        # The thickness sensor holds its peak in hardware (a note passes in ~3 ms; polling could miss
        # it): clear the hold, pick, and read the peak once the note has left the sensor.
        b.thickness_reset.value(1)
        b.thickness_reset.value(0)
        b.transport.value(1)
        pick = b.pick[cassette]
        pick.value(1)
        t0 = time.ticks_ms()
        while True:
            # Deadline first, sensor second: a stall between the two can never fake a timeout.
            expired = time.ticks_diff(time.ticks_ms(), t0) > _PICK_ARRIVE_MS
            if sensor.value() == 1:
                break
            if expired:
                return NO_NOTE
            self._tick()
        pick.value(0)
        t0 = time.ticks_ms()
        while True:
            expired = time.ticks_diff(time.ticks_ms(), t0) > _NOTE_PASS_MS
            if sensor.value() == 0:
                break
            if expired:
                self.thickness = b.thickness.read_u16()
                return JAM_SENSOR
            self._tick()
        peak = b.thickness.read_u16()
        self.thickness = peak
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < _GATE_TRAVEL_MS:
            self._tick()
        b.transport.value(0)
        if peak < _THICKNESS_MIN:
            return _BAD_THICKNESS
        self.notes = (peak + _THICKNESS_ONE // 2) // _THICKNESS_ONE
        return OK

    def deliver(self, to_reject, expected):
        """Release the note(s) held at the gate into the stacker or the reject bin; count entries."""
        micropython.heap_lock()
        try:
            return self._deliver_locked(to_reject, expected)
        finally:
            micropython.heap_unlock()
            b = self.b
            (b.gate_reject if to_reject else b.gate_stacker).value(0)
            b.transport.value(0)

    def _deliver_locked(self, to_reject, expected):
        b = self.b
        entry = b.reject_entry if to_reject else b.stacker_entry
        gate = b.gate_reject if to_reject else b.gate_stacker
        self.notes = 0
        gate.value(1)
        b.transport.value(1)
        last = entry.value()
        t0 = time.ticks_ms()
        while self.notes < expected:
            self._tick()
            expired = time.ticks_diff(time.ticks_ms(), t0) > _DELIVER_MS
            v = entry.value()
            if v != last:
                last = v
                if v == 1:
                    self.notes += 1
                    t0 = time.ticks_ms()
                continue
            if expired:
                return JAM_TRANSPORT
        # Wait for the entry sensor to clear, so the next motion starts from rest.
        t0 = time.ticks_ms()
        while True:
            expired = time.ticks_diff(time.ticks_ms(), t0) > _DELIVER_MS
            if entry.value() == 0:
                break
            if expired:
                return JAM_TRANSPORT
            self._tick()
        return OK

    # ----- emptying the path -----------------------------------------------------------------------
    def purge_transport(self):
        """Run the belt with the gate set to reject until the path is quiet; self.notes = notes binned.

        Notes already released towards the stacker run on into it; the stacker is emptied next."""
        micropython.heap_lock()
        try:
            return self._purge_locked()
        finally:
            micropython.heap_unlock()
            self.all_off()

    def _purge_locked(self):
        b = self.b
        self.notes = 0
        b.gate_reject.value(1)
        b.transport.value(1)
        last_r = b.reject_entry.value()
        last_s = b.stacker_entry.value()
        quiet = time.ticks_ms()
        start = quiet
        while time.ticks_diff(time.ticks_ms(), quiet) < QUIET_MS:
            self._tick()
            r = b.reject_entry.value()
            s = b.stacker_entry.value()
            if r != last_r:
                last_r = r
                quiet = time.ticks_ms()
                if r == 1:
                    self.notes += 1
            if s != last_s:
                last_s = s
                quiet = time.ticks_ms()
            if b.note_sensor.value() == 1:
                quiet = time.ticks_ms()
            if time.ticks_diff(time.ticks_ms(), start) > BUNDLE_MS:
                return JAM_TRANSPORT
        return OK

    def dump_stacker(self):
        """Move every note in the stacker into the reject bin, counting them."""
        return self._bundle_move(self.b.stack_dump, self.b.reject_entry, self.b.stacker_sensor)

    def retract(self):
        """Pull every note in the presenter back into the retract bin, counting them."""
        return self._bundle_move(self.b.stack_rev, self.b.retract_entry, self.b.presenter_sensor)

    def _bundle_move(self, motor, entry, source):
        micropython.heap_lock()
        try:
            return self._bundle_locked(motor, entry, source)
        finally:
            micropython.heap_unlock()
            self.all_off()

    def _bundle_locked(self, motor, entry, source):
        self.notes = 0
        motor.value(1)
        last = entry.value()
        quiet = time.ticks_ms()
        start = quiet
        while source.value() == 1 or time.ticks_diff(time.ticks_ms(), quiet) < QUIET_MS:
            self._tick()
            v = entry.value()
            if v != last:
                last = v
                quiet = time.ticks_ms()
                if v == 1:
                    self.notes += 1
            if time.ticks_diff(time.ticks_ms(), start) > BUNDLE_MS:
                return JAM_TRANSPORT
        return OK

    # ----- presenting ------------------------------------------------------------------------------
    def open_shutter(self):
        return self._shutter(self.b.shutter_open, self.b.shutter_open_sw)

    def close_shutter(self):
        return self._shutter(self.b.shutter_close, self.b.shutter_closed_sw)

    def _shutter(self, motor, end_switch):
        micropython.heap_lock()
        try:
            motor.value(1)
            t0 = time.ticks_ms()
            while True:
                expired = time.ticks_diff(time.ticks_ms(), t0) > _SHUTTER_MS
                if end_switch.value() == 1:
                    return OK
                if expired:
                    return _SHUTTER_FAIL
                self._tick()
        finally:
            micropython.heap_unlock()
            self.all_off()

    def move_to_presenter(self):
        """Move the stacked bundle through the open shutter into the presenter."""
        b = self.b
        micropython.heap_lock()
        try:
            b.stack_fwd.value(1)
            t0 = time.ticks_ms()
            while True:
                expired = time.ticks_diff(time.ticks_ms(), t0) > PRESENT_MS
                if b.stacker_sensor.value() == 0 and b.presenter_sensor.value() == 1:
                    return OK
                if expired:
                    return JAM_PRESENTER
                self._tick()
        finally:
            micropython.heap_unlock()
            self.all_off()
