"""Physical model of the cash dispenser behind the simulated board's pins: notes, belts, bins, shutter.

It is the ground truth the tests check the firmware against: every note is in a cassette, on the
belt, in the stacker, in the presenter, in a bin, or with the customer, and the total never changes.
Motion happens only while the firmware drives a motor. Sensor pulses are latched until the firmware
has read each level once (as an edge-counting PIO would), so a loaded host cannot make it miss a
note. Faults the real machine has are injectable: double picks, pick failures, a note stuck on the
sensor, a jammed shutter or presenter, an open door, a broken tamper loop, a customer who takes
some, all or none of the notes.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

# GPIO numbers: the same as firmware/hwconfig.py (the board's wiring).
PICK_PINS = (2, 3, 4, 5)
TRANSPORT = 6
GATE_STACKER = 7
GATE_REJECT = 23
NOTE_SENSOR = 8
STACKER_ENTRY = 9
REJECT_ENTRY = 10
RETRACT_ENTRY = 11
STACK_FWD = 12
STACK_REV = 13
STACK_DUMP = 14
SHUTTER_OPEN = 15
SHUTTER_CLOSE = 16
SHUTTER_OPEN_SW = 17
SHUTTER_CLOSED_SW = 18
PRESENTER_SENSOR = 19
STACKER_SENSOR = 20
DOOR_SW = 21
TAMPER_SW = 22
THICKNESS_ADC = 26
THICKNESS_RESET = 24

# Mechanical timings in milliseconds of motor-on time.
TO_SENSOR_MS = 3.0
SENSOR_DWELL_MS = 3.0
TO_GATE_MS = 2.0
TO_BIN_MS = 3.0
PULSE_MS = 0.5
BUNDLE_NOTE_MS = 2.0  # one note of a bundle into a bin (retract, dump)
PRESENT_MS = 20.0
SHUTTER_TRAVEL_MS = 30.0
THICKNESS_PER_NOTE = 20000


@dataclass
class Bundle:
    """Notes travelling on the belt together (one note, or a double pick)."""

    notes: int
    cassette: int
    stage: str = "to_sensor"  # to_sensor, sensor, to_gate, gate, to_bin
    progress: float = 0.0
    sensor_read_high: bool = False
    dest: str = ""


@dataclass
class Faults:
    double_picks: dict[int, int] = field(default_factory=dict[int, int])  # cassette -> next N picks
    pick_failures: dict[int, int] = field(default_factory=dict[int, int])  # cassette -> next N picks
    jam_on_sensor: int = 0  # the next N bundles stick on the counting sensor
    shutter_jammed: bool = False
    presenter_jammed: bool = False


class Mechanics:
    def __init__(self, seed: int = 1) -> None:
        self.lock = threading.RLock()
        self.cassettes = [0, 0, 0, 0]
        self.stacker = 0
        self.presenter = 0
        self.reject_bin = 0
        self.retract_bin = 0
        self.taken = 0
        self.bundle: Bundle | None = None
        self.shutter_pos = 0.0  # 0 closed .. 1 open
        self.door_open = False
        self.tampered = False
        self.faults = Faults()
        self.outputs: dict[int, int] = {}
        self._pulses: dict[int, deque[list[float]]] = {}  # pin -> [level, min_until, read_flag]
        self._t = 0.0
        self._dump_acc = 0.0
        self._rev_acc = 0.0
        self._fwd_acc = 0.0
        self._rng = random.Random(seed)
        self.thickness_hold = 0  # peak-hold of the thickness sensor, cleared by THICKNESS_RESET
        self.pin_writes = 0
        self.misuse = 0  # the firmware drove the mechanism in a way a real one would not accept

    # ----- inventory -------------------------------------------------------------------------------
    def load(self, counts: list[int]) -> None:
        with self.lock:
            self.cassettes = list(counts)

    def in_path(self) -> int:
        return self.bundle.notes if self.bundle is not None else 0

    def total(self) -> int:
        """Every note the machine has ever been loaded with, wherever it is now."""
        return (
            sum(self.cassettes)
            + self.in_path()
            + self.stacker
            + self.presenter
            + self.reject_bin
            + self.retract_bin
            + self.taken
        )

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "cassettes": list(self.cassettes),
                "in_path": self.in_path(),
                "stacker": self.stacker,
                "presenter": self.presenter,
                "reject_bin": self.reject_bin,
                "retract_bin": self.retract_bin,
                "taken": self.taken,
                "shutter_open": self.shutter_pos >= 1.0,
            }

    # ----- customer and technician -----------------------------------------------------------------
    def take(self, notes: int | None = None) -> int:
        """The customer takes notes from the presenter (only through an open shutter)."""
        with self.lock:
            if self.shutter_pos < 1.0 or self.presenter == 0:
                return 0
            n = self.presenter if notes is None else min(notes, self.presenter)
            self.presenter -= n
            self.taken += n
            return n

    def clear_jam(self) -> None:
        """A technician frees a stuck note; it stays on the belt for the firmware's purge."""
        with self.lock:
            self.faults.jam_on_sensor = 0
            self.faults.shutter_jammed = False
            self.faults.presenter_jammed = False
            if self.bundle is not None and self.bundle.stage == "stuck":
                self.bundle.stage = "sensor"
                self.bundle.sensor_read_high = True

    # ----- the firmware's side ---------------------------------------------------------------------
    def power_off(self) -> None:
        """Power lost: every motor stops where it is; unread sensor pulses are gone."""
        with self.lock:
            self.outputs.clear()
            self._pulses.clear()

    def _out(self, pin: int) -> bool:
        return self.outputs.get(pin, 0) == 1

    def write(self, pin: int, value: int, now: float) -> None:
        with self.lock:
            self.advance(now)
            self.pin_writes += 1
            rising = value == 1 and not self._out(pin)
            self.outputs[pin] = value
            if rising and pin in PICK_PINS:
                self._pick(PICK_PINS.index(pin))
            if rising and pin == THICKNESS_RESET:
                self.thickness_hold = 0

    def _pick(self, c: int) -> None:
        if self.bundle is not None:
            self.misuse += 1
            return
        f = self.faults
        if f.pick_failures.get(c, 0) > 0:
            f.pick_failures[c] -= 1
            return
        if self.cassettes[c] == 0:
            return
        n = 1
        if f.double_picks.get(c, 0) > 0 and self.cassettes[c] >= 2:
            f.double_picks[c] -= 1
            n = 2
        self.cassettes[c] -= n
        self.bundle = Bundle(notes=n, cassette=c)

    def _pulse(self, pin: int, count: int, now: float) -> None:
        q = self._pulses.setdefault(pin, deque())
        t = max(now, q[-1][1] if q else now)
        for _ in range(count):
            q.append([1.0, t + PULSE_MS / 1000, 0.0])
            q.append([0.0, t + 2 * PULSE_MS / 1000, 0.0])
            t += 2 * PULSE_MS / 1000

    def read(self, pin: int, now: float) -> int:
        with self.lock:
            self.advance(now)
            q = self._pulses.get(pin)
            if q:
                head = q[0]
                head[2] = 1.0
                level = int(head[0])
                if now >= head[1]:
                    q.popleft()
                return level
            return self._level(pin)

    def _level(self, pin: int) -> int:
        b = self.bundle
        if pin == NOTE_SENSOR:
            if b is not None and b.stage in ("sensor", "stuck"):
                b.sensor_read_high = True
                return 1
            return 0
        if pin == SHUTTER_OPEN_SW:
            return int(self.shutter_pos >= 1.0)
        if pin == SHUTTER_CLOSED_SW:
            return int(self.shutter_pos <= 0.0)
        if pin == PRESENTER_SENSOR:
            return int(self.presenter > 0)
        if pin == STACKER_SENSOR:
            return int(self.stacker > 0)
        if pin == DOOR_SW:
            return int(self.door_open)
        if pin == TAMPER_SW:
            return int(self.tampered)
        return 0

    def adc(self, channel: int, now: float) -> int:
        with self.lock:
            self.advance(now)
            baseline = 300 + self._rng.randint(0, 200)
            if channel == THICKNESS_ADC:
                return max(self.thickness_hold, baseline)
            return baseline

    # ----- time ------------------------------------------------------------------------------------
    def advance(self, now: float) -> None:
        if self._t == 0.0:
            self._t = now
        dt = max(0.0, (now - self._t) * 1000.0)
        self._t = now
        if dt == 0.0:
            return
        self._move_belt(dt, now)
        self._move_bundles(dt, now)
        self._move_shutter(dt)

    def _move_belt(self, dt: float, now: float) -> None:
        b = self.bundle
        if b is None or not self._out(TRANSPORT):
            return
        if b.stage == "to_sensor":
            b.progress += dt
            if b.progress >= TO_SENSOR_MS:
                b.stage, b.progress, b.sensor_read_high = "sensor", 0.0, False
                reading = b.notes * THICKNESS_PER_NOTE + self._rng.randint(-1500, 1500)
                self.thickness_hold = max(self.thickness_hold, reading)
                if self.faults.jam_on_sensor > 0:
                    self.faults.jam_on_sensor -= 1
                    b.stage = "stuck"
        elif b.stage == "sensor":
            b.progress += dt
            if b.progress >= SENSOR_DWELL_MS and b.sensor_read_high:
                b.stage, b.progress = "to_gate", 0.0
        elif b.stage == "to_gate":
            b.progress += dt
            if b.progress >= TO_GATE_MS:
                b.stage, b.progress = "gate", 0.0
        elif b.stage == "gate":
            if self._out(GATE_REJECT):
                b.stage, b.dest, b.progress = "to_bin", "reject", 0.0
            elif self._out(GATE_STACKER):
                b.stage, b.dest, b.progress = "to_bin", "stacker", 0.0
        elif b.stage == "to_bin":
            b.progress += dt
            if b.progress >= TO_BIN_MS:
                if b.dest == "reject":
                    self.reject_bin += b.notes
                    self._pulse(REJECT_ENTRY, b.notes, now)
                else:
                    self.stacker += b.notes
                    self._pulse(STACKER_ENTRY, b.notes, now)
                self.bundle = None

    def _move_bundles(self, dt: float, now: float) -> None:
        if self._out(STACK_DUMP) and self.stacker > 0:
            self._dump_acc += dt
            while self._dump_acc >= BUNDLE_NOTE_MS and self.stacker > 0:
                self._dump_acc -= BUNDLE_NOTE_MS
                self.stacker -= 1
                self.reject_bin += 1
                self._pulse(REJECT_ENTRY, 1, now)
        else:
            self._dump_acc = 0.0
        if self._out(STACK_REV) and self.presenter > 0 and not self.faults.presenter_jammed:
            self._rev_acc += dt
            while self._rev_acc >= BUNDLE_NOTE_MS and self.presenter > 0:
                self._rev_acc -= BUNDLE_NOTE_MS
                self.presenter -= 1
                self.retract_bin += 1
                self._pulse(RETRACT_ENTRY, 1, now)
        else:
            self._rev_acc = 0.0
        if (
            self._out(STACK_FWD)
            and self.stacker > 0
            and self.shutter_pos >= 1.0
            and not self.faults.presenter_jammed
        ):
            self._fwd_acc += dt
            if self._fwd_acc >= PRESENT_MS:
                self.presenter += self.stacker
                self.stacker = 0
                self._fwd_acc = 0.0
        else:
            self._fwd_acc = 0.0

    def _move_shutter(self, dt: float) -> None:
        if self.faults.shutter_jammed:
            return
        step = dt / SHUTTER_TRAVEL_MS
        if self._out(SHUTTER_OPEN) and not self._out(SHUTTER_CLOSE):
            self.shutter_pos = min(1.0, self.shutter_pos + step)
        elif self._out(SHUTTER_CLOSE) and not self._out(SHUTTER_OPEN):
            floor = 0.3 if self.presenter > 0 else 0.0  # it cannot close on notes
            self.shutter_pos = max(floor, self.shutter_pos - step)
