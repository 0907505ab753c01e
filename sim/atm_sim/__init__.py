"""Simulated dispenser board: real firmware in real MicroPython, with a mechanics model."""
