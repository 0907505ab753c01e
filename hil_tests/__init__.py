"""Hardware-in-the-loop tests: the real firmware on a simulated board (or a real one at HIL_PORT)."""
