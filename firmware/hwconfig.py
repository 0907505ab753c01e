"""The only module that touches machine/rp2: builds the board (pins, ADC, UART, watchdog, raw flash).

Reference board: RP2040 (Raspberry Pi Pico) wired to the dispenser's driver board. The simulated board
provides the same machine API, so this file is used unchanged there. Pin numbers are GPIO numbers.
"""

import machine
import rp2
from layout import BLOCK_SIZE, RAW_BLOCKS, RAW_FIRST_BLOCK
from micropython import const

UART_ID = const(0)
UART_TX = const(0)
UART_RX = const(1)
PICK_PINS = (2, 3, 4, 5)  # pick motor of cassette 0..3 (one pulse picks one note)
TRANSPORT = const(6)  # transport belt motor
GATE_STACKER = const(7)  # escrow gate: 1 lets the note held at the gate run on into the stacker
GATE_REJECT = const(23)  # escrow gate: 1 lets the note held at the gate run on into the reject bin
NOTE_SENSOR = const(8)  # 1 while a note covers the counting sensor
STACKER_ENTRY = const(9)  # one pulse per note entering the stacker
REJECT_ENTRY = const(10)  # one pulse per note entering the reject bin
RETRACT_ENTRY = const(11)  # one pulse per note entering the retract bin
STACK_FWD = const(12)  # moves the stacked bundle into the presenter
STACK_REV = const(13)  # pulls presenter notes back, one by one, into the retract bin
STACK_DUMP = const(14)  # dumps stacker notes, one by one, into the reject bin
SHUTTER_OPEN = const(15)  # shutter motor, opening
SHUTTER_CLOSE = const(16)  # shutter motor, closing
SHUTTER_OPEN_SW = const(17)  # 1 when the shutter is fully open
SHUTTER_CLOSED_SW = const(18)  # 1 when the shutter is fully closed
PRESENTER_SENSOR = const(19)  # 1 while notes are in the presenter (customer side of the shutter)
STACKER_SENSOR = const(20)  # 1 while notes are in the stacker
DOOR_SW = const(21)  # 1 when the safe door is open
TAMPER_SW = const(22)  # 1 when the dispenser's top box tamper loop is broken
LED = const(25)
THICKNESS_ADC = const(26)  # peak-hold output of the note thickness sensor (ADC0)
THICKNESS_RESET = const(24)  # a pulse clears the thickness peak-hold before each pick

UART_BAUD = const(115200)
UART_RXBUF = const(1024)  # holds several frames while the pick loop is not reading
WDT_TIMEOUT_MS = const(3000)  # RP2040 allows up to 8388 ms; our longest step is a 1.5 s motor move


class Board:
    """Every pin and peripheral the firmware uses, built once."""

    def __init__(self):
        out = machine.Pin.OUT
        inp = machine.Pin.IN
        self.pick = tuple(machine.Pin(p, out, value=0) for p in PICK_PINS)
        self.transport = machine.Pin(TRANSPORT, out, value=0)
        self.gate_stacker = machine.Pin(GATE_STACKER, out, value=0)
        self.gate_reject = machine.Pin(GATE_REJECT, out, value=0)
        self.stack_fwd = machine.Pin(STACK_FWD, out, value=0)
        self.stack_rev = machine.Pin(STACK_REV, out, value=0)
        self.stack_dump = machine.Pin(STACK_DUMP, out, value=0)
        self.shutter_open = machine.Pin(SHUTTER_OPEN, out, value=0)
        self.shutter_close = machine.Pin(SHUTTER_CLOSE, out, value=0)
        self.led = machine.Pin(LED, out, value=0)
        self.note_sensor = machine.Pin(NOTE_SENSOR, inp)
        self.stacker_entry = machine.Pin(STACKER_ENTRY, inp)
        self.reject_entry = machine.Pin(REJECT_ENTRY, inp)
        self.retract_entry = machine.Pin(RETRACT_ENTRY, inp)
        self.shutter_open_sw = machine.Pin(SHUTTER_OPEN_SW, inp)
        self.shutter_closed_sw = machine.Pin(SHUTTER_CLOSED_SW, inp)
        self.presenter_sensor = machine.Pin(PRESENTER_SENSOR, inp)
        self.stacker_sensor = machine.Pin(STACKER_SENSOR, inp)
        self.door_sw = machine.Pin(DOOR_SW, inp)
        self.tamper_sw = machine.Pin(TAMPER_SW, inp)
        self.thickness = machine.ADC(machine.Pin(THICKNESS_ADC))
        self.thickness_reset = machine.Pin(THICKNESS_RESET, out, value=0)
        self.uart = machine.UART(
            UART_ID,
            baudrate=UART_BAUD,
            tx=machine.Pin(UART_TX),
            rx=machine.Pin(UART_RX),
            timeout=0,
            rxbuf=UART_RXBUF,
        )
        # The journal's raw flash region (layout.py): erase blocks outside anything littlefs uses.
        self.raw = rp2.Flash(start=RAW_FIRST_BLOCK * BLOCK_SIZE, len=RAW_BLOCKS * BLOCK_SIZE)
        self.device_id = machine.unique_id()
        cause = machine.reset_cause()
        self.watchdog_reset = cause == machine.WDT_RESET
        self.wdt = machine.WDT(timeout=WDT_TIMEOUT_MS)

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
