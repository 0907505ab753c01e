"""Firmware entry point (run by MicroPython at boot): build the board, run the app, fail safe."""

import time

import hwconfig

board = hwconfig.Board()
try:
    import app

    app.App(board).run()
except BaseException as e:  # noqa: BLE001  (anything that escapes is fatal: stop, then let the WDT reset)
    board.motors_off()
    print("FATAL", repr(e))
    while True:
        time.sleep_ms(100)  # no watchdog feed: the board resets within WDT_TIMEOUT_MS
