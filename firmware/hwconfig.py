"""The only module that touches machine/rp2: builds the board (pins, ADC, UART, watchdog, raw flash).

Reference board: RP2040 (Raspberry Pi Pico) wired to the dispenser's driver board. The simulated board
provides the same machine API, so this file is used unchanged there. Pin numbers are GPIO numbers.
"""

import machine
import rp2
from layout import BLOCK_SIZE, RAW_BLOCKS, RAW_FIRST_BLOCK
from micropython import const

_UART_ID = const(0)
_UART_TX = const(0)
_UART_RX = const(1)
PICK_PINS = (2, 3, 4, 5)  # pick motor of cassette 0..3 (one pulse picks one note)
_TRANSPORT = const(6)  # transport belt motor
_GATE_STACKER = const(7)  # escrow gate: 1 lets the note held at the gate run on into the stacker
_GATE_REJECT = const(23)  # escrow gate: 1 lets the note held at the gate run on into the reject bin
_NOTE_SENSOR = const(8)  # 1 while a note covers the counting sensor
_STACKER_ENTRY = const(9)  # one pulse per note entering the stacker
_REJECT_ENTRY = const(10)  # one pulse per note entering the reject bin
_RETRACT_ENTRY = const(11)  # one pulse per note entering the retract bin
_STACK_FWD = const(12)  # moves the stacked bundle into the presenter
_STACK_REV = const(13)  # pulls presenter notes back, one by one, into the retract bin
_STACK_DUMP = const(14)  # dumps stacker notes, one by one, into the reject bin
_SHUTTER_OPEN = const(15)  # shutter motor, opening
_SHUTTER_CLOSE = const(16)  # shutter motor, closing
_SHUTTER_OPEN_SW = const(17)  # 1 when the shutter is fully open
_SHUTTER_CLOSED_SW = const(18)  # 1 when the shutter is fully closed
_PRESENTER_SENSOR = const(19)  # 1 while notes are in the presenter (customer side of the shutter)
_STACKER_SENSOR = const(20)  # 1 while notes are in the stacker
_DOOR_SW = const(21)  # 1 when the safe door is open
_TAMPER_SW = const(22)  # 1 when the dispenser's top box tamper loop is broken
_LED = const(25)
_THICKNESS_ADC = const(26)  # peak-hold output of the note thickness sensor (ADC0)
_THICKNESS_RESET = const(24)  # a pulse clears the thickness peak-hold before each pick

_UART_BAUD = const(115200)
_UART_RXBUF = const(1024)  # holds several frames while the pick loop is not reading
_WDT_TIMEOUT_MS = const(3000)  # RP2040 allows up to 8388 ms; our longest step is a 1.5 s motor move


class Board:
    """Every pin and peripheral the firmware uses, built once."""

    def __init__(self):
        out = machine.Pin.OUT
        inp = machine.Pin.IN
        self.pick = tuple(machine.Pin(p, out, value=0) for p in PICK_PINS)
        self.transport = machine.Pin(_TRANSPORT, out, value=0)
        self.gate_stacker = machine.Pin(_GATE_STACKER, out, value=0)
        self.gate_reject = machine.Pin(_GATE_REJECT, out, value=0)
        self.stack_fwd = machine.Pin(_STACK_FWD, out, value=0)
        self.stack_rev = machine.Pin(_STACK_REV, out, value=0)
        self.stack_dump = machine.Pin(_STACK_DUMP, out, value=0)
        self.shutter_open = machine.Pin(_SHUTTER_OPEN, out, value=0)
        self.shutter_close = machine.Pin(_SHUTTER_CLOSE, out, value=0)
        self.led = machine.Pin(_LED, out, value=0)
        self.note_sensor = machine.Pin(_NOTE_SENSOR, inp)
        self.stacker_entry = machine.Pin(_STACKER_ENTRY, inp)
        self.reject_entry = machine.Pin(_REJECT_ENTRY, inp)
        self.retract_entry = machine.Pin(_RETRACT_ENTRY, inp)
        self.shutter_open_sw = machine.Pin(_SHUTTER_OPEN_SW, inp)
        self.shutter_closed_sw = machine.Pin(_SHUTTER_CLOSED_SW, inp)
        self.presenter_sensor = machine.Pin(_PRESENTER_SENSOR, inp)
        self.stacker_sensor = machine.Pin(_STACKER_SENSOR, inp)
        self.door_sw = machine.Pin(_DOOR_SW, inp)
        self.tamper_sw = machine.Pin(_TAMPER_SW, inp)
        self.thickness = machine.ADC(machine.Pin(_THICKNESS_ADC))
        self.thickness_reset = machine.Pin(_THICKNESS_RESET, out, value=0)
        self.uart = machine.UART(
            _UART_ID,
            baudrate=_UART_BAUD,
            tx=machine.Pin(_UART_TX),
            rx=machine.Pin(_UART_RX),
            timeout=0,
            rxbuf=_UART_RXBUF,
        )
        # The journal's raw flash region (layout.py): erase blocks outside anything littlefs uses.
        self.raw = rp2.Flash(start=RAW_FIRST_BLOCK * BLOCK_SIZE, len=RAW_BLOCKS * BLOCK_SIZE)
        self.device_id = machine.unique_id()
        cause = machine.reset_cause()
        self.watchdog_reset = cause == machine.WDT_RESET
        self.wdt = machine.WDT(timeout=_WDT_TIMEOUT_MS)

    def motors_off(self):
        for p in self.pick:
            p.value(0)
        self.transport.value(0)
        self.gate_stacker.value(0)
        self.gate_reject.value(0)
        self.stack_fwd.value(0)
        self.stack_rev.value(0)
        self.stack_dump.value(0)
        self.shutter_open.value(0)
        self.shutter_close.value(0)
