"""The host<->dispenser wire protocol, declared once and imported by both the firmware and the host.

Every module in this package runs unchanged on MicroPython (the RP2040 firmware) and on CPython (the
host): only `struct`, `hashlib` and plain Python are used, no typing at run time, no f-string tricks.
"""

PROTOCOL_VERSION = 1
