"""The emulated RP2040 target: the real rp2 MicroPython on rp2040js, driven in lockstep from Python."""
